"""One suite, every installed backend: each must honour the same contract through the same
assertions (names, shapes and dtypes, refusals, close, threads, and the same outputs as the PyTorch
reference on the same noise). A new backend passes this file before anything else."""

import threading

import numpy as np
import pytest
from conftest import have

from posedeploy.artifacts import read_manifest
from posedeploy.contract import INPUTS, OUTPUTS, draw_noise
from posedeploy.engines.machine import describe_machine
from posedeploy.errors import InputError
from posedeploy.runtime.backend_choice import installed_backends
from posedeploy.runtime.loading import REGISTRY, load_backend

RNG = np.random.default_rng(0)
KP = RNG.normal(scale=0.3, size=(3, 17, 2)).astype(np.float32)
NOISE = draw_noise(RNG, 3, 5)


def _params():
    for name in REGISTRY:
        marks = [pytest.mark.trt, pytest.mark.gpu] if name == "tensorrt" else []
        yield pytest.param(name, marks=marks, id=name)


@pytest.fixture(params=list(_params()))
def backend(request, exported):
    name = request.param
    if name not in installed_backends():
        pytest.skip(f"{name} is not installed")
    if name == "tensorrt" and not describe_machine().gpus:
        pytest.skip("TensorRT engines run only on an NVIDIA GPU")
    loaded = load_backend(read_manifest(exported), name)  # an onnxruntime or openvino that cannot load fails here
    yield loaded
    loaded.close()


def test_inputs_and_outputs_are_the_contract(backend):
    assert [s.name for s in backend.inputs] == list(INPUTS) and [s.name for s in backend.outputs] == list(OUTPUTS)
    out = backend.run({"keypoints": KP, "noise": NOISE})
    assert list(out) == list(OUTPUTS)
    shapes = {"sigma": (3, 2, 17), "hypotheses": (3, 5, 17, 3), "pose": (3, 17, 3), "spread": (3, 17)}
    for name, shape in shapes.items():
        assert out[name].shape == shape and out[name].dtype == np.float32, name
        assert np.isfinite(out[name]).all(), name
    only = backend.run({"keypoints": KP, "noise": NOISE}, outputs=["pose"])
    assert list(only) == ["pose"]
    np.testing.assert_array_equal(only["pose"], out["pose"])


@pytest.mark.parametrize(
    "feed, outputs, message",
    [
        ({"keypoints": KP}, None, "takes inputs"),
        ({"keypoints": KP, "noise": NOISE, "extra": KP}, None, "takes inputs"),
        ({"keypoints": KP[:, :16], "noise": NOISE}, None, "must have shape"),
        ({"keypoints": KP, "noise": NOISE[..., :1]}, None, "must have shape"),
        ({"keypoints": "not an array", "noise": NOISE}, None, "keypoints"),
        ([KP, NOISE], None, "takes inputs"),
        ({"keypoints": KP, "noise": NOISE}, ["poses"], "has outputs"),
        ({"keypoints": KP, "noise": NOISE}, [], "has outputs"),
    ],
)
def test_a_bad_feed_or_output_name_is_refused(backend, feed, outputs, message):
    with pytest.raises(InputError, match=message):
        backend.run(feed, outputs=outputs)


def test_close_twice_and_run_after_close(backend):
    backend.close()
    backend.close()
    with pytest.raises(InputError, match="closed"):
        backend.run({"keypoints": KP, "noise": NOISE})


def test_eight_threads_get_what_serial_calls_get(backend):
    feeds = [{"keypoints": KP[i % 3 : i % 3 + 1], "noise": NOISE[i % 3 : i % 3 + 1]} for i in range(24)]
    serial = [backend.run(feed)["hypotheses"] for feed in feeds]
    parallel: list = [None] * len(feeds)

    def work(worker: int) -> None:
        for i in range(worker, len(feeds), 8):
            parallel[i] = backend.run(feeds[i])["hypotheses"]

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(serial, parallel, strict=True):
        np.testing.assert_array_equal(a, b)


def test_golden_noise_matches_the_reference(backend, exported):
    """The same keypoints and noise as the PyTorch reference (or, without torch, as ONNX Runtime):
    within the fp32 parity tolerance, 0.01 mm on the mean hypothesis error."""
    if have("torch"):
        from posedeploy.parity import source_checkpoint
        from posedeploy.reference.sampler import PipelineModule, run_reference
        from posedeploy.training.checkpoint import load_checkpoint

        ckpt = load_checkpoint(source_checkpoint(read_manifest(exported)))
        pipeline = PipelineModule(ckpt.build_lifter(), ckpt.build_avg(), ckpt.config.alpha)
        want = run_reference(pipeline, KP, noise=NOISE).hypotheses
    elif backend.name != "onnxruntime" and "onnxruntime" in installed_backends():
        with load_backend(read_manifest(exported), "onnxruntime") as reference:
            want = reference.run({"keypoints": KP, "noise": NOISE})["hypotheses"]
    else:
        pytest.skip("no reference to compare with: PyTorch is not installed")
    got = backend.run({"keypoints": KP, "noise": NOISE})["hypotheses"]
    assert np.linalg.norm(got - want, axis=-1).mean() * 1000 <= 0.01
