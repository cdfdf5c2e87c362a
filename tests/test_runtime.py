"""The torch-free runtime on exported artifacts: contract outputs, input handling, refusals."""

import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import random_checkpoint

from posedeploy.data.camera import image_coordinates
from posedeploy.errors import ArtifactError, InputError
from posedeploy.export.onnx_export import export_artifacts
from posedeploy.runtime import MultiHypothesisLifter
from posedeploy.runtime.onnxruntime_backend import OnnxRuntimeBackend


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    root = tmp_path_factory.mktemp("rt")
    export_artifacts(random_checkpoint(root / "c.pt"), root / "out", fp16=True)
    return root / "out"


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
        np.testing.assert_allclose(one.pose[0], b.pose[0], atol=1e-4)


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
    with pytest.raises(ArtifactError, match="ONNX Runtime cannot load"):
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


def test_missing_fp16_graph_is_named(tmp_path):
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
