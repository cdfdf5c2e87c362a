"""Turning S hypotheses into one pose (numpy only): mean, joint-wise median, and a reprojection-based
joint-wise selection in the spirit of D3DP's JPMA.

JPMA needs the 2D input in pixels and the camera intrinsics. The hypotheses are root-relative, so
the root's position in the camera frame is first solved for: the translation T that makes the mean
hypothesis, moved by T, project best onto the 2D keypoints (a linear least-squares problem for a
pinhole camera). Then, for every joint, the hypothesis whose joint projects closest to the 2D
keypoint is chosen. The root stays at 0.
"""

from __future__ import annotations

import numpy as np

from posedeploy.errors import InputError

AGGREGATIONS = ("mean", "median", "jpma")


def mean(hypotheses: np.ndarray) -> np.ndarray:
    averaged: np.ndarray = hypotheses.mean(axis=-3)
    return averaged


def median(hypotheses: np.ndarray) -> np.ndarray:
    """Per joint and coordinate, the median over the hypotheses."""
    middle: np.ndarray = np.median(hypotheses, axis=-3)
    return middle


def root_translation(pose: np.ndarray, pixels: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """T (B, 3) minimising the pinhole reprojection error of pose + T against ``pixels``.

    pose (B, J, 3) metres, pixels (B, J, 2), intrinsics (B, 4) = fx, fy, cx, cy. From
    u = fx (X + Tx) / (Z + Tz) + cx:  fx Tx - (u - cx) Tz = (u - cx) Z - fx X, likewise for y.
    """
    fx, fy, cx, cy = (intrinsics[:, i, None] for i in range(4))
    du, dv = pixels[..., 0] - cx, pixels[..., 1] - cy
    x, y, z = pose[..., 0], pose[..., 1], pose[..., 2]
    zeros = np.zeros_like(du)
    rows_u = np.stack([np.broadcast_to(fx, du.shape), zeros, -du], axis=-1)
    rows_v = np.stack([zeros, np.broadcast_to(fy, dv.shape), -dv], axis=-1)
    a = np.concatenate([rows_u, rows_v], axis=1)  # (B, 2J, 3)
    b = np.concatenate([du * z - fx * x, dv * z - fy * y], axis=1)  # (B, 2J)
    ata = a.transpose(0, 2, 1) @ a
    atb = (a.transpose(0, 2, 1) @ b[..., None])[..., 0]
    return np.linalg.solve(ata, atb[..., None])[..., 0]


def project(points: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """Pinhole projection of camera-frame points (B, ..., 3) with intrinsics (B, 4)."""
    shape = (len(points),) + (1,) * (points.ndim - 2)
    fx, fy, cx, cy = (intrinsics[:, i].reshape(shape) for i in range(4))
    z = np.maximum(points[..., 2], 1e-6)
    return np.stack([fx * points[..., 0] / z + cx, fy * points[..., 1] / z + cy], axis=-1)


def jpma(hypotheses: np.ndarray, pixels: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """Joint-wise selection by reprojection: (B, S, J, 3), (B, J, 2) px, (B, 4) -> (B, J, 3)."""
    if hypotheses.ndim != 4 or pixels.shape != (hypotheses.shape[0], hypotheses.shape[2], 2):
        raise InputError(
            f"jpma needs hypotheses (B, S, J, 3) and pixels (B, J, 2); got {hypotheses.shape}, {pixels.shape}"
        )
    intrinsics = np.asarray(intrinsics, dtype=np.float64).reshape(-1, 4)
    if len(intrinsics) == 1:
        intrinsics = np.repeat(intrinsics, len(hypotheses), axis=0)
    hyps = hypotheses.astype(np.float64)
    t = root_translation(hyps.mean(axis=1), pixels.astype(np.float64), intrinsics)  # (B, 3)
    reprojected = project(hyps + t[:, None, None, :], intrinsics)  # (B, S, J, 2)
    error = np.linalg.norm(reprojected - pixels[:, None].astype(np.float64), axis=-1)  # (B, S, J)
    best = error.argmin(axis=1)  # (B, J)
    chosen = np.take_along_axis(hyps, best[:, None, :, None], axis=1)[:, 0]
    chosen[:, 0] = 0.0
    return chosen.astype(hypotheses.dtype)


def aggregate(
    hypotheses: np.ndarray, how: str, pixels: np.ndarray | None = None, intrinsics: np.ndarray | None = None
) -> np.ndarray:
    if how == "mean":
        return mean(hypotheses)
    if how == "median":
        return median(hypotheses)
    if how == "jpma":
        if pixels is None or intrinsics is None:
            raise InputError("jpma aggregation needs the 2D keypoints in pixels and the camera intrinsics (--camera)")
        return jpma(hypotheses, pixels, intrinsics)
    raise InputError(f"unknown aggregation '{how}'; expected one of {', '.join(AGGREGATIONS)}")
