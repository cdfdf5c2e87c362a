"""Shared fixtures: tiny files in the real formats, made by the tests themselves."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from posedeploy.data.camera import Camera, project_to_2d, world_to_camera
from posedeploy.data.h36m import CAMERA_IDS, RESOLUTION, SH16_TO_17
from posedeploy.data.synthetic import generate

ROOT = Path(__file__).resolve().parents[1]
H36M = Path(os.environ.get("POSEDEPLOY_H36M", ROOT.parent / "shared" / "data" / "h36m"))


def _have_gpu() -> bool:
    from posedeploy.engines.machine import describe_machine

    return bool(describe_machine().gpus)


def pytest_collection_modifyitems(config, items):
    have_h36m = (H36M / "data_3d_h36m.npz").is_file()
    have_gpu = _have_gpu() if any("gpu" in item.keywords for item in items) else False
    for item in items:
        if "data" in item.keywords and not have_h36m:
            item.add_marker(pytest.mark.skip(reason=f"Human3.6M not found at {H36M}"))
        if "gpu" in item.keywords and not have_gpu:
            item.add_marker(pytest.mark.skip(reason="no CUDA GPU visible (cuda-python or pycuda found none)"))


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Caches (pseudo-labels, the auto backend's probe) in a folder of this test run, not the user's."""
    os.environ["POSEDEPLOY_CACHE"] = str(tmp_path_factory.mktemp("cache"))


def have(*modules: str) -> bool:
    from posedeploy.extras import installed

    return all(installed(m) for m in modules)


# Tests that train, export or run the PyTorch reference; skipped in a runtime-only install.
needs_torch = pytest.mark.skipif(
    not have("torch", "onnx"), reason="needs PyTorch and onnx (pip install 'posedeploy[export]')"
)


@pytest.fixture(scope="session")
def exported(tmp_path_factory) -> Path:
    """An export (fp32 and fp16 graphs) of a seeded random checkpoint, shared by the tests that only
    read it. Without torch (the runtime-only install), the export that POSEDEPLOY_TEST_ARTIFACTS names."""
    given = os.environ.get("POSEDEPLOY_TEST_ARTIFACTS")
    if given:
        return Path(given)
    if not have("torch", "onnx", "onnxruntime"):
        pytest.skip("no export to run on: set POSEDEPLOY_TEST_ARTIFACTS, or install posedeploy[export,cpu]")
    from helpers import random_checkpoint

    from posedeploy.export.onnx_export import export_artifacts

    root = tmp_path_factory.mktemp("exported")
    export_artifacts(random_checkpoint(root / "c.pt"), root / "artifacts", fp16=True)
    return root / "artifacts"


@pytest.fixture
def h36m_root() -> Path:
    return H36M


def fake_cameras(subject_index: int) -> dict[str, dict]:
    """Four cameras on a ring 4 m around the origin, 1.5 m high, looking at the centre."""
    cams = {}
    for i, cam_id in enumerate(CAMERA_IDS):
        angle = np.pi / 2 * i + 0.3 * subject_index
        position = np.array([4 * np.cos(angle), 4 * np.sin(angle), 1.5])
        forward = -position / np.linalg.norm(position)
        right = np.cross(forward, [0, 0, 1.0])
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        cams[cam_id] = {
            "R": np.stack([right, down, forward]).tolist(),
            "T": (position * 1000).tolist(),
            "f": [1145.0, 1144.0],
            "c": [512.0, 515.0],
            "k": [-0.2, 0.24, -0.003],
            "p": [-0.001, -0.0014],
        }
    return cams


def make_fake_h36m(
    root: Path,
    subjects=("S1", "S9", "S11"),
    sequences=("Walking 1", "Sitting", "Photo 1"),
    frames: int = 12,
    joints_3d: int = 32,
) -> Path:
    """A Human3.6M folder in the VideoPose3D layout with synthetic poses (world metres)."""
    root.mkdir(parents=True, exist_ok=True)
    positions, detections, cameras = {}, {}, {}
    for si, subject in enumerate(subjects):
        cameras[subject] = fake_cameras(si)
        positions[subject], detections[subject] = {}, {}
        for qi, sequence in enumerate(sequences):
            body = generate(frames, seed=100 * si + qi).poses_3d.astype(np.float64)
            world = body[..., [0, 2, 1]] * [1, 1, -1] + [0, 0, 1.0]  # y-down camera frame -> z-up world
            if joints_3d == 32:
                full = np.zeros((frames, 32, 3))
                full[:, [0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27]] = world
                stored = full
            else:
                stored = world
            positions[subject][sequence] = stored.astype(np.float32)
            views = []
            for cam_id in CAMERA_IDS:
                c = cameras[subject][cam_id]
                cam = Camera(
                    cam_id,
                    np.array(c["R"]),
                    np.array(c["T"]) / 1000,
                    np.array(c["f"]),
                    np.array(c["c"]),
                    np.array(c["k"]),
                    np.array(c["p"]),
                    *RESOLUTION[cam_id],
                )
                px = project_to_2d(world_to_camera(world, cam), cam)
                views.append((px[:, list(SH16_TO_17)] + 3.0).astype(np.float32))
            detections[subject][sequence] = views
    np.savez(root / "data_3d_h36m.npz", positions_3d=np.array(positions, dtype=object))
    metadata = {
        "layout_name": "h36m_sh16",
        "num_joints": 16,
        "keypoints_symmetry": [[4, 5, 6, 10, 11, 12], [1, 2, 3, 13, 14, 15]],
    }
    np.savez(
        root / "data_2d_h36m_sh_pt_mpii.npz",
        positions_2d=np.array(detections, dtype=object),
        metadata=np.array(metadata, dtype=object),
    )
    (root / "cameras.json").write_text(json.dumps({"cameras": cameras}))
    return root


@pytest.fixture
def fake_h36m(tmp_path: Path) -> Path:
    return make_fake_h36m(tmp_path / "h36m")


class _Exploit:
    """Unpickling this object runs code: what a malicious checkpoint would do."""

    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


@pytest.fixture
def malicious_pickle(tmp_path: Path) -> Path:
    import torch

    path = tmp_path / "evil.pt"
    torch.save({"format": "posedeploy.checkpoint", "payload": _Exploit()}, path)
    return path
