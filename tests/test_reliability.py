"""Reliability: hostile input, concurrent use, interrupted work, memory limits."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np
import pytest
from conftest import needs_torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from posedeploy.artifacts import read_manifest
from posedeploy.errors import ArtifactError, InputError, PoseDeployError
from posedeploy.runtime import MultiHypothesisLifter


@pytest.fixture(scope="module")
def artifacts(exported):
    return exported


@pytest.fixture(scope="module")
def lifter(artifacts):
    with MultiHypothesisLifter(artifacts, hypotheses=4) as lifter:
        yield lifter


DTYPES = st.sampled_from([np.float16, np.float32, np.float64, np.int32, np.int64, np.bool_, np.complex64, np.uint8])
SHAPES = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=20)
VALUES = st.floats(allow_nan=True, allow_infinity=True, width=32)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    keypoints=st.one_of(
        hnp.arrays(DTYPES, SHAPES, elements=None),
        hnp.arrays(np.float32, st.tuples(st.integers(0, 6), st.just(17), st.just(2)), elements=VALUES),
        st.just([[1, 2]] * 17),
        st.none(),
        st.text(max_size=5),
    ),
    hypotheses=st.one_of(st.integers(-5, 40), st.just(10**12), st.floats(-2, 50), st.none(), st.text(max_size=3)),
    image_size=st.one_of(st.none(), st.tuples(st.floats(-10, 2000), st.floats(-10, 2000)), st.just((1000, 1000))),
)
def test_any_input_ends_in_a_result_or_a_posedeploy_error(lifter, keypoints, hypotheses, image_size):
    try:
        result = lifter(keypoints, hypotheses=hypotheses, image_size=image_size, seed=0)
    except PoseDeployError:
        return
    b = np.asarray(keypoints).reshape(-1, 17, 2).shape[0]
    assert result.pose.shape == (b, 17, 3) and np.isfinite(result.pose).all()
    assert result.hypotheses.shape[:2] == (b, hypotheses if isinstance(hypotheses, int) else 4)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(noise=hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=6, max_side=6), elements=VALUES))
def test_any_noise_ends_in_a_result_or_a_posedeploy_error(lifter, noise):
    try:
        result = lifter(np.zeros((2, 17, 2), np.float32), noise=noise)
    except PoseDeployError:
        return
    assert result.hypotheses.shape == (2, noise.shape[1], 17, 3) and np.isfinite(result.pose).all()


ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=4),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-3, 2**70),
    st.lists(st.integers(0, 3), max_size=2),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    where=st.sampled_from(["path", "str", "missing", "none", "number", "list"]),
    options=st.fixed_dictionaries(
        {},
        optional={
            "precision": st.one_of(st.sampled_from(["fp32", "fp16", "int8", "bf16", "FP32", ""]), ODD),
            "backend": st.one_of(st.sampled_from(["onnxruntime", "openvino", "auto", "tensorrt", "tpu"]), ODD),
            "provider": st.one_of(st.sampled_from(["auto", "cpu", "cuda", "tensorrt", "vulkan"]), ODD),
            "hypotheses": st.one_of(st.integers(-2, 30), ODD),
            "seed": st.one_of(st.integers(-2, 10), ODD),
            "max_poses": st.one_of(st.integers(-2, 50), ODD),
            "threads": st.one_of(st.integers(-1, 3), ODD),
            "memory_budget_mb": st.one_of(st.floats(-1, 64), ODD),
            "noise": st.one_of(st.sampled_from(["host", "device"]), ODD),
            "cuda": st.one_of(st.sampled_from(["auto", "cuda-python", "pycuda"]), ODD),
        },
    ),
    call=st.fixed_dictionaries(
        {},
        optional={
            "units": st.one_of(st.sampled_from(["mm", "m", "cm"]), ODD, st.just(["mm"])),
            "seed": st.one_of(st.integers(-2, 10), ODD),
            "hypotheses": st.one_of(st.integers(-2, 30), ODD),
            "keep_hypotheses": st.one_of(st.booleans(), ODD),
            "image_size": st.one_of(st.none(), st.tuples(st.floats(-10, 2000), st.floats(-10, 2000)), ODD),
            "keypoints": st.one_of(st.just("ragged"), st.just("pose"), ODD),
        },
    ),
)
def test_any_api_arguments_end_in_a_result_or_a_posedeploy_error(artifacts, tmp_path, where, options, call):
    """The Python API's every argument, of any type or value: a result of the documented shapes, or a
    PoseDeployError naming the problem; never numpy's, ONNX Runtime's or Python's own exception."""
    target = {
        "path": artifacts,
        "str": str(artifacts),
        "missing": tmp_path / "nowhere",
        "none": None,
        "number": 3,
        "list": [artifacts],
    }[where]
    keypoints = call.pop("keypoints", "pose")
    named = {"ragged": [[0.1, 0.2]] * 16 + [[0.1]], "pose": np.zeros((2, 17, 2), np.float32)}
    keypoints = named[keypoints] if isinstance(keypoints, str) and keypoints in named else keypoints
    try:
        with MultiHypothesisLifter(target, **options) as lifter:
            result = lifter(keypoints, **call)
    except PoseDeployError:
        return
    b = np.asarray(keypoints).reshape(-1, 17, 2).shape[0]
    assert result.pose.shape == (b, 17, 3) and result.spread.shape == (b, 17) and np.isfinite(result.pose).all()


