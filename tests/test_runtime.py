"""The torch-free runtime on exported artifacts: contract outputs, input handling, refusals."""

import json
import logging
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import needs_torch

from posedeploy.data.camera import image_coordinates
from posedeploy.errors import ArtifactError, InputError
from posedeploy.runtime import MultiHypothesisLifter
from posedeploy.runtime.onnxruntime_backend import OnnxRuntimeBackend


@pytest.fixture(scope="module")
def artifacts(exported):
    return exported


@pytest.fixture(scope="module")
def lifter(artifacts):
    with MultiHypothesisLifter(artifacts) as lifter:
        yield lifter


KP = np.random.default_rng(0).normal(scale=0.3, size=(5, 17, 2)).astype(np.float32)


def test_runtime_imports_neither_torch_nor_onnx(artifacts):
    code = (
        "import sys, numpy as np\n"
        "from posedeploy.runtime import MultiHypothesisLifter\n"
        f"r = MultiHypothesisLifter({str(artifacts)!r})(np.zeros((2, 17, 2), np.float32), hypotheses=3, seed=0)\n"
        "assert r.hypotheses.shape == (2, 3, 17, 3)\n"
        "bad = [m for m in ('torch', 'onnx') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # the library logs (here: which backend 'auto' took); it prints nothing itself


def test_contract_shapes_units_and_reproducibility(lifter):
    mm = lifter(KP, hypotheses=20, seed=1)
    m = lifter(KP, hypotheses=20, seed=1, units="m")
    assert mm.hypotheses.shape == (5, 20, 17, 3) and mm.pose.shape == (5, 17, 3)
    assert mm.spread.shape == (5, 17) and mm.sigma.shape == (5, 2, 17) and mm.units == "mm"
    np.testing.assert_allclose(mm.hypotheses, m.hypotheses * 1000, rtol=1e-6)
    np.testing.assert_array_equal(mm.sigma, m.sigma)
    np.testing.assert_array_equal(mm.hypotheses[:, :, 0], 0)
    again = lifter(KP, hypotheses=20, seed=1)
    np.testing.assert_array_equal(again.hypotheses, mm.hypotheses)


def test_chunking_and_single_frames(artifacts):
    with MultiHypothesisLifter(artifacts, max_poses=16) as small, MultiHypothesisLifter(artifacts) as big:
        a = small(KP, hypotheses=30, seed=2)  # S split across calls inside each pose
        b = big(KP, hypotheses=30, seed=2)
        np.testing.assert_allclose(a.hypotheses, b.hypotheses, atol=1e-4)
        np.testing.assert_allclose(a.pose, b.pose, atol=1e-4)
        np.testing.assert_allclose(a.spread, b.spread, atol=1e-4)
        one = big(KP[0], hypotheses=30, seed=2)  # (17, 2): one frame
        assert one.pose.shape == (1, 17, 3)
        # One frame runs a GEMM of another shape: float32 rounding differs by a few ulp (6e-5 mm at 900 mm)
        np.testing.assert_allclose(one.pose[0], b.pose[0], atol=1e-4, rtol=1e-6)


def test_pixel_input_with_image_size(lifter):
    noise = np.random.default_rng(3).standard_normal((5, 4, 2, 17, 2), dtype=np.float32)
    pixels = image_coordinates(KP.astype(np.float64), 1000, 1002)
    a = lifter(pixels, image_size=(1000, 1002), noise=noise)
    b = lifter(KP, noise=noise)
    np.testing.assert_allclose(a.hypotheses, b.hypotheses, atol=1e-3)
    with pytest.raises(InputError, match="look like pixels"):
        lifter(pixels, hypotheses=2)
    with pytest.raises(InputError, match="image size"):
        lifter(pixels, image_size=(1000, 0))


@pytest.mark.parametrize(
    "keypoints, kwargs, message",
    [
        (np.full((2, 17, 2), np.nan), {}, "NaN or inf"),
        (np.zeros((2, 15, 2)), {}, "17"),
        (np.zeros((0, 17, 2)), {}, "empty"),
        (np.zeros((2, 17, 2)), {"hypotheses": 0}, "whole number >= 1"),
        (np.zeros((2, 17, 2)), {"hypotheses": 2.5}, "whole number >= 1"),
        (np.zeros((2, 17, 2)), {"noise": np.zeros((2, 3, 17, 2))}, "noise must have shape"),
        (np.zeros((2, 17, 2)), {"units": "cm"}, "units"),
        (np.array([["a"] * 2] * 17), {}, "real numbers"),
    ],
)
def test_bad_input_is_named(lifter, keypoints, kwargs, message):
    with pytest.raises(InputError, match=message):
        lifter(keypoints, **kwargs)


def test_backend_checks_its_feed(artifacts):
    with OnnxRuntimeBackend(artifacts / "lifter.onnx") as backend:
        assert backend.precision == "fp32" and backend.device == "cpu"
        assert backend.run({"keypoints": np.zeros((3, 17, 2), np.float32)})["pose_3d"].shape == (3, 17, 3)
        with pytest.raises(InputError, match="must have shape"):
            backend.run({"keypoints": np.zeros((3, 16, 2), np.float32)})
        with pytest.raises(InputError, match="takes inputs"):
            backend.run({"points": np.zeros((3, 17, 2), np.float32)})
    with pytest.raises(InputError, match="closed"):
        backend.run({"keypoints": np.zeros((3, 17, 2), np.float32)})
    with pytest.raises(InputError, match="unknown ONNX Runtime provider"):
        OnnxRuntimeBackend(artifacts / "lifter.onnx", provider="vulkan")


def _copy(artifacts, tmp_path):
    import shutil

    target = tmp_path / "copy"
    shutil.copytree(artifacts, target)
    return target


def _rehash(root, name):
    from posedeploy.files import sha256_file

    manifest = json.loads((root / "manifest.json").read_text())
    manifest["files"][name].update(sha256=sha256_file(root / name), bytes=(root / name).stat().st_size)
    (root / "manifest.json").write_text(json.dumps(manifest))


def test_truncated_corrupted_foreign_and_newer_artifacts_are_refused(artifacts, tmp_path):
    root = _copy(artifacts, tmp_path)
    data = (root / "pipeline.onnx").read_bytes()
    (root / "pipeline.onnx").write_bytes(data[: len(data) // 3])
    with pytest.raises(ArtifactError, match="does not match its manifest"):
        MultiHypothesisLifter(root)
    _rehash(root, "pipeline.onnx")  # a corrupted file that the manifest vouches for
    with pytest.raises(ArtifactError, match=r"(ONNX Runtime cannot load|OpenVINO cannot read) .*pipeline\.onnx"):
        MultiHypothesisLifter(root)
    (root / "pipeline.onnx").write_bytes((root / "lifter.onnx").read_bytes())  # another model's graph
    _rehash(root, "pipeline.onnx")
    with pytest.raises(ArtifactError, match="not exported with this manifest"):
        MultiHypothesisLifter(root)
    manifest = json.loads((root / "manifest.json").read_text())
    (root / "manifest.json").write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(ArtifactError, match="format version 99"):
        MultiHypothesisLifter(root)
    (root / "manifest.json").write_text("{")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        MultiHypothesisLifter(root)
    (root / "manifest.json").unlink()
    with pytest.raises(ArtifactError, match="not a posedeploy export"):
        MultiHypothesisLifter(root)
    with pytest.raises(ArtifactError, match="not found"):
        MultiHypothesisLifter(tmp_path / "nowhere")


@needs_torch
def test_missing_fp16_graph_is_named(tmp_path):
    from helpers import random_checkpoint

    from posedeploy.export.onnx_export import export_artifacts

    export_artifacts(random_checkpoint(tmp_path / "c.pt"), tmp_path / "out")
    # ONNX Runtime: OpenVINO (which 'auto' may pick) lowers the fp32 graph itself on a CPU with fp16
    with pytest.raises(ArtifactError, match="no pipeline.fp16.onnx .* re-export"):
        MultiHypothesisLifter(tmp_path / "out", precision="fp16", backend="onnxruntime")
    with pytest.raises(ArtifactError, match="no pipeline.int8.onnx .* re-export"):
        MultiHypothesisLifter(tmp_path / "out", precision="int8")
    with pytest.raises(InputError, match="precision"):
        MultiHypothesisLifter(tmp_path / "out", precision="int4", backend="onnxruntime")


def test_both_onnx_runtimes_installed_is_reported(monkeypatch):
    from posedeploy.errors import DependencyConflictError
    from posedeploy.runtime import onnxruntime_backend

    monkeypatch.setattr(onnxruntime_backend, "installed_ort_distributions", lambda: ["onnxruntime", "onnxruntime-gpu"])
    with pytest.raises(DependencyConflictError, match="overwrite each other"):
        onnxruntime_backend.available_providers()


def test_auto_measures_again_when_its_cache_is_damaged_or_its_choice_cannot_run(
    artifacts, tmp_path, monkeypatch, caplog
):
    caplog.set_level(logging.INFO, logger="posedeploy")
    from posedeploy.artifacts import read_manifest
    from posedeploy.runtime import backend_choice

    monkeypatch.delenv(backend_choice.FORCE_ENV, raising=False)
    # The cache's handling is under test, not the timing: a probe that measures nothing keeps it quick.
    monkeypatch.setattr(backend_choice, "probe", lambda backends: {name: 1.0 + i for i, name in enumerate(backends)})
    manifest = read_manifest(artifacts)
    backend_choice.choose_backend(manifest, cache_dir=tmp_path)
    path = tmp_path / backend_choice.CACHE_FILE
    entry = json.loads(path.read_text())
    for timing in ("fast", None, [1.0], -1.0, 0, True, {"ms": 1.0}):
        for value in entry.values():
            value["probe_ms"] = {value["backend"]: timing}
        path.write_text(json.dumps(entry))
        choice = backend_choice.choose_backend(manifest, cache_dir=tmp_path)
        assert not choice.cached and choice.describe(), timing  # measured again, no ValueError or TypeError
    # A cached choice that cannot load this artifact (TensorRT, with no engine built here): measured again.
    entry = json.loads(path.read_text())
    for value in entry.values():
        value.update(backend="tensorrt", probe_ms={"tensorrt": 0.1, "onnxruntime": 5.0})
    path.write_text(json.dumps(entry))
    installed = backend_choice.installed_backends()
    monkeypatch.setattr(backend_choice, "installed_backends", lambda: sorted(set(installed) | {"tensorrt"}))
    with backend_choice.open_backend(manifest, cache_dir=tmp_path) as backend:
        assert backend.name != "tensorrt"
    assert "the cached choice, tensorrt, cannot load this artifact any more" in caplog.text
    assert json.loads(path.read_text()) != entry  # the new measurement replaced the stale choice


def test_the_auto_choice_can_be_set_by_the_environment(artifacts, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="posedeploy")
    from posedeploy.runtime import backend_choice

    monkeypatch.setenv(backend_choice.FORCE_ENV, "onnxruntime")
    with MultiHypothesisLifter(artifacts) as lifter:
        assert lifter.backend.name == "onnxruntime"
    assert "set by POSEDEPLOY_BACKEND" in caplog.text
    monkeypatch.setenv(backend_choice.FORCE_ENV, "tpu")
    with pytest.raises(InputError, match="POSEDEPLOY_BACKEND='tpu' names no backend"):
        MultiHypothesisLifter(artifacts)


@pytest.mark.parametrize(
    "make, call, message",
    [
        ({}, {"keypoints": [[0.1, 0.2]] * 16 + [[0.1]]}, "not a ragged list"),
        ({}, {"units": ["mm"]}, "units must be one of m, mm, got ['mm']"),
        ({}, {"seed": -1}, "seed must be a whole number >= 0 or None, got -1"),
        ({}, {"seed": "abc"}, "seed must be a whole number"),
        ({}, {"seed": 1.5}, "seed must be a whole number"),
        ({"seed": -1}, {}, "seed must be a whole number"),
        ({"threads": "x"}, {}, "threads must be a whole number >= 1 or None"),
        ({"memory_budget_mb": float("inf")}, {}, "memory budget must be a number of MB"),
        ({"memory_budget_mb": "big"}, {}, "memory budget must be a number of MB"),
        ({"memory_budget_mb": None}, {}, "memory budget must be a number of MB"),
        ({"noise": "device", "seed": 3}, {}, "cannot be seeded"),
        ({"provider": ["cpu"]}, {}, "unknown ONNX Runtime provider ['cpu']"),
        ({}, {"image_size": (1000, 1000)}, "they look normalised already"),
    ],
)
def test_python_api_arguments_are_checked(artifacts, make, call, message):
    """Each of these raised numpy's, onnxruntime's or Python's own error, or was silently ignored."""
    keypoints = call.pop("keypoints", KP)
    with (
        pytest.raises(InputError, match=re.escape(message)),
        MultiHypothesisLifter(artifacts, backend="onnxruntime", **make) as lifter,
    ):
        lifter(keypoints, hypotheses=4, **call)


def test_the_artifact_directory_must_be_a_path():
    for given in (None, 3, ["artifacts"]):
        with pytest.raises(InputError, match="artifacts must be the path of an exported artifact directory"):
            MultiHypothesisLifter(given)
