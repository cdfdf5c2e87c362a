"""The Human3.6M 17-joint skeleton shared by every stage (numpy only).

Joint order is the one used by VideoPose3D, SemGCN, Modulated GCN, HTNet and PRPose: the 32 mocap
joints of Human3.6M reduced to 17 by :data:`H36M32_TO_17`. Joint 0 (pelvis) is the root.
"""

from __future__ import annotations

import numpy as np

from posedeploy.errors import InputError

NUM_JOINTS = 17

JOINT_NAMES: tuple[str, ...] = (
    "pelvis",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "spine",
    "thorax",
    "neck_nose",
    "head",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
)

PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)

JOINTS_LEFT: tuple[int, ...] = (4, 5, 6, 11, 12, 13)
JOINTS_RIGHT: tuple[int, ...] = (1, 2, 3, 14, 15, 16)

ROOT = 0

# Indices of the 17 joints among the 32 of the Human3.6M mocap files.
H36M32_TO_17: tuple[int, ...] = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)

# Bones as (child, parent) pairs, the edges of the skeleton graph.
BONES: tuple[tuple[int, int], ...] = tuple((j, p) for j, p in enumerate(PARENTS) if p >= 0)


def _flip_permutation() -> np.ndarray:
    perm = np.arange(NUM_JOINTS)
    perm[list(JOINTS_LEFT)] = JOINTS_RIGHT
    perm[list(JOINTS_RIGHT)] = JOINTS_LEFT
    return perm


# perm[j] is the joint whose value lands on joint j after a left-right mirror.
FLIP_PERMUTATION: np.ndarray = _flip_permutation()
FLIP_PERMUTATION.setflags(write=False)


def check_joints(array: np.ndarray, name: str, coords: int | tuple[int, ...]) -> None:
    """Raise :class:`InputError` unless ``array`` ends in (17, coords)."""
    allowed = (coords,) if isinstance(coords, int) else coords
    shape = getattr(array, "shape", None)
    if shape is None or len(shape) < 2 or shape[-2] != NUM_JOINTS or shape[-1] not in allowed:
        want = " or ".join(f"(..., {NUM_JOINTS}, {c})" for c in allowed)
        raise InputError(f"{name} must have shape {want} (H36M-17 joints), got {shape}")


def flip_pose(pose: np.ndarray) -> np.ndarray:
    """Mirror 2D or 3D poses left-right: negate x and swap left and right joints.

    Valid for normalised screen coordinates (x centred on the image) and for camera-frame 3D.
    """
    check_joints(pose, "pose", (2, 3))
    flipped: np.ndarray = pose[..., FLIP_PERMUTATION, :].copy()
    flipped[..., 0] *= -1
    return flipped


def adjacency() -> np.ndarray:
    """The normalised adjacency of the graph models (float32, 17 x 17).

    Each row of the symmetric bone graph is divided by the joint's degree, then the diagonal is set
    to 1 (self-connection kept at full weight), as in SemGCN / Modulated GCN.
    """
    adj = np.zeros((NUM_JOINTS, NUM_JOINTS), dtype=np.float64)
    for child, parent in BONES:
        adj[child, parent] = adj[parent, child] = 1.0
    adj /= adj.sum(axis=1, keepdims=True)
    np.fill_diagonal(adj, 1.0)
    return adj.astype(np.float32)