def test_huge_requests_are_refused_before_allocating(lifter):
    start = time.monotonic()
    with pytest.raises(InputError, match="more than the 100,000"):
        lifter(np.zeros((1, 17, 2), np.float32), hypotheses=10**9)
    with pytest.raises(InputError, match="keep_hypotheses=False"):
        lifter(np.zeros((100_000, 17, 2), np.float32), hypotheses=1000)
    assert time.monotonic() - start < 5


def test_memory_budget_sizes_calls_and_refuses_what_cannot_fit(artifacts):
    per_pose = read_manifest(artifacts).manifest.memory.bytes_per_lifted_pose
    with MultiHypothesisLifter(artifacts, memory_budget_mb=per_pose * 40 / 2**20) as small:
        assert small.max_poses == 40
        kp = np.random.default_rng(0).normal(scale=0.3, size=(3, 17, 2)).astype(np.float32)
        with MultiHypothesisLifter(artifacts) as big:
            # Split, the pose is summed on the host in float64; whole, in float32 by whichever backend
            # 'auto' picked, in its own order. float32 steps are 3e-5 mm at 500 mm: a micrometre
            # holds every backend's rounding, and is still nothing a pose could notice.
            np.testing.assert_allclose(
                small(kp, hypotheses=50, seed=1).pose, big(kp, hypotheses=50, seed=1).pose, atol=1e-3
            )
    with pytest.raises(InputError, match="cannot hold one pose"):
        MultiHypothesisLifter(artifacts, memory_budget_mb=per_pose / 2**20)
    for budget in (0, -5, float("inf"), float("nan"), "big", None, True):
        with pytest.raises(InputError, match="memory budget must be a number of MB"):
            MultiHypothesisLifter(artifacts, memory_budget_mb=budget)


REQUESTS = 24


def _request(i: int) -> np.ndarray:
    return np.random.default_rng(i).normal(scale=0.3, size=(1 + i % 4, 17, 2)).astype(np.float32)


