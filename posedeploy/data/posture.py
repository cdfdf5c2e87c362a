"""Joint angles of H36M-17 poses, to compare the postures of two datasets (numpy only).

Every angle is in degrees and needs no body model: the angle between two bone directions, or
between a bone and the camera's up axis (-y, since camera y points down), so that it can be
computed the same way on Human3.6M and on the built-in synthetic poses.
"""

from __future__ import annotations

import numpy as np

from posedeploy.skeleton import PARENTS, check_joints

# name -> what it measures; left and right limbs are pooled.
ANGLES: dict[str, str] = {
    "lean": "pelvis->thorax against the camera's up axis",
    "knee": "thigh-shin interior angle (180 = straight leg)",
    "elbow": "upper arm-forearm interior angle (180 = straight arm)",
    "hip": "pelvis->thorax against the thigh (180 = standing straight)",
    "shoulder": "upper arm against thorax->pelvis (0 = arm hanging)",
    "head": "pelvis->thorax against thorax->head",
}


def _angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    cos = np.sum(a * b, axis=-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    degrees: np.ndarray = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    return degrees


def joint_angles(poses: np.ndarray) -> dict[str, np.ndarray]:
    """Angles of :data:`ANGLES` for camera-frame poses (N, 17, 3); limb angles have 2N values."""
    check_joints(poses, "poses", 3)
    p = np.asarray(poses, dtype=np.float64).reshape(-1, 17, 3)
    spine = p[:, 8] - p[:, 0]
    up = np.array([0.0, -1.0, 0.0])
    return {
        "lean": _angle(spine, up),
        "knee": np.concatenate([_angle(p[:, h] - p[:, k], p[:, a] - p[:, k]) for h, k, a in ((1, 2, 3), (4, 5, 6))]),
        "elbow": np.concatenate(
            [_angle(p[:, s] - p[:, e], p[:, w] - p[:, e]) for s, e, w in ((14, 15, 16), (11, 12, 13))]
        ),
        "hip": np.concatenate([_angle(spine, p[:, k] - p[:, h]) for h, k in ((1, 2), (4, 5))]),
        "shoulder": np.concatenate([_angle(-spine, p[:, e] - p[:, s]) for s, e in ((14, 15), (11, 12))]),
        "head": _angle(spine, p[:, 10] - p[:, 8]),
    }


def bone_lengths(poses: np.ndarray) -> np.ndarray:
    """Bone lengths (N, 16) in the poses' unit, in the order of the child joints 1..16."""
    check_joints(poses, "poses", 3)
    p = np.asarray(poses, dtype=np.float64).reshape(-1, 17, 3)
    lengths: np.ndarray = np.linalg.norm(p[:, 1:] - p[:, list(PARENTS[1:])], axis=-1)
    return lengths


def summarize(poses: np.ndarray, percentiles: tuple[float, ...] = (10, 50, 90)) -> dict[str, list[float]]:
    """Each angle's percentiles, e.g. {'knee': [p10, p50, p90], ...}."""
    return {name: np.percentile(values, percentiles).round(1).tolist() for name, values in joint_angles(poses).items()}
