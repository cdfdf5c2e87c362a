"""Pinhole cameras with Brown-Conrady distortion, as calibrated for Human3.6M (numpy only)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from posedeploy.errors import InputError


@dataclass(frozen=True)
class Camera:
    """One calibrated camera.

    ``R`` maps world to camera (``X_cam = R (X_world - T)``); ``T`` is the camera centre in world
    metres; ``f``/``c`` are in pixels; ``k`` radial (k1, k2, k3); ``p`` tangential (p1, p2) in
    VideoPose3D's order.
    """

    id: str
    R: np.ndarray
    T: np.ndarray
    f: np.ndarray
    c: np.ndarray
    k: np.ndarray
    p: np.ndarray
    width: int
    height: int

    @property
    def intrinsics(self) -> np.ndarray:
        """The 3x3 intrinsic matrix (pixels)."""
        return np.array(
            [[self.f[0], 0.0, self.c[0]], [0.0, self.f[1], self.c[1]], [0.0, 0.0, 1.0]],
            dtype=np.float64,
        )


def world_to_camera(points: np.ndarray, camera: Camera) -> np.ndarray:
    """World points (..., 3) in metres to the camera frame (..., 3) in metres."""
    camera_points: np.ndarray = ((points - camera.T) @ camera.R.T).astype(points.dtype, copy=False)
    return camera_points


def camera_to_world(points: np.ndarray, camera: Camera) -> np.ndarray:
    """Inverse of :func:`world_to_camera`."""
    world_points: np.ndarray = (points @ camera.R + camera.T).astype(points.dtype, copy=False)
    return world_points


def project_to_2d(points: np.ndarray, camera: Camera) -> np.ndarray:
    """Project camera-frame points (..., 3) to pixels (..., 2), with lens distortion.

    With x = X[:2] / X[2] and r2 = |x|^2:
    x' = x (1 + k1 r2 + k2 r2^2 + k3 r2^3 + p.x) + p r2, pixels = f x' + c
    (the model VideoPose3D used to make the Human3.6M ground-truth 2D files).
    """
    z = points[..., 2:3]
    if np.any(z <= 0):
        raise InputError("cannot project points at or behind the camera (z <= 0)")
    x = points[..., :2] / z
    r2 = np.sum(x**2, axis=-1, keepdims=True)
    k1, k2, k3 = camera.k
    radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
    tangential = np.sum(camera.p * x, axis=-1, keepdims=True)
    distorted = x * (radial + tangential) + camera.p * r2
    pixels: np.ndarray = (camera.f * distorted + camera.c).astype(points.dtype, copy=False)
    return pixels


def normalize_screen_coordinates(pixels: np.ndarray, w: float, h: float) -> np.ndarray:
    """Pixels to normalised screen coordinates: x/w*2 - [1, h/w].

    x spans [-1, 1] and the aspect ratio is kept, so a horizontal mirror is ``x -> -x``.
    """
    if pixels.shape[-1] != 2:
        raise InputError(f"screen coordinates must end in 2 values (x, y), got shape {pixels.shape}")
    normalized: np.ndarray = (pixels / w * 2 - np.array([1.0, h / w])).astype(pixels.dtype, copy=False)
    return normalized


def image_coordinates(normalized: np.ndarray, w: float, h: float) -> np.ndarray:
    """Inverse of :func:`normalize_screen_coordinates`."""
    if normalized.shape[-1] != 2:
        raise InputError(f"screen coordinates must end in 2 values (x, y), got shape {normalized.shape}")
    pixels: np.ndarray = ((normalized + np.array([1.0, h / w])) * w / 2).astype(normalized.dtype, copy=False)
    return pixels
