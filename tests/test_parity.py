"""Accuracy parity of the exported graphs (ONNX Runtime, CPU) against the PyTorch reference."""

import pytest
from helpers import random_checkpoint

from posedeploy.assets import ASSETS, SHIPPED
from posedeploy.data import evenly_spaced, load_dataset
from posedeploy.errors import ArtifactError
from posedeploy.export.onnx_export import export_artifacts
from posedeploy.parity import run_parity


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """Both lifters exported with their FP16 graphs, from the shipped checkpoints."""
    root = tmp_path_factory.mktemp("parity")
    out = {}
    for name in ("mgcn_lw", "htnet"):
        ckpt = ASSETS / SHIPPED[name]
        export_artifacts(ckpt, root / name, fp16=True)
        out[name] = (ckpt, root / name)
    return out


@pytest.fixture(scope="module")
def poses():
    return load_dataset("synthetic", "test")


@pytest.mark.parametrize("lifter", ["mgcn_lw", "htnet"])
@pytest.mark.parametrize("precision, limit_mm", [("fp32", 0.01), ("fp16", 0.5)])
@pytest.mark.parametrize("b", [1, 7])
@pytest.mark.parametrize("s", [1, 200])
def test_golden_noise_parity(exports, poses, lifter, precision, limit_mm, b, s):
    ckpt, artifacts = exports[lifter]
    report = run_parity(ckpt, artifacts, evenly_spaced(poses, b), hypotheses=s, precision=precision, seed=b + s)
    assert report.samples == b and report.hypotheses == s
    assert report.task["mean hypothesis error (mm)"] <= limit_mm, report.format()
    assert report.passed
    if precision == "fp32":
        assert report.outputs["hypotheses"].max_abs < 0.01  # mm
        assert report.outputs["sigma"].max_abs < 1e-6
    else:
        # a change of a task metric is bounded by the hypotheses' own change (triangle inequality) ...
        assert report.task["delta best-of-S MPJPE (mm)"] <= report.task["mean hypothesis error (mm)"] + 1e-6
        if b * s > 1:  # ... and, once it averages over several, small: FP16 does not bias the metric
            assert report.task["delta best-of-S MPJPE (mm)"] < 0.2


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_free_noise_distributions_agree(exports, poses, precision):
    ckpt, artifacts = exports["mgcn_lw"]
    report = run_parity(ckpt, artifacts, evenly_spaced(poses, 16), hypotheses=200, precision=precision, free_noise=True)
    assert report.passed, report.format()
    if precision == "fp32":
        assert report.task["relative spread difference"] < 0.15


def test_artifact_of_another_checkpoint_is_refused(exports, tmp_path, poses):
    other = random_checkpoint(tmp_path / "other.pt", seed=9)
    with pytest.raises(ArtifactError, match="exported from another checkpoint"):
        run_parity(other, exports["mgcn_lw"][1], evenly_spaced(poses, 2), hypotheses=2)


def test_the_checkpoint_defaults_to_the_one_the_manifest_names(tmp_path, poses):
    ckpt = random_checkpoint(tmp_path / "mine.pt", seed=4)
    export_artifacts(ckpt, tmp_path / "a")
    assert run_parity(None, tmp_path / "a", evenly_spaced(poses, 2), hypotheses=2).passed
    ckpt.rename(tmp_path / "moved.pt")
    with pytest.raises(ArtifactError, match="mine.pt .* not here any more: pass that checkpoint with --checkpoint"):
        run_parity(None, tmp_path / "a", evenly_spaced(poses, 2), hypotheses=2)
