"""Human3.6M in the VideoPose3D file format (numpy only).

Files (see ../shared/data/h36m/README.md):
- ``data_3d_h36m.npz``: ``positions_3d[subject][sequence]`` float (F, 32 or 17, 3), world metres.
- ``data_2d_h36m_<name>.npz``: ``positions_2d[subject][sequence]`` = one (F, J, 2) pixel array per
  camera, J = 17, or 16 for the Stacked Hourglass layout without the neck/nose joint; ``metadata``.
- ``cameras.json``: ``cameras[subject][camera_id]`` with R, T (mm), f, c, k, p.

The npz files hold pickled dicts; they are read with posedeploy.safe_npz, which builds only numpy
arrays and plain containers from them and never runs code a file asks for. Ground-truth 2D is not a
file: it is projected from the 3D joints through each camera, with distortion, as VideoPose3D made
its ``data_2d_h36m_gt.npz``.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np

from posedeploy.data.camera import Camera, normalize_screen_coordinates, project_to_2d, world_to_camera
from posedeploy.data.poseset import PoseSet
from posedeploy.errors import DataError, InputError
from posedeploy.safe_npz import load_npz
from posedeploy.skeleton import H36M32_TO_17, NUM_JOINTS, ROOT

TRAIN_SUBJECTS: tuple[str, ...] = ("S1", "S5", "S6", "S7", "S8")  # the conventional training subjects
TEST_SUBJECTS: tuple[str, ...] = ("S9", "S11")
ALL_SUBJECTS: tuple[str, ...] = TRAIN_SUBJECTS + TEST_SUBJECTS
# Every choice (epochs, early stopping, alpha, the variance model) is made on a training subject
# held out of training, never on the test subjects: S8, the last of them.
VAL_SUBJECTS: tuple[str, ...] = ("S8",)
SPLITS: dict[str, tuple[str, ...]] = {
    "train": tuple(s for s in TRAIN_SUBJECTS if s not in VAL_SUBJECTS),
    "val": VAL_SUBJECTS,
    "test": TEST_SUBJECTS,
}

ACTIONS: tuple[str, ...] = (
    "Directions",
    "Discussion",
    "Eating",
    "Greeting",
    "Phoning",
    "Photo",
    "Posing",
    "Purchases",
    "Sitting",
    "SittingDown",
    "Smoking",
    "Waiting",
    "WalkDog",
    "Walking",
    "WalkTogether",
)

# Camera order of the positions_2d lists, and each camera's image size (width, height) in pixels.
CAMERA_IDS: tuple[str, ...] = ("54138969", "55011271", "58860488", "60457274")
RESOLUTION: dict[str, tuple[int, int]] = {
    "54138969": (1000, 1002),
    "55011271": (1000, 1000),
    "58860488": (1000, 1000),
    "60457274": (1000, 1002),
}

FILE_3D = "data_3d_h36m.npz"
FILE_CAMERAS = "cameras.json"
KEYPOINT_FILES: dict[str, str] = {"sh": "data_2d_h36m_sh_pt_mpii.npz"}
KEYPOINT_SOURCES: tuple[str, ...] = ("gt", "sh")

# The Stacked Hourglass layout has 16 joints: the H36M-17 order without joint 9 (neck/nose).
SH16_TO_17: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15, 16)
# Joint 9 of a 16-joint detection is estimated as a linear function of the 16 detected joints
# relative to the thorax, fitted on the training split's detections by scripts/fit_sh_neck.py
# (its errors are recorded beside the matrices).
SH_NECK_FILE = "sh_neck_weights.json"
THORAX = 8
# Where joint 9 lies on the thorax -> head segment in ground-truth 2D (S1 S5 S6 S7 S8): what a
# COCO nose is mapped by, where the other head joints of a 16-joint layout are not available.
NECK_NOSE_FRACTION = 0.444


@functools.cache
def sh_neck_matrices() -> np.ndarray:
    """The (16, 2, 2) matrices of :data:`SH_NECK_FILE`."""
    path = Path(__file__).with_name(SH_NECK_FILE)
    matrices = np.asarray(json.loads(path.read_text())["matrices"], dtype=np.float64)
    if matrices.shape != (16, 2, 2) or not np.all(np.isfinite(matrices)):
        raise DataError(f"{path} must hold 16 finite 2x2 matrices (run scripts/fit_sh_neck.py)")
    matrices.setflags(write=False)
    return matrices


def canonical_action(sequence: str) -> str:
    """'Walking 1' -> 'Walking'; the 15 Human3.6M actions, sequence numbers removed."""
    action = sequence.split(" ")[0]
    aliases = {"TakingPhoto": "Photo", "WalkingDog": "WalkDog"}
    action = aliases.get(action, action)
    if action not in ACTIONS:
        raise DataError(f"unknown Human3.6M action '{sequence}'; expected one of {', '.join(ACTIONS)}")
    return action


def check_subjects(subjects: tuple[str, ...] | list[str]) -> None:
    unknown = [s for s in subjects if s not in ALL_SUBJECTS]
    if unknown:
        raise DataError(
            f"unknown Human3.6M subject(s) {', '.join(unknown)}; expected some of {', '.join(ALL_SUBJECTS)}"
        )


def check_actions(actions: tuple[str, ...] | list[str] | None) -> None:
    unknown = [a for a in actions or () if a not in ACTIONS]
    if unknown:
        raise DataError(f"unknown Human3.6M action(s) {', '.join(unknown)}; expected some of {', '.join(ACTIONS)}")


def _load_pickled_dict(path: Path, key: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    try:
        archive = load_npz(path)
    except InputError as exc:
        raise DataError(str(exc)) from None
    if key not in archive:
        raise DataError(f"{path} has no '{key}' entry (found: {', '.join(archive) or 'nothing'})")
    try:
        value = archive[key].item()
    except ValueError as exc:
        raise DataError(f"cannot read '{key}' from {path}: {exc}") from None
    if not isinstance(value, dict):
        raise DataError(f"'{key}' in {path} must be a dict of subjects, got {type(value).__name__}")
    return value, archive


def load_positions_3d(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """``{subject: {sequence: float32 (F, 17, 3)}}`` in world metres, from 32 or 17 joints."""
    path = Path(path)
    raw, _ = _load_pickled_dict(path, "positions_3d")
    out: dict[str, dict[str, np.ndarray]] = {}
    for subject, sequences in raw.items():
        out[subject] = {}
        for sequence, positions in sequences.items():
            positions = np.asarray(positions)
            if positions.ndim != 3 or positions.shape[-1] != 3 or positions.shape[1] not in (32, 17):
                raise DataError(
                    f"{path}: {subject}/{sequence} has shape {positions.shape}, expected (F, 32, 3) or (F, 17, 3)"
                )
            if positions.shape[1] == 32:
                positions = positions[:, H36M32_TO_17]
            out[subject][sequence] = positions.astype(np.float32)
    return out


def load_cameras(path: str | Path) -> dict[str, dict[str, Camera]]:
    """``{subject: {camera_id: Camera}}`` from ``cameras.json`` (T converted to metres)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"camera file not found: {path}")
    try:
        table = json.loads(path.read_text())["cameras"]
        cameras: dict[str, dict[str, Camera]] = {}
        for subject, by_id in table.items():
            cameras[subject] = {}
            for cam_id, c in by_id.items():
                width, height = RESOLUTION.get(cam_id, (1000, 1000))
                cameras[subject][cam_id] = Camera(
                    id=cam_id,
                    R=np.asarray(c["R"], dtype=np.float64).reshape(3, 3),
                    T=np.asarray(c["T"], dtype=np.float64).reshape(3) / 1000.0,
                    f=np.asarray(c["f"], dtype=np.float64).reshape(2),
                    c=np.asarray(c["c"], dtype=np.float64).reshape(2),
                    k=np.asarray(c["k"], dtype=np.float64).reshape(3),
                    p=np.asarray(c["p"], dtype=np.float64).reshape(2),
                    width=width,
                    height=height,
                )
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise DataError(f"{path} is not valid JSON: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataError(f"{path} does not hold cameras[subject][camera_id] with R, T, f, c, k, p: {exc!r}") from None
    return cameras


def complete_sh16(keypoints: np.ndarray) -> np.ndarray:
    """(..., 16, 2) Stacked Hourglass joints -> (..., 17, 2), estimating joint 9 (neck/nose) from
    the 16 detected joints (:func:`sh_neck_matrices`)."""
    out = np.empty(keypoints.shape[:-2] + (NUM_JOINTS, 2), dtype=keypoints.dtype)
    out[..., SH16_TO_17, :] = keypoints
    thorax = keypoints[..., THORAX : THORAX + 1, :]
    out[..., 9, :] = thorax[..., 0, :] + np.einsum("jcd,...jd->...c", sh_neck_matrices(), keypoints - thorax)
    return out


def load_keypoints_2d(
    path: str | Path, complete: bool = True
) -> tuple[dict[str, dict[str, list[np.ndarray]]], dict[str, Any]]:
    """VideoPose3D 2D keypoints: ``{subject: {sequence: [float32 (F, 17, 2) per camera]}}`` in pixels,
    and the metadata dict. 16-joint Stacked Hourglass files are completed to 17 joints unless
    ``complete`` is False."""
    path = Path(path)
    raw, archive = _load_pickled_dict(path, "positions_2d")
    metadata = archive["metadata"].item() if "metadata" in archive else {}
    out: dict[str, dict[str, list[np.ndarray]]] = {}
    for subject, sequences in raw.items():
        out[subject] = {}
        for sequence, per_camera in sequences.items():
            views = []
            for kp in per_camera:
                kp = np.asarray(kp, dtype=np.float32)
                if kp.ndim != 3 or kp.shape[-1] < 2 or kp.shape[1] not in (16, 17):
                    raise DataError(
                        f"{path}: {subject}/{sequence} keypoints have shape {kp.shape}, expected (F, 16 or 17, 2)"
                    )
                kp = kp[..., :2]
                views.append(complete_sh16(kp) if kp.shape[1] == 16 and complete else kp)
            out[subject][sequence] = views
    return out, metadata


def _select(sequences: list[str], actions: tuple[str, ...] | None) -> list[str]:
    return [s for s in sorted(sequences) if actions is None or canonical_action(s) in actions]


def load_h36m(
    root: str | Path,
    subjects: tuple[str, ...] | list[str],
    keypoints: str = "gt",
    actions: tuple[str, ...] | list[str] | None = None,
    stride: int = 1,
) -> PoseSet:
    """One split of Human3.6M as a :class:`PoseSet` (every camera of every chosen sequence).

    keypoints: 'gt' (projected ground truth, with distortion) or 'sh' (Stacked Hourglass
    detections). stride keeps every ``stride``-th frame of each sequence.
    """
    root, subjects, actions = _checked_request(root, subjects, keypoints, actions, stride)

    positions = load_positions_3d(root / FILE_3D)
    cameras = load_cameras(root / FILE_CAMERAS)
    detections = load_keypoints_2d(root / KEYPOINT_FILES[keypoints])[0] if keypoints != "gt" else None

    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("kp", "p3", "act", "sub", "cam", "frame", "K", "size")}
    for subject in subjects:
        if subject not in positions:
            raise DataError(f"subject {subject} is missing from {root / FILE_3D}")
        if subject not in cameras:
            raise DataError(f"subject {subject} is missing from {root / FILE_CAMERAS}")
        for sequence in _select(list(positions[subject]), actions):
            views = None
            if detections is not None:
                views = detections.get(subject, {}).get(sequence)
                if views is None:
                    continue  # no detections for this sequence (e.g. S11 Directions): skipped
                if len(views) != len(CAMERA_IDS):
                    raise DataError(f"{subject}/{sequence}: {len(views)} camera views, expected {len(CAMERA_IDS)}")
            mocap = positions[subject][sequence]
            for view, cam_id in enumerate(CAMERA_IDS):
                cam = cameras[subject].get(cam_id)
                if cam is None:
                    raise DataError(f"camera {cam_id} of {subject} is missing from {root / FILE_CAMERAS}")
                detected = None if views is None else views[view]
                _add_view(parts, subject, sequence, cam_id, cam, mocap, detected, stride)
    if not parts["kp"]:
        raise DataError(
            f"no Human3.6M samples for subjects {subjects}, actions {actions or 'all'}, keypoints {keypoints}"
        )
    return PoseSet(
        keypoints=np.concatenate(parts["kp"]).astype(np.float32),
        poses_3d=np.concatenate(parts["p3"]).astype(np.float32),
        actions=np.concatenate(parts["act"]).astype(str),
        subjects=np.concatenate(parts["sub"]).astype(str),
        cameras=np.concatenate(parts["cam"]).astype(str),
        frames=np.concatenate(parts["frame"]),
        source=f"h36m/{keypoints}",
        meta={"subjects": subjects, "stride": stride, "keypoints": keypoints},
        intrinsics=np.concatenate(parts["K"]),
        image_sizes=np.concatenate(parts["size"]).astype(np.float64),
    )


