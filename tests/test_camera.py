import numpy as np
import pytest

from posedeploy.data.camera import (
    Camera,
    camera_to_world,
    image_coordinates,
    normalize_screen_coordinates,
    project_to_2d,
    world_to_camera,
)
from posedeploy.errors import InputError


def _camera(k=(0.0, 0.0, 0.0), p=(0.0, 0.0)):
    angle = 0.4
    R = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1.0]])
    return Camera(
        "c",
        R,
        np.array([0.1, -0.2, -4.0]),
        np.array([1100.0, 1090.0]),
        np.array([500.0, 510.0]),
        np.array(k),
        np.array(p),
        1000,
        1002,
    )


def test_world_camera_round_trip():
    cam = _camera()
    x = np.random.default_rng(0).normal(size=(10, 17, 3))
    np.testing.assert_allclose(camera_to_world(world_to_camera(x, cam), cam), x, atol=1e-12)
    np.testing.assert_allclose(world_to_camera(cam.T[None], cam), 0, atol=1e-12)


def test_projection_without_distortion_is_pinhole():
    cam = _camera()
    pts = np.array([[0.3, -0.2, 4.0], [0.0, 0.0, 2.0]])
    expected = cam.f * pts[:, :2] / pts[:, 2:] + cam.c
    np.testing.assert_allclose(project_to_2d(pts, cam), expected)
    np.testing.assert_allclose(project_to_2d(np.array([0.0, 0.0, 3.0]), cam), cam.c)


def test_distortion_follows_the_documented_model():
    k, p = (-0.2, 0.24, -0.003), (-0.001, -0.0014)
    cam = _camera(k, p)
    pt = np.array([0.4, -0.3, 2.0])
    x = pt[:2] / pt[2]
    r2 = x @ x
    radial = 1 + k[0] * r2 + k[1] * r2**2 + k[2] * r2**3
    expected = cam.f * (x * (radial + np.dot(p, x)) + np.array(p) * r2) + cam.c
    np.testing.assert_allclose(project_to_2d(pt, cam), expected)


def test_points_behind_the_camera_are_refused():
    with pytest.raises(InputError, match="behind"):
        project_to_2d(np.array([0.0, 0.0, -1.0]), _camera())


def test_screen_normalisation_round_trip_and_convention():
    px = np.array([[0.0, 0.0], [1000.0, 1002.0], [500.0, 501.0]])
    norm = normalize_screen_coordinates(px, 1000, 1002)
    np.testing.assert_allclose(norm[0], [-1, -1.002])
    np.testing.assert_allclose(norm[2], [0, 0], atol=1e-12)  # image centre -> origin, so mirroring is x -> -x
    np.testing.assert_allclose(image_coordinates(norm, 1000, 1002), px)
    with pytest.raises(InputError):
        normalize_screen_coordinates(np.zeros((3, 3)), 1000, 1000)
