"""Dropout in the graph lifter and jitter of the 2D input: on only while training, recorded in the
run, and refused clearly where they do not apply."""

import pytest
import torch

from posedeploy.data import load_dataset
from posedeploy.errors import CheckpointError, InputError
from posedeploy.training.checkpoint import load_checkpoint
from posedeploy.training.distributed import Context
from posedeploy.training.lifter_training import LifterTask
from posedeploy.training.models import build_model
from posedeploy.training.models.graph_conv import set_dropout
from posedeploy.training.trainer import TrainSettings, fit


@pytest.fixture(scope="module")
def tiny():
    return load_dataset("synthetic", "train", synthetic_size=256), load_dataset("synthetic", "test", synthetic_size=64)


def test_dropout_acts_only_while_training_and_leaves_the_weights_alone():
    torch.manual_seed(0)
    plain = build_model("lifter", "mgcn_lw")
    dropped = build_model("lifter", "mgcn_lw")
    dropped.load_state_dict(plain.state_dict())
    assert set_dropout(dropped, 0.3) == 9  # the input block and two in each of the 4 residual blocks
    assert dropped.state_dict().keys() == plain.state_dict().keys()
    x = torch.randn(32, 17, 2)
    with torch.no_grad():
        torch.testing.assert_close(dropped.eval()(x), plain.eval()(x), rtol=0, atol=0)
        dropped.train(), plain.train()
        assert not torch.allclose(dropped(x), plain(x))
        assert not torch.allclose(dropped(x), dropped(x))  # a new mask every call


def test_dropout_keeps_the_expected_activation():
    # Inverted dropout: the kept features are scaled by 1 / (1 - p), so the mean is unchanged.
    torch.manual_seed(0)
    model = build_model("lifter", "mgcn_lw")
    block = model.gcn.gconv_input[0]
    x = torch.randn(4096, 17, 2)
    with torch.no_grad():
        clean = block.train()(x)
        set_dropout(model, 0.5)
        noisy = block(x)
    zeroed = ((noisy == 0) & (clean != 0)).sum() / (clean != 0).sum()
    assert zeroed.item() == pytest.approx(0.5, abs=0.01)
    assert noisy.mean().item() == pytest.approx(clean.mean().item(), rel=0.02)


class _Recorder(torch.nn.Module):
    """A lifter stand-in that keeps the 2D it was given."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.seen = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return torch.zeros(*x.shape[:-1], 3) * self.scale


def test_input_noise_jitters_the_training_2d_by_its_standard_deviation(tiny):
    task = LifterTask("mgcn_lw", *tiny, augment=False, input_noise=0.01)
    task.model = recorder = _Recorder()
    x, y = task.inputs[:200], task.targets[:200]
    task.loss(recorder, x, y, torch.Generator().manual_seed(0))
    shift = recorder.seen[0] - x
    assert shift.std().item() == pytest.approx(0.01, rel=0.05) and abs(shift.mean().item()) < 1e-3
    clean = LifterTask("mgcn_lw", *tiny, augment=False)
    clean.loss(recorder, x, y, torch.Generator().manual_seed(0))
    torch.testing.assert_close(recorder.seen[1], x, rtol=0, atol=0)


def test_a_regularised_run_records_its_choices_and_resumes_only_with_them(tiny, tmp_path):
    settings = TrainSettings(epochs=1, batch_size=64, lr=1e-3)
    fit(LifterTask("mgcn_lw", *tiny, input_noise=0.004, dropout=0.2), settings, tmp_path, Context())
    training = load_checkpoint(tmp_path / "best.pt").config.training
    assert training["input_noise"] == 0.004 and training["dropout"] == 0.2
    with pytest.raises(CheckpointError, match=r"trains something else \(dropout 0.2 -> \(none\)\)"):
        fit(
            LifterTask("mgcn_lw", *tiny, input_noise=0.004),
            TrainSettings(epochs=2, batch_size=64, lr=1e-3),
            tmp_path,
            Context(),
            resume=True,
        )
    plain = LifterTask("mgcn_lw", *tiny)
    assert "input_noise" not in plain.identity() and "dropout" not in plain.identity()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"input_noise": -0.1}, "input noise must be >= 0"),
        ({"input_noise": float("nan")}, "input noise must be >= 0"),
        ({"dropout": 1.0}, "dropout must be >= 0 and < 1"),
        ({"dropout": 0.1, "lifter": "htnet"}, "--dropout applies to the graph-convolution lifters"),
    ],
)
def test_unusable_values_are_refused(tiny, kwargs, message):
    lifter = kwargs.pop("lifter", "mgcn_lw")
    with pytest.raises(InputError, match=message):
        LifterTask(lifter, *tiny, **kwargs)


def test_batchnorm_statistics_are_re_estimated_without_dropout(tiny):
    # Precise BN must see the network as evaluation runs it: with dropout left on, the variances
    # would be those of the dropped activations.
    from posedeploy.training.trainer import recalibrate_batchnorm

    weights, stats = build_model("lifter", "mgcn_lw").state_dict(), []
    for p in (0.0, 0.5):
        task = LifterTask("mgcn_lw", *tiny, dropout=p)
        task.model.load_state_dict(weights)
        task.model.train()
        recalibrate_batchnorm(task.model, task, 64, torch.Generator().manual_seed(0))
        assert task.model.training and task.model.gcn.gconv_input[0].training  # modes restored
        stats.append({k: v for k, v in task.model.state_dict().items() if "running" in k})
    for key in stats[0]:
        torch.testing.assert_close(stats[1][key], stats[0][key], rtol=0, atol=0)


def test_joined_splits_keep_every_sample_and_name_both(tiny):
    train, val = (part.take(slice(None)) for part in tiny)  # copies: their meta is changed below
    train.meta["split"], val.meta["split"] = "train", "val"
    both = train.join(val)
    assert len(both) == len(train) + len(val) and both.meta["split"] == "train+val"
    train.meta["subjects"], val.meta["subjects"], val.meta["stride"] = ["S1", "S5"], ["S8"], 7
    both = train.join(val)
    assert both.meta["subjects"] == ["S1", "S5", "S8"] and "stride" not in both.meta  # the strides differ
    assert (both.keypoints[len(train) :] == val.keypoints).all() and (
        both.subjects[: len(train)] == train.subjects
    ).all()
    other = load_dataset("synthetic", "val", "noisy", synthetic_size=8)
    with pytest.raises(InputError, match="cannot join poses of synthetic/gt and of synthetic/noisy"):
        train.join(other)


def test_a_refit_writes_every_epoch_and_says_so(tiny, tmp_path):
    # The validation data is inside the training data: nothing to choose with, so best.pt is the
    # last epoch whatever its (in-sample) error.
    train, val = tiny
    torch.manual_seed(0)
    task = LifterTask("mgcn_lw", train.join(val), val, refit=True)
    assert not task.selects and task.identity()["refit"] is True
    worsening = iter([40.0, 50.0, 60.0])
    task.validate = lambda model: next(worsening)
    summary = fit(task, TrainSettings(epochs=3, batch_size=64, lr=1e-3), tmp_path, Context())
    assert summary["best_epoch"] == 3 and summary["best"] == 60.0
    training = load_checkpoint(tmp_path / "best.pt").config.training
    assert training["refit"] is True and training["epoch"] == 3
