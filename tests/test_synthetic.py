import numpy as np
import pytest

from posedeploy.data.h36m import load_h36m
from posedeploy.data.posture import joint_angles
from posedeploy.data.synthetic import (
    ACTIVITIES,
    BONE_LENGTHS,
    CAMERA_HEIGHT,
    CAMERA_TILT_DEG,
    FPS,
    generate,
    handedness,
    studio_cameras,
    synthetic_split,
)
from posedeploy.errors import InputError
from posedeploy.skeleton import FLIP_PERMUTATION, PARENTS, flip_pose


def test_same_seed_same_samples_other_seed_other_samples():
    a, b, c = generate(64, seed=3), generate(64, seed=3), generate(64, seed=4)
    np.testing.assert_array_equal(a.keypoints, b.keypoints)
    np.testing.assert_array_equal(a.poses_3d, b.poses_3d)
    assert not np.allclose(a.keypoints, c.keypoints)


def test_poses_are_plausible():
    data = generate(3000, seed=0)
    assert data.keypoints.shape == (3000, 17, 2) and data.poses_3d.shape == (3000, 17, 3)
    np.testing.assert_array_equal(data.poses_3d[:, 0], 0)
    bones = np.stack(
        [np.linalg.norm(data.poses_3d[:, j] - data.poses_3d[:, PARENTS[j]], axis=-1) for j in range(1, 17)], 1
    )
    ratio = bones / BONE_LENGTHS[1:]
    assert ratio.min() > 0.75 and ratio.max() < 1.3
    # Left and right limbs of one body have the same length.
    np.testing.assert_allclose(bones[:, 4 - 1], bones[:, 1 - 1], rtol=1e-5)
    assert set(data.actions) == set(ACTIVITIES)
    inside = (np.abs(data.keypoints[..., 0]) <= 1) & (np.abs(data.keypoints[..., 1]) <= 1)
    assert inside.mean() > 0.99
    # Feet below the pelvis for standing people (camera y points down).
    standing = data.actions == "standing"
    assert (data.poses_3d[standing, 3, 1] > 0.5).mean() > 0.95


def test_bodies_are_right_handed_like_real_people():
    # The mirror image of a person is not a person: the generator once built every body left-handed,
    # with its 'left' limbs on the person's right, and H36M-trained lifters failed on all of it.
    data = generate(2000, seed=1)
    assert np.all(handedness(data.poses_3d) < 0)
    # Swapping the left/right labels alone makes the mirror image; a true mirror (flip_pose: negate x
    # and swap the labels) is again a real person.
    assert np.all(handedness(data.poses_3d[:, FLIP_PERMUTATION]) > 0)
    assert np.all(handedness(flip_pose(data.poses_3d)) < 0)


def test_sequences_move_smoothly_and_each_has_one_camera():
    data = generate(400, seed=6, sequence_frames=50)
    assert len(set(data.subjects)) == 8
    np.testing.assert_array_equal(data.frames[:50], np.arange(50))
    for subject in sorted(set(data.subjects)):
        rows = data.subjects == subject
        assert len(set(map(tuple, data.intrinsics[rows]))) == 1  # one camera per sequence
        step_3d = np.linalg.norm(np.diff(data.poses_3d[rows], axis=0), axis=-1)
        step_px = np.linalg.norm(np.diff(data.pixels()[rows], axis=0), axis=-1)
        # At 10 Hz a joint moves a few centimetres between frames, at most ~0.35 m (a swinging foot).
        assert np.median(step_3d) < 0.06 and step_3d.max() < 0.45, subject
        assert np.median(step_px) < 25, subject  # walking at 1.3 m/s, 4 m away: 30 px per frame
    # Consecutive sequences are unrelated: a jump at the boundary.
    boundary = np.linalg.norm(data.poses_3d[50] - data.poses_3d[49], axis=-1).mean()
    within = np.linalg.norm(np.diff(data.poses_3d[:50], axis=0), axis=-1).mean()
    assert boundary > 2 * within
    assert data.meta["fps"] == FPS


