"""Training on tiny synthetic sets: learning happens, resume is exact, pseudo-labels are cached right."""

import json

import numpy as np
import pytest
import torch

from posedeploy.data import load_dataset
from posedeploy.errors import CheckpointError, InputError
from posedeploy.training.avg_training import AVGTask
from posedeploy.training.checkpoint import load_checkpoint, state_fingerprint
from posedeploy.training.distributed import Context
from posedeploy.training.lifter_training import LifterTask, StartingPoint
from posedeploy.training.trainer import TrainSettings, fit
from posedeploy.training.weight_average import WeightAverage

CPU = Context()


@pytest.fixture(scope="module")
def tiny():
    return load_dataset("synthetic", "train", synthetic_size=1024), load_dataset(
        "synthetic", "test", synthetic_size=256
    )


def _train_lifter(tiny, out, epochs, resume=False, lr=2e-3, batch_size=128, weight_decay=0.0, init=None, ema=None):
    torch.manual_seed(0)
    task = LifterTask("mgcn_lw", *tiny, init=init.describe() if init else None)
    if init and not resume:
        init.load_into(task.model)
    settings = TrainSettings(epochs=epochs, batch_size=batch_size, lr=lr, seed=1, weight_decay=weight_decay, ema=ema)
    return fit(task, settings, out, CPU, resume=resume)


def test_lifter_learns_and_writes_a_complete_checkpoint(tiny, tmp_path):
    summary = _train_lifter(tiny, tmp_path, epochs=4, batch_size=32)
    history = summary["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    # Predicting the root for every joint scores the mean joint distance to the root (~460 mm).
    zero_guess_mm = np.linalg.norm(tiny[1].poses_3d, axis=-1).mean() * 1000
    assert summary["best"] < 0.8 * zero_guess_mm
    ckpt = load_checkpoint(tmp_path / "best.pt")
    assert ckpt.config.lifter == "mgcn_lw" and ckpt.config.keypoints == "synthetic/gt"
    assert ckpt.config.training["mpjpe_mm"] == pytest.approx(summary["best"])
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4]
    assert not list(tmp_path.glob("*.partial"))


def test_resume_repeats_the_uninterrupted_run_exactly(tiny, tmp_path):
    _train_lifter(tiny, tmp_path / "straight", epochs=3)
    _train_lifter(tiny, tmp_path / "resumed", epochs=2)
    _train_lifter(tiny, tmp_path / "resumed", epochs=3, resume=True)
    a = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 3
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=0, atol=0)


def test_resume_refuses_other_settings_or_missing_state(tiny, tmp_path):
    _train_lifter(tiny, tmp_path, epochs=1)
    with pytest.raises(CheckpointError, match="settings differ .*lr"):
        _train_lifter(tiny, tmp_path, epochs=2, resume=True, lr=1e-2)
    with pytest.raises(CheckpointError, match="nothing to resume"):
        _train_lifter(tiny, tmp_path / "empty", epochs=2, resume=True)


def test_init_starts_from_a_checkpoints_weights(tiny, tmp_path):
    _train_lifter(tiny, tmp_path / "first", epochs=3, batch_size=32)
    start = StartingPoint.read(tmp_path / "first" / "best.pt")
    model = LifterTask("mgcn_lw", *tiny).model
    start.load_into(model)
    for key, value in load_checkpoint(tmp_path / "first" / "best.pt").lifter_state.items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)

    scratch = _train_lifter(tiny, tmp_path / "scratch", epochs=1, batch_size=32)
    tuned = _train_lifter(tiny, tmp_path / "tuned", epochs=1, batch_size=32, init=start)
    assert tuned["best"] < scratch["best"]
    record = load_checkpoint(tmp_path / "tuned" / "best.pt").config.training["init"]
    assert record == start.describe()
    assert record["sha256"] == start.sha256 and record["keypoints"] == "synthetic/gt" and record["fold"] is None

    # The starting point is part of the run's identity: a resume from another one is refused.
    assert _train_lifter(tiny, tmp_path / "tuned", epochs=2, batch_size=32, init=start, resume=True)["epochs"] == 2
    other = StartingPoint.read(tmp_path / "scratch" / "best.pt")
    with pytest.raises(CheckpointError, match=f"something else \\(init .*{start.sha256}.* -> .*{other.sha256}"):
        _train_lifter(tiny, tmp_path / "tuned", epochs=3, batch_size=32, init=other, resume=True)


