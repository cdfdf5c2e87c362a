import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import random_checkpoint

from posedeploy.errors import CheckpointError
from posedeploy.training.checkpoint import (
    FORMAT_VERSION,
    Checkpoint,
    PipelineConfig,
    content_hash,
    load_checkpoint,
    save_checkpoint,
    state_fingerprint,
)
from posedeploy.training.models import build_model
from posedeploy.training.weight_storage import quantize_int8, stored_as_int8


def _checkpoint(lifter="mgcn_lw") -> Checkpoint:
    torch.manual_seed(0)
    config = PipelineConfig.for_lifter(lifter, keypoints="synthetic/gt").with_avg()
    lifter_model, avg_model = build_model("lifter", lifter), build_model("avg", config.avg)
    return Checkpoint(config, lifter_model.state_dict(), avg_model.state_dict(), {"note": "test"})


def test_round_trip_keeps_config_and_weights(tmp_path):
    ckpt = _checkpoint()
    save_checkpoint(tmp_path / "c.pt", ckpt)
    loaded = load_checkpoint(tmp_path / "c.pt")
    assert loaded.config == ckpt.config
    assert loaded.config.avg == "mlp" and loaded.config.alpha == 0.005
    assert state_fingerprint(loaded.lifter_state) == state_fingerprint(ckpt.lifter_state)
    original = build_model("lifter", "mgcn_lw")
    original.load_state_dict(ckpt.lifter_state)
    x = torch.randn(3, 17, 2)
    with torch.no_grad():
        torch.testing.assert_close(loaded.build_lifter()(x), original.eval()(x), rtol=0, atol=0)
    assert not list(tmp_path.glob("*.partial"))


def test_the_same_checkpoint_saves_to_the_same_bytes(tmp_path):
    """A shipped file's hash is named in its model card: re-saving the same weights must not change it."""
    ckpt = _checkpoint()
    first, second = save_checkpoint(tmp_path / "a.pt", ckpt), save_checkpoint(tmp_path / "b.pt", ckpt)
    assert first.read_bytes() == second.read_bytes()


def test_lifter_only_checkpoint_cannot_sample(tmp_path):
    ckpt = _checkpoint()
    save_checkpoint(tmp_path / "l.pt", Checkpoint(PipelineConfig.for_lifter("mgcn_lw"), ckpt.lifter_state))
    with pytest.raises(CheckpointError, match="holds only a lifter"):
        load_checkpoint(tmp_path / "l.pt").build_avg()


def test_malicious_pickle_is_refused(malicious_pickle):
    with pytest.raises(CheckpointError, match="refusing to load .* arbitrary code"):
        load_checkpoint(malicious_pickle)


def test_corrupted_truncated_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    save_checkpoint(tmp_path / "c.pt", _checkpoint())
    data = (tmp_path / "c.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupted"):
        load_checkpoint(tmp_path / "truncated.pt")
    torch.save(build_model("lifter", "mgcn_lw").state_dict(), tmp_path / "bare.pt")
    with pytest.raises(CheckpointError, match="bare state dict .* import-checkpoint"):
        load_checkpoint(tmp_path / "bare.pt")
    payload = torch.load(tmp_path / "c.pt", weights_only=True)
    torch.save({**payload, "format_version": FORMAT_VERSION + 1}, tmp_path / "newer.pt")
    with pytest.raises(CheckpointError, match="format version"):
        load_checkpoint(tmp_path / "newer.pt")


def test_weights_of_another_model_are_named(tmp_path):
    ckpt = _checkpoint()
    wrong = Checkpoint(PipelineConfig.for_lifter("htnet"), ckpt.lifter_state)
    save_checkpoint(tmp_path / "wrong.pt", wrong)
    with pytest.raises(CheckpointError, match="weights do not fit the lifter 'htnet'"):
        load_checkpoint(tmp_path / "wrong.pt").build_lifter()
    state = dict(ckpt.lifter_state)
    state["gcn.gconv_output.W"] = torch.zeros(1, 64, 3)
    save_checkpoint(tmp_path / "shape.pt", Checkpoint(ckpt.config, state, ckpt.avg_state))
    with pytest.raises(CheckpointError, match=r"gcn.gconv_output.W has shape \(1, 64, 3\)"):
        load_checkpoint(tmp_path / "shape.pt").build_lifter()