def test_walkers_travel_and_others_stay_put():
    data = generate(50 * 60, seed=8)
    travelled = {}
    for subject in sorted(set(data.subjects)):
        rows = np.flatnonzero(data.subjects == subject)
        if len(rows) == 50:
            k = data.intrinsics[rows[0]]
            # The root's image position moves when the person walks through the scene.
            root = data.pixels()[rows, 0]
            travelled.setdefault(data.actions[rows[0]], []).append(
                np.linalg.norm(root[-1] - root[0]) + np.ptp(root, 0).sum()
            )
            assert k[0] > 1100
    assert np.median(travelled["walking"]) > 2 * np.median(travelled["standing"])


def test_cameras_are_placed_like_the_human36m_studio():
    cameras = studio_cameras(np.random.default_rng(0), 500)
    heights = np.array([c.T[2] for c in cameras])
    assert CAMERA_HEIGHT[0] <= heights.min() and heights.max() <= CAMERA_HEIGHT[1]
    tilt = np.degrees(np.arcsin(-np.array([c.R[2, 2] for c in cameras])))
    assert CAMERA_TILT_DEG[0] - 2 < tilt.min() and tilt.max() < CAMERA_TILT_DEG[1] + 2
    for c in cameras[:20]:
        np.testing.assert_allclose(c.R @ c.R.T, np.eye(3), atol=1e-9)
        assert np.linalg.det(c.R) > 0.999  # a rotation, not a reflection
        assert c.k[0] < -0.15  # barrel distortion, as in Human3.6M
    assert {(c.width, c.height) for c in cameras} == {(1000, 1000), (1000, 1002)}


def test_keypoint_noise_perturbs_only_2d():
    clean, noisy = generate(100, seed=5), generate(100, seed=5, keypoint_noise_px=5.0)
    np.testing.assert_array_equal(clean.poses_3d, noisy.poses_3d)
    error_px = np.linalg.norm(clean.pixels() - noisy.pixels(), axis=-1).mean()
    assert 4 < error_px < 9


def test_splits_differ_and_bad_arguments():
    assert not np.allclose(synthetic_split("train", 10).keypoints, synthetic_split("test", 10).keypoints)
    with pytest.raises(InputError):
        generate(0)
    with pytest.raises(InputError):
        generate(5, keypoint_noise_px=-1)
    with pytest.raises(InputError, match="frames per synthetic sequence"):
        generate(5, sequence_frames=0)
    with pytest.raises(InputError):
        synthetic_split("holdout", 5)


@pytest.mark.data
def test_synthetic_data_resembles_human36m(h36m_root):
    real = load_h36m(h36m_root, ["S9", "S11"], "gt", stride=10)
    synthetic = generate(5000, seed=11)
    # Handedness: the same sign on (nearly) every frame of both.
    assert np.mean(handedness(real.poses_3d) < 0) > 0.99
    assert np.mean(handedness(synthetic.poses_3d) < 0) == 1.0
    # Joint angles: medians within 15 degrees, and the spread (p10-p90) overlapping.
    a, b = joint_angles(real.poses_3d), joint_angles(synthetic.poses_3d)
    for name in a:
        lo_a, mid_a, hi_a = np.percentile(a[name], (10, 50, 90))
        lo_b, mid_b, hi_b = np.percentile(b[name], (10, 50, 90))
        assert abs(mid_a - mid_b) < 15, (name, mid_a, mid_b)
        assert min(hi_a, hi_b) - max(lo_a, lo_b) > 0.6 * (hi_a - lo_a), (name, (lo_a, hi_a), (lo_b, hi_b))
    # The person is as far from the camera and as large in the image.
    depth_real = np.percentile(_root_depth(real), (10, 50, 90))
    depth_synth = np.percentile(_root_depth(synthetic), (10, 50, 90))
    np.testing.assert_allclose(depth_synth, depth_real, rtol=0.15)


def _root_depth(data) -> np.ndarray:
    """The pelvis's distance from the camera (m), from the 2D torso size and the 3D torso length."""
    torso_px = np.linalg.norm(data.pixels()[:, 8] - data.pixels()[:, 0], axis=-1)
    torso_m = np.linalg.norm(data.poses_3d[:, 8] - data.poses_3d[:, 0], axis=-1)
    return data.intrinsics[:, 0] * torso_m / np.maximum(torso_px, 1e-6)
