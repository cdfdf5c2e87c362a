"""GPU paths: ONNX Runtime CUDA, the CUDA memory layers, datacenter TensorRT engines.

Skipped (with the reason) on machines without a CUDA GPU or without the library a test needs.
Run on a GPU machine with: python -m pytest -m "gpu or trt" -rs
"""

import importlib.util

import numpy as np
import pytest
from helpers import random_checkpoint

from posedeploy.assets import DEFAULT_CHECKPOINT
from posedeploy.data import evenly_spaced, load_dataset
from posedeploy.export.onnx_export import export_artifacts
from posedeploy.parity import run_parity

pytestmark = pytest.mark.gpu


def _ort_cuda() -> bool:
    try:
        import onnxruntime

        return "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    except ImportError:
        return False


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


needs_ort_cuda = pytest.mark.skipif(not _ort_cuda(), reason="onnxruntime-gpu with CUDAExecutionProvider not installed")
needs_trt = pytest.mark.skipif(not _has("tensorrt"), reason="datacenter TensorRT (tensorrt) not installed")


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpu")
    mgcn = DEFAULT_CHECKPOINT if DEFAULT_CHECKPOINT.is_file() else random_checkpoint(root / "mgcn.pt")
    htnet = random_checkpoint(root / "htnet.pt", lifter="htnet", seed=3)
    for name, ckpt in (("mgcn_lw", mgcn), ("htnet", htnet)):
        export_artifacts(ckpt, root / name, fp16=True, in_graph_noise=True)
    return {"mgcn_lw": (mgcn, root / "mgcn_lw"), "htnet": (htnet, root / "htnet")}


@pytest.fixture(scope="module")
def h36m_test():
    """256 evenly spaced S9/S11 test poses (synthetic ones where Human3.6M is absent)."""
    from conftest import H36M

    source = str(H36M) if (H36M / "data_3d_h36m.npz").is_file() else "synthetic"
    return evenly_spaced(load_dataset(source, "test", "gt"), 256)


@needs_ort_cuda
@pytest.mark.parametrize("lifter", ["mgcn_lw", "htnet"])
@pytest.mark.parametrize("precision, limit", [("fp32", 0.01), ("fp16", 0.5)])
def test_onnxruntime_cuda_parity(exports, h36m_test, lifter, precision, limit):
    ckpt, artifacts = exports[lifter]
    report = run_parity(ckpt, artifacts, h36m_test, hypotheses=200, precision=precision, provider="cuda")
    assert "cuda" in report.backend
    assert report.task["mean hypothesis error (mm)"] <= limit, report.format()
    if precision == "fp16":
        assert report.task["delta best-of-S MPJPE (mm)"] <= 0.2, report.format()


@pytest.mark.parametrize("layer", ["cuda-python", "pycuda"])
def test_cuda_memory_layer_round_trip(layer):
    from posedeploy.runtime.cuda_memory import open_cuda

    if not _has("cuda" if layer == "cuda-python" else "pycuda"):
        pytest.skip(f"{layer} not installed")
    cuda = open_cuda(layer)
    try:
        stream = cuda.stream()
        host = cuda.pinned((1000,), np.float32)
        host[:] = np.arange(1000, dtype=np.float32)
        ptr = cuda.malloc(host.nbytes)
        back = cuda.pinned((1000,), np.float32)
        start, end = cuda.event(), cuda.event()
        cuda.record(start, stream)
        cuda.htod(ptr, host, stream)
        cuda.dtoh(back, ptr, stream)
        cuda.record(end, stream)
        cuda.synchronize(stream)
        np.testing.assert_array_equal(back, host)
        assert cuda.elapsed_ms(start, end) >= 0
        if cuda.supports_graphs:
            host[:] = 7
            graph = cuda.capture(stream, lambda: cuda.htod(ptr, host, stream))
            cuda.launch(graph, stream)
            cuda.dtoh(back, ptr, stream)
            cuda.synchronize(stream)
            np.testing.assert_array_equal(back, 7)
            cuda.destroy_graph(graph)
        free, total = cuda.memory_info()
        assert 0 < free <= total
        cuda.free(ptr)
    finally:
        cuda.close()


@needs_trt
@pytest.mark.trt
@pytest.mark.parametrize("lifter", ["mgcn_lw", "htnet"])
@pytest.mark.parametrize("precision, limit", [("fp32", 0.05), ("fp16", 0.5)])
def test_tensorrt_engine_parity(exports, h36m_test, lifter, precision, limit):
    from posedeploy.engines.build import BuildSettings, build_engine

    ckpt, artifacts = exports[lifter]
    build_engine(BuildSettings(artifacts, precision=precision, batch=(1, 16, 64), flavour="tensorrt"))
    report = run_parity(ckpt, artifacts, h36m_test, hypotheses=200, precision=precision, backend="tensorrt")
    assert report.task["mean hypothesis error (mm)"] <= limit, report.format()


@needs_trt
@pytest.mark.trt
def test_tensorrt_graphs_profiles_and_timing_cache(exports):
    from posedeploy.artifacts import read_manifest
    from posedeploy.engines.build import BuildSettings, build_engine
    from posedeploy.errors import InputError
    from posedeploy.runtime.loading import find_plan
    from posedeploy.runtime.tensorrt_backend import TensorRTBackend

    _, artifacts = exports["mgcn_lw"]
    settings = BuildSettings(artifacts, precision="fp16", batch=(1, 4, 8), hypotheses=(1, 50, 100), flavour="tensorrt")
    build_engine(settings)
    second = build_engine(settings)
    assert second.timing_cache is not None and second.timing_cache.reused
    plan = find_plan(read_manifest(artifacts), "pipeline.fp16")
    rng = np.random.default_rng(0)
    feed = {
        "keypoints": rng.normal(scale=0.3, size=(3, 17, 2)).astype(np.float32),
        "noise": rng.standard_normal((3, 40, 2, 17, 2), dtype=np.float32),
    }
    with TensorRTBackend(plan, cuda_graphs=False) as plain, TensorRTBackend(plan, cuda_graphs=True) as graphed:
        expected = plain.run(feed)
        for _ in range(3):  # capture, then replay
            got = graphed.run(feed)
            for name in expected:
                np.testing.assert_allclose(got[name], expected[name], atol=1e-5)
        assert graphed.limits == {"batch": (1, 8), "hypotheses": (1, 100)}
        assert set(graphed.timings) == {"wall_ms", "h2d_ms", "compute_ms", "d2h_ms"}
        with pytest.raises(InputError, match="outside the engine profile"):
            graphed.run({**feed, "noise": rng.standard_normal((3, 101, 2, 17, 2), dtype=np.float32)})