def test_non_finite_weights_and_alpha_are_refused_on_save_and_load(tmp_path):
    import dataclasses

    ckpt = _checkpoint()
    name = next(k for k, v in ckpt.lifter_state.items() if v.is_floating_point())
    poisoned = Checkpoint(
        ckpt.config, {**ckpt.lifter_state, name: ckpt.lifter_state[name].clone().fill_(float("nan"))}, ckpt.avg_state
    )
    with pytest.raises(CheckpointError, match="non-finite value"):
        save_checkpoint(tmp_path / "nan.pt", poisoned)
    assert not (tmp_path / "nan.pt").exists()
    # A file written by something else with NaN weights is refused when read.
    save_checkpoint(tmp_path / "ok.pt", ckpt)
    payload = torch.load(tmp_path / "ok.pt", weights_only=True)
    payload["lifter"][name] = payload["lifter"][name].clone().fill_(float("inf"))
    payload["content_sha256"] = content_hash(payload)  # consistent, so that the finite check is what refuses it
    torch.save(payload, tmp_path / "inf.pt")
    with pytest.raises(CheckpointError, match=f"non-finite value\\(s\\) in '{name}'"):
        load_checkpoint(tmp_path / "inf.pt")
    with pytest.raises(CheckpointError, match="alpha must be a finite number"):
        save_checkpoint(
            tmp_path / "a.pt", dataclasses.replace(ckpt, config=dataclasses.replace(ckpt.config, alpha=float("inf")))
        )


def test_a_flipped_byte_in_a_weight_is_detected(tmp_path):
    ckpt = _checkpoint()
    save_checkpoint(tmp_path / "c.pt", ckpt)
    data = bytearray((tmp_path / "c.pt").read_bytes())
    name, tensor = max(ckpt.lifter_state.items(), key=lambda kv: kv[1].numel())
    at = bytes(data).find(tensor.contiguous().numpy().tobytes()[:64])
    assert at > 0  # torch stores tensor bytes uncompressed
    data[at + 33] ^= 0x10
    (tmp_path / "flipped.pt").write_bytes(bytes(data))
    # torch itself loads the changed weights without a word (it does not check the zip CRC) ...
    changed = torch.load(tmp_path / "flipped.pt", weights_only=True)["lifter"][name]
    assert not torch.equal(changed, tensor)
    # ... the content hash does not
    with pytest.raises(CheckpointError, match="damaged or was altered"):
        load_checkpoint(tmp_path / "flipped.pt")
    payload = torch.load(tmp_path / "c.pt", weights_only=True)
    payload["config"]["alpha"] = 0.05  # an edited setting is a change too
    torch.save(payload, tmp_path / "edited.pt")
    with pytest.raises(CheckpointError, match="damaged or was altered"):
        load_checkpoint(tmp_path / "edited.pt")


def test_format_1_checkpoints_without_a_hash_load_with_a_warning(tmp_path, caplog):
    save_checkpoint(tmp_path / "c.pt", _checkpoint())
    payload = torch.load(tmp_path / "c.pt", weights_only=True)
    torch.save({**payload, "format_version": 1}, tmp_path / "relabelled.pt")  # a later file, its hash kept
    with pytest.raises(CheckpointError, match="says checkpoint format version 1 but holds content_sha256"):
        load_checkpoint(tmp_path / "relabelled.pt")
    del payload["content_sha256"]
    torch.save({**payload, "format_version": 1}, tmp_path / "v1.pt")
    caplog.clear()
    assert load_checkpoint(tmp_path / "v1.pt").config.lifter == "mgcn_lw"
    [record] = caplog.records  # said on every load, as a warning
    assert record.levelname == "WARNING" and "damage or tampering cannot be detected" in record.getMessage()
    for version in (0, -1, True, "1"):
        torch.save({**payload, "format_version": version}, tmp_path / "odd.pt")
        with pytest.raises(CheckpointError, match="checkpoint format version"):
            load_checkpoint(tmp_path / "odd.pt")
    torch.save(payload, tmp_path / "v2-without-hash.pt")
    with pytest.raises(CheckpointError, match="damaged or was altered"):
        load_checkpoint(tmp_path / "v2-without-hash.pt")