def test_init_refuses_another_lifter_a_training_state_and_a_seen_fold(tiny, tmp_path):
    _train_lifter(tiny, tmp_path, epochs=1)
    start = StartingPoint.read(tmp_path / "best.pt")
    with pytest.raises(
        CheckpointError, match="holds a 'mgcn_lw' lifter; this run trains 'htnet' \\(pass --lifter mgcn_lw\\)"
    ):
        start.check("htnet", None)
    with pytest.raises(CheckpointError, match="trained on every training subject: a run without fold 0/2"):
        start.check("mgcn_lw", [0, 2])
    for missing in (tmp_path / "nope.pt", tmp_path):
        with pytest.raises(CheckpointError, match="checkpoint not found"):
            StartingPoint.read(missing)
    with pytest.raises(CheckpointError, match="is a training state: pass the run's best.pt"):
        StartingPoint.read(tmp_path / "last.pt")
    with pytest.raises(InputError, match="is in --out"):
        start.check("mgcn_lw", None, tmp_path)
    start.check("mgcn_lw", None, tmp_path / "elsewhere")


def test_weight_average_follows_its_formula():
    model = torch.nn.Linear(1, 1, bias=False)
    average = WeightAverage(model, decay=0.2)
    expected = model.weight.item()
    for step, value in enumerate([1.0, 2.0, 3.0, 4.0]):
        with torch.no_grad():
            model.weight.fill_(value)
        average.update(model)
        decay = min(0.2, (1 + step) / (10 + step))  # the ramp (0.1, 0.18), then the cap
        expected = decay * expected + (1 - decay) * value
    assert average.averaged(model).weight.item() == pytest.approx(expected)
    assert model.weight.item() == 4.0  # the trained model itself is untouched

    # A saved average (read onto the CPU as float32) comes back next to the model's parameters.
    wide = torch.nn.Linear(1, 1, bias=False).double()
    restored = WeightAverage(wide, decay=0.5)
    restored.load_state_dict(average.state_dict(), wide)
    assert restored.params[0].dtype == torch.float64 and restored.steps == 4
    with pytest.raises(CheckpointError, match="weight average does not match"):
        restored.load_state_dict(average.state_dict(), torch.nn.Linear(2, 1))