def test_one_lifter_from_many_threads_matches_serial_calls(lifter):
    serial = [lifter(_request(i), hypotheses=16, seed=i).hypotheses for i in range(REQUESTS)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        parallel = list(pool.map(lambda i: lifter(_request(i), hypotheses=16, seed=i).hypotheses, range(REQUESTS)))
    for a, b in zip(serial, parallel, strict=True):
        np.testing.assert_array_equal(a, b)
    # Without seeds, the shared generator is used under a lock: every call still succeeds.
    with ThreadPoolExecutor(max_workers=8) as pool:
        outs = list(pool.map(lambda i: lifter(_request(i), hypotheses=16), range(REQUESTS)))
    assert all(np.isfinite(o.pose).all() for o in outs)


def _worker(args):
    artifacts, i = args
    with MultiHypothesisLifter(artifacts) as lifter:
        return lifter(_request(i), hypotheses=16, seed=i).hypotheses


def test_a_pool_of_processes_matches_serial_calls(lifter, artifacts):
    import multiprocessing

    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        parallel = list(pool.map(_worker, [(str(artifacts), i) for i in range(8)]))
    for i, got in enumerate(parallel):
        np.testing.assert_array_equal(got, lifter(_request(i), hypotheses=16, seed=i).hypotheses)


def _kill_at_random(cmd: list[str], seconds: float, env=None) -> int:
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    time.sleep(seconds)
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    return process.wait()


def _check_export_dir(out) -> str:
    """Either no finished export, or one whose every file checks out."""
    try:
        artifacts = read_manifest(out)
    except ArtifactError:
        return "nothing"
    for name in artifacts.manifest.files:
        artifacts.path(name)  # raises if the file is missing, truncated or from another run
    return "complete"


@pytest.mark.slow
@needs_torch
def test_killing_export_never_leaves_a_file_mistaken_for_an_artifact(tmp_path):
    from helpers import random_checkpoint

    from posedeploy.export.onnx_export import export_artifacts

    ckpt = random_checkpoint(tmp_path / "c.pt")
    rng = np.random.default_rng(0)
    outcomes = []
    for attempt in range(4):
        out = tmp_path / f"out{attempt}"
        if attempt % 2:  # a previous complete export being overwritten
            export_artifacts(random_checkpoint(tmp_path / "old.pt", seed=5), out)
        _kill_at_random(
            [sys.executable, "-m", "posedeploy.cli", "export", "--checkpoint", str(ckpt), "--out", str(out), "--fp16"],
            float(rng.uniform(2.0, 7.0)),
        )
        outcomes.append(_check_export_dir(out))
    assert set(outcomes) <= {"nothing", "complete"}


@pytest.mark.slow
@needs_torch
def test_killing_training_leaves_a_resumable_run(tmp_path):
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "posedeploy.cli",
        "train",
        "lifter",
        "--data",
        "synthetic",
        "--stride",
        "25",
        "--val-stride",
        "10",
        "--epochs",
        "6",
        "--batch-size",
        "32",
        "--out",
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    _kill_at_random(cmd, 14.0, env)
    from posedeploy.training.checkpoint import load_checkpoint

    if (out / "best.pt").exists():
        load_checkpoint(out / "best.pt")  # a complete checkpoint, never a torn one
    if (out / "last.pt").exists():
        done = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, env=env, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        epochs = [json.loads(line)["epoch"] for line in (out / "log.jsonl").read_text().splitlines()]
        assert epochs[-1] == 6 and sorted(set(epochs)) == list(range(1, 7))


@pytest.mark.slow
@pytest.mark.trt
@pytest.mark.skipif(
    __import__("importlib").util.find_spec("tensorrt_rtx") is None, reason="TensorRT for RTX not installed"
)
def test_killing_build_never_leaves_a_plan_mistaken_for_an_engine(artifacts, tmp_path):
    import shutil

    from posedeploy.engines.manifest import read_engine_manifest

    rng = np.random.default_rng(1)
    for attempt in range(3):
        out = tmp_path / f"a{attempt}"
        shutil.copytree(artifacts, out)
        _kill_at_random(
            [
                sys.executable,
                "-m",
                "posedeploy.cli",
                "build",
                "--artifacts",
                str(out),
                "--precision",
                "fp32",
                "--compute-capability",
                "8.9",
            ],
            float(rng.uniform(1.0, 5.0)),
        )
        plan = out / "pipeline.fp32.rtx.plan"
        if plan.exists():
            # Complete (its manifest exists, size and hash agree), or killed between the plan and its
            # manifest: refused, not mistaken for an engine.
            with contextlib.suppress(ArtifactError):
                read_engine_manifest(plan)
        assert not (out / "pipeline.fp32.rtx.plan.json").exists() or plan.exists()