def test_int8_storage_loads_as_f32_within_half_a_step_and_shrinks_the_file(tmp_path):
    ckpt = _checkpoint("htnet")
    f32 = save_checkpoint(tmp_path / "f32.pt", ckpt)
    int8 = save_checkpoint(tmp_path / "int8.pt", dataclasses.replace(ckpt, weights="int8"))
    loaded = load_checkpoint(int8)
    assert loaded.weights == "int8" and load_checkpoint(f32).weights == "f32"
    assert int8.stat().st_size < 0.4 * f32.stat().st_size
    quantized = 0
    for part in ("lifter_state", "avg_state"):
        before, after = getattr(ckpt, part), getattr(loaded, part)
        assert set(before) == set(after)
        for name, tensor in before.items():
            assert after[name].dtype == tensor.dtype
            if not stored_as_int8(tensor):
                assert torch.equal(after[name], tensor), name  # biases, norms, small matrices stay exact
                continue
            quantized += 1
            half_step = tensor.abs().amax(dim=-1, keepdim=True) / 254
            assert bool(((after[name] - tensor).abs() <= half_step * (1 + 1e-4)).all()), name
    assert quantized > 10
    x = torch.randn(4, 17, 2)
    with torch.no_grad():
        reference, stored = ckpt_lifter(ckpt)(x), loaded.build_lifter()(x)
    assert float((stored - reference).abs().max()) < 0.05 * float(reference.abs().max())


def ckpt_lifter(ckpt):
    model = build_model("lifter", ckpt.config.lifter)
    model.load_state_dict(ckpt.lifter_state)
    return model.eval()


def test_int8_checkpoint_resaves_to_the_same_bytes(tmp_path):
    """Shipping re-saves a checkpoint (to set alpha): the integers and scales must survive the round trip."""
    # From a checkpoint read from disk, as shipping does: a fresh state_dict pickles differently.
    trained = load_checkpoint(save_checkpoint(tmp_path / "trained.pt", _checkpoint("htnet")))
    first = save_checkpoint(tmp_path / "a.pt", dataclasses.replace(trained, weights="int8"))
    second = save_checkpoint(tmp_path / "b.pt", load_checkpoint(first))
    assert first.read_bytes() == second.read_bytes()


def test_int8_rows_keep_their_own_scale():
    tensor = torch.stack([torch.linspace(-1e-3, 1e-3, 300), torch.linspace(-50, 50, 300)])
    values, scale = quantize_int8(tensor)
    assert values.dtype == torch.int8 and scale.shape == (2, 1)
    assert int(values.abs().amax()) == 127 and int(values[0].abs().amax()) == 127  # the small row uses every level
    assert torch.equal(quantize_int8(torch.zeros(3, 2000))[0], torch.zeros(3, 2000, dtype=torch.int8))


def test_damaged_int8_storage_is_named(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", dataclasses.replace(_checkpoint("htnet"), weights="int8"))
    payload = torch.load(path, weights_only=True)
    name = next(iter(payload["scales"]["lifter"]))
    del payload["scales"]["lifter"][name]
    payload["content_sha256"] = content_hash(payload)
    torch.save(payload, tmp_path / "no_scale.pt")
    with pytest.raises(CheckpointError, match=f"incomplete .*'{name}' is int8 without a scale"):
        load_checkpoint(tmp_path / "no_scale.pt")
    payload = torch.load(path, weights_only=True)
    payload["scales"]["lifter"][name] = payload["scales"]["lifter"][name] * 1.001
    torch.save(payload, tmp_path / "altered.pt")
    with pytest.raises(CheckpointError, match="damaged or was altered"):
        load_checkpoint(tmp_path / "altered.pt")
    with pytest.raises(CheckpointError, match="weight storage must be one of"):
        save_checkpoint(tmp_path / "bad.pt", dataclasses.replace(_checkpoint(), weights="int4"))
    assert not (tmp_path / "bad.pt").exists()


def test_int8_checkpoint_script(tmp_path):
    source = random_checkpoint(tmp_path / "htnet.pt", lifter="htnet", seed=2)
    script = Path(__file__).resolve().parents[1] / "scripts" / "int8_checkpoint.py"
    run = lambda *args: subprocess.run([sys.executable, script, *args], capture_output=True, text=True, timeout=300)  # noqa: E731
    result = run(source, tmp_path / "int8.pt")
    assert result.returncode == 0, result.stderr
    assert re.search(r"lifter: largest change .* (\d\.\d+e-0[34])", result.stdout)
    assert load_checkpoint(tmp_path / "int8.pt").weights == "int8"
    assert "MiB ->" in result.stdout
    refused = run(source, source)
    assert refused.returncode != 0 and "another file" in refused.stderr
    assert load_checkpoint(source).weights == "f32"