def test_averaged_weights_are_what_is_validated_written_and_resumed(tiny, tmp_path):
    straight = _train_lifter(tiny, tmp_path / "straight", epochs=3, batch_size=32, ema=0.99)
    _train_lifter(tiny, tmp_path / "resumed", epochs=2, batch_size=32, ema=0.99)
    resumed = _train_lifter(tiny, tmp_path / "resumed", epochs=3, batch_size=32, ema=0.99, resume=True)
    assert resumed["best"] == straight["best"]
    a = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)
    assert a["ema"]["steps"] == b["ema"]["steps"] == 3 * len(tiny[0]) // 32
    for x, y in zip(a["ema"]["params"], b["ema"]["params"], strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
    # best.pt holds the average, not the weights the optimizer left (after one epoch, best.pt is that epoch's).
    _train_lifter(tiny, tmp_path / "one", epochs=1, batch_size=32, ema=0.99)
    state = torch.load(tmp_path / "one" / "last.pt", weights_only=True)
    best = load_checkpoint(tmp_path / "one" / "best.pt").lifter_state
    names = [name for name, _ in LifterTask("mgcn_lw", *tiny).model.named_parameters()]
    for name, averaged in zip(names, state["ema"]["params"], strict=True):
        torch.testing.assert_close(best[name], averaged, rtol=0, atol=0)
    assert any(not torch.equal(best[name], state["model"][name]) for name in names)
    with pytest.raises(CheckpointError, match="settings differ .*ema 0.99 -> None"):
        _train_lifter(tiny, tmp_path / "resumed", epochs=4, batch_size=32, resume=True)
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(InputError, match="weight-average decay \\(--ema\\) must be between 0 and 1"):
            _train_lifter(tiny, tmp_path / "bad", epochs=1, ema=bad)


def _weight_norm(path):
    weights = torch.load(path, weights_only=True)["model"]
    return torch.sqrt(sum((v.float() ** 2).sum() for k, v in weights.items() if k.endswith("weight")))


def test_weight_decay_shrinks_the_weights_and_must_not_change_on_resume(tiny, tmp_path):
    # 64 steps at lr 2e-3 with decay 0.9 multiply every weight by (1 - 1.8e-3) ** 64 = 0.89
    _train_lifter(tiny, tmp_path / "plain", epochs=1, batch_size=16)
    _train_lifter(tiny, tmp_path / "decayed", epochs=1, batch_size=16, weight_decay=0.9)
    assert _weight_norm(tmp_path / "decayed" / "last.pt") < 0.95 * _weight_norm(tmp_path / "plain" / "last.pt")
    with pytest.raises(CheckpointError, match="settings differ .*weight_decay 0.9 -> 0.1"):
        _train_lifter(tiny, tmp_path / "decayed", epochs=2, batch_size=16, resume=True, weight_decay=0.1)
    for bad in (-0.1, 500.0):  # 500 x lr 2e-3 = 1: every step would zero the weights
        with pytest.raises(InputError, match="weight decay must be >= 0 and below 1 / learning rate"):
            _train_lifter(tiny, tmp_path / "bad", epochs=1, weight_decay=bad)


def test_a_state_from_before_weight_decay_resumes_only_without_it(tiny, tmp_path):
    _train_lifter(tiny, tmp_path, epochs=1)
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    del state["settings"]["weight_decay"]  # as written before the setting existed
    torch.save(state, tmp_path / "last.pt")
    with pytest.raises(CheckpointError, match="weight_decay 0.0 -> 0.1"):
        _train_lifter(tiny, tmp_path, epochs=2, resume=True, weight_decay=0.1)
    assert _train_lifter(tiny, tmp_path, epochs=2, resume=True)["epochs"] == 2


def test_avg_pseudo_labels_are_cached_per_lifter_and_keypoints(tiny, tmp_path):
    _train_lifter(tiny, tmp_path / "lifter", epochs=1)
    lifter = load_checkpoint(tmp_path / "lifter" / "best.pt")
    cache = tmp_path / "cache"
    task = AVGTask(lifter, *tiny, cache_dir=cache)
    files = sorted(cache.glob("*.npz"))
    assert len(files) == 2  # train and test split
    # Targets: per-joint errors of the frozen lifter on the (mirror-augmented) inputs, mean 1.
    assert task.inputs.shape == (2 * len(tiny[0]), 17, 2)
    assert float(task.targets.mean()) == pytest.approx(1.0, rel=1e-4)
    stamp = [f.stat().st_mtime_ns for f in files]
    AVGTask(lifter, *tiny, cache_dir=cache)
    assert [f.stat().st_mtime_ns for f in sorted(cache.glob("*.npz"))] == stamp  # reused, not recomputed
    # Another keypoint source: new labels.
    noisy = load_dataset("synthetic", "train", "noisy", synthetic_size=1024), tiny[1]
    AVGTask(lifter, *noisy, cache_dir=cache)
    assert len(list(cache.glob("*.npz"))) == 3
    # Another lifter checkpoint: new labels, and they differ.
    state = {k: v + 0.01 if v.is_floating_point() else v for k, v in lifter.lifter_state.items()}
    changed = type(lifter)(lifter.config, state, None, {})
    assert state_fingerprint(state) != lifter.lifter_fingerprint()
    other = AVGTask(changed, *tiny, cache_dir=cache)
    assert len(list(cache.glob("*.npz"))) == 5
    assert not np.allclose(other.targets.numpy(), task.targets.numpy())


def test_avg_training_produces_a_sampling_checkpoint(tiny, tmp_path):
    _train_lifter(tiny, tmp_path / "lifter", epochs=1)
    lifter = load_checkpoint(tmp_path / "lifter" / "best.pt")
    task = AVGTask(lifter, *tiny, alpha=0.01, cache_dir=tmp_path / "cache")
    summary = fit(task, TrainSettings(epochs=2, batch_size=256, lr=1e-3), tmp_path / "avg", CPU)
    ckpt = load_checkpoint(tmp_path / "avg" / "best.pt")
    assert ckpt.has_avg and ckpt.config.avg == "mlp" and ckpt.config.alpha == 0.01
    assert ckpt.lifter_fingerprint() == lifter.lifter_fingerprint()  # the lifter is frozen
    assert summary["best"] < 10
    ckpt.build_avg()


def test_patience_stops_when_validation_stops_improving(tiny, tmp_path, monkeypatch):
    metrics = iter([5.0, 4.0, 4.5, 4.2, 4.1, 3.0])
    monkeypatch.setattr(LifterTask, "validate", lambda self, model: next(metrics))
    torch.manual_seed(0)
    summary = fit(LifterTask("mgcn_lw", *tiny), TrainSettings(epochs=6, batch_size=256, patience=3), tmp_path, CPU)
    assert summary["epochs"] == 5 and summary["best_epoch"] == 2  # epochs 3, 4, 5 did not beat epoch 2


def test_htnet_and_its_gcn_avg_train(tmp_path):
    # The HTNet pairing was not trained on Human3.6M here (CPU only); this keeps its training path honest.
    torch.manual_seed(0)
    small = load_dataset("synthetic", "train", synthetic_size=256), load_dataset("synthetic", "test", synthetic_size=64)
    summary = fit(
        LifterTask("htnet", *small), TrainSettings(epochs=2, batch_size=64, lr=1e-3, seed=1), tmp_path / "lifter", CPU
    )
    assert summary["history"][-1]["train_loss"] < summary["history"][0]["train_loss"]
    lifter = load_checkpoint(tmp_path / "lifter" / "best.pt")
    assert lifter.config.lifter == "htnet"
    task = AVGTask(lifter, *small, cache_dir=tmp_path / "cache")
    fit(task, TrainSettings(epochs=1, batch_size=128, lr=1e-3), tmp_path / "avg", CPU)
    ckpt = load_checkpoint(tmp_path / "avg" / "best.pt")
    assert ckpt.config.avg == "gcn" and ckpt.lifter_fingerprint() == lifter.lifter_fingerprint()


def test_learning_rate_schedules():
    s = TrainSettings(lr=1e-3, schedule="samples", sample_decay=0.5, decay_every_samples=1000)
    assert (
        s.lr_at(1, 0, 10) == 1e-3
        and s.lr_at(1, 999, 10) == 1e-3
        and s.lr_at(1, 1000, 10) == 5e-4
        and s.lr_at(9, 2500, 10) == 2.5e-4
    )
    e = TrainSettings(lr=1e-3)  # epoch schedule: x0.95 after epochs 1-4, x0.5 after the 5th
    assert e.lr_at(1, 10**9, 10) == 1e-3 and e.lr_at(6, 0, 10) == pytest.approx(1e-3 * 0.95**4 * 0.5)
    c = TrainSettings(lr=1e-3, schedule="cosine", epochs=4, cosine_floor=0.01)  # 4 epochs of 100 samples
    assert c.lr_at(1, 0, 100) == pytest.approx(1e-3) and c.lr_at(3, 200, 100) == pytest.approx(
        1e-3 * (0.01 + 0.99 * 0.5)
    )
    assert c.lr_at(4, 400, 100) == pytest.approx(1e-5) and c.lr_at(2, 150, 100) > c.lr_at(2, 160, 100)
    with pytest.raises(InputError, match="schedule"):
        TrainSettings(schedule="linear").validate()


def test_avg_pseudo_labels_from_held_out_fold_lifters(tiny, tmp_path):
    from posedeploy.training.folds import fold_of, parse_fold, without_fold

    train, val = tiny
    assert parse_fold("1/2") == (1, 2)
    with pytest.raises(InputError):
        parse_fold("2/2")
    folds = fold_of(train, 2)
    assert set(np.unique(folds)) == {0, 1}
    for subject in np.unique(train.subjects):  # a subject is never split between folds
        assert len(set(folds[train.subjects == subject])) == 1
    lifters = []
    for k in range(2):
        torch.manual_seed(k)
        part = without_fold(train, (k, 2))
        assert not np.any(np.isin(part.subjects, train.subjects[folds == k]))
        fit(LifterTask("mgcn_lw", part, val), TrainSettings(epochs=1, batch_size=128, lr=2e-3), tmp_path / f"f{k}", CPU)
        lifters.append(load_checkpoint(tmp_path / f"f{k}" / "best.pt"))
        assert lifters[-1].config.training["fold"] == [k, 2]
    _train_lifter(tiny, tmp_path / "main", epochs=1)
    main = load_checkpoint(tmp_path / "main" / "best.pt")
    task = AVGTask(main, train, val, fold_lifters=lifters, cache_dir=tmp_path / "cache")
    assert task.pseudo_labels["from"] == "held-out folds" and len(task.inputs) == 2 * len(train)
    # Each sample's label is the error of the lifter that did not see it.
    held_out = lifters[1].build_lifter()
    rows = np.flatnonzero(folds == 1)[:5]
    with torch.no_grad():
        pred = held_out(torch.from_numpy(train.keypoints[rows])).numpy()
    error = np.linalg.norm(pred - train.poses_3d[rows], axis=-1)
    matches = [np.any(np.all(np.isclose(task.targets.numpy() * task.error_mean, e, atol=1e-5), axis=1)) for e in error]
    assert all(matches)
    with pytest.raises(CheckpointError, match="each fold"):
        AVGTask(main, train, val, fold_lifters=lifters[:1], cache_dir=tmp_path / "cache")
    with pytest.raises(CheckpointError, match="not trained with --fold"):
        AVGTask(main, train, val, fold_lifters=[main, lifters[1]], cache_dir=tmp_path / "cache")


def test_a_diverged_run_stops_with_an_error_and_writes_no_best(tiny, tmp_path):
    from posedeploy.errors import TrainingError

    class Diverging(LifterTask):
        def loss(self, model, x, y, gen):
            return super().loss(model, x, y, gen) * float("nan")

    with pytest.raises(TrainingError, match="diverged in epoch 1"):
        fit(Diverging("mgcn_lw", *tiny), TrainSettings(epochs=2, batch_size=256), tmp_path, CPU)
    assert not (tmp_path / "best.pt").exists() and not (tmp_path / "last.pt").exists()


def test_resume_restores_an_epoch_the_log_lost_and_a_second_trainer_is_refused(tiny, tmp_path):
    from posedeploy.files import folder_lock

    _train_lifter(tiny, tmp_path, epochs=2)
    log_path = tmp_path / "log.jsonl"
    log_path.write_text(log_path.read_text().splitlines(keepends=True)[0])  # killed after last.pt, before the log
    _train_lifter(tiny, tmp_path, epochs=3, resume=True)
    assert [json.loads(line)["epoch"] for line in log_path.read_text().splitlines()] == [1, 2, 3]
    with folder_lock(tmp_path, "train"), pytest.raises(InputError, match="is being written by"):
        _train_lifter(tiny, tmp_path, epochs=4, resume=True)


def test_a_damaged_or_foreign_training_state_is_refused_in_one_line(tiny, tmp_path):
    from posedeploy.training.models import build_model

    _train_lifter(tiny, tmp_path, epochs=1)
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    for key in ("model", "identity", "epoch", "optimizer", "history"):
        torch.save({k: v for k, v in state.items() if k != key}, tmp_path / "last.pt")
        with pytest.raises(CheckpointError, match=f"damaged or incomplete \\({key} missing"):
            _train_lifter(tiny, tmp_path, epochs=2, resume=True)
    torch.save({**state, "model": build_model("lifter", "htnet").state_dict()}, tmp_path / "last.pt")
    with pytest.raises(CheckpointError, match="its weights do not fit this lifter/mgcn_lw model"):
        _train_lifter(tiny, tmp_path, epochs=2, resume=True)


def test_training_onto_a_full_disk_is_a_one_line_error(tmp_path):
    """A file-size limit makes every write past 300 kB fail as a full disk would (EFBIG for ENOSPC)."""
    import resource
    import signal
    import subprocess
    import sys

    def limit_writes():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))

    out = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "posedeploy.cli",
            "train",
            "lifter",
            "--epochs",
            "1",
            "--stride",
            "40",
            "--val-stride",
            "20",
            "--out",
            str(out),
        ],
        preexec_fn=limit_writes,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert lines[-1].startswith(f"error: cannot write {out / 'best.pt'}: the write failed, is the disk full?")
    assert sorted(p.name for p in out.iterdir()) == []  # no half-written checkpoint left behind