def _checked_request(
    root: str | Path,
    subjects: tuple[str, ...] | list[str],
    keypoints: str,
    actions: tuple[str, ...] | list[str] | None,
    stride: int,
) -> tuple[Path, list[str], tuple[str, ...] | None]:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"Human3.6M folder not found: {root}")
    if keypoints not in KEYPOINT_SOURCES:
        raise DataError(f"unknown keypoint source '{keypoints}'; expected one of {', '.join(KEYPOINT_SOURCES)}")
    if stride < 1:
        raise DataError(f"frame stride must be >= 1, got {stride}")
    subjects = list(subjects)
    check_subjects(subjects)
    actions = tuple(actions) if actions else None
    check_actions(actions)
    return root, subjects, actions


def _add_view(
    parts: dict[str, list[np.ndarray]],
    subject: str,
    sequence: str,
    cam_id: str,
    cam: Camera,
    mocap: np.ndarray,
    detected: np.ndarray | None,
    stride: int,
) -> None:
    """One camera's view of one sequence: its 2D (projected ground truth, or the detections) and the
    root-relative 3D in that camera's frame, every ``stride``-th frame."""
    cam_3d = world_to_camera(mocap[::stride].astype(np.float64), cam)
    if detected is None:
        pixels = project_to_2d(cam_3d, cam)
    else:
        if len(detected) < len(mocap):
            raise DataError(
                f"{subject}/{sequence} camera {cam_id}: {len(detected)} frames of keypoints for {len(mocap)} frames "
                f"of mocap"
            )
        pixels = detected[: len(mocap)][::stride]
    rel = cam_3d - cam_3d[:, ROOT : ROOT + 1]
    n = len(rel)
    parts["kp"].append(normalize_screen_coordinates(pixels.astype(np.float64), cam.width, cam.height))
    parts["p3"].append(rel)
    parts["act"].append(np.full(n, canonical_action(sequence), dtype=object))
    parts["sub"].append(np.full(n, subject, dtype=object))
    parts["cam"].append(np.full(n, cam_id, dtype=object))
    parts["frame"].append(np.arange(n) * stride)
    parts["K"].append(np.tile([*cam.f, *cam.c], (n, 1)))
    parts["size"].append(np.tile([cam.width, cam.height], (n, 1)))
