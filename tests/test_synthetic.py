import numpy as np
import pytest

from posedeploy.data.synthetic import ACTIVITIES, BONE_LENGTHS, generate, synthetic_split
from posedeploy.errors import InputError
from posedeploy.skeleton import PARENTS


def test_same_seed_same_samples_other_seed_other_samples():
    a, b, c = generate(64, seed=3), generate(64, seed=3), generate(64, seed=4)
    np.testing.assert_array_equal(a.keypoints, b.keypoints)
    np.testing.assert_array_equal(a.poses_3d, b.poses_3d)
    assert not np.allclose(a.keypoints, c.keypoints)


def test_poses_are_plausible():
    data = generate(2000, seed=0)
    assert data.keypoints.shape == (2000, 17, 2) and data.poses_3d.shape == (2000, 17, 3)
    np.testing.assert_array_equal(data.poses_3d[:, 0], 0)
    bones = np.stack([np.linalg.norm(data.poses_3d[:, j] - data.poses_3d[:, PARENTS[j]], axis=-1) for j in range(1, 17)], 1)
    ratio = bones / BONE_LENGTHS[1:]
    assert 0.75 < ratio.min() and ratio.max() < 1.3
    # Left and right limbs of one body have the same length.
    np.testing.assert_allclose(bones[:, 4 - 1], bones[:, 1 - 1], rtol=1e-6)
    assert set(data.actions) == set(ACTIVITIES)
    # Most joints are inside the image, the camera is 3.5-6.5 m away.
    inside = (np.abs(data.keypoints[..., 0]) <= 1) & (np.abs(data.keypoints[..., 1]) <= 1)
    assert inside.mean() > 0.97
    # Feet below the pelvis for standing people (camera y points down).
    standing = data.actions == "standing"
    assert (data.poses_3d[standing, 3, 1] > 0.5).mean() > 0.95


def test_keypoint_noise_perturbs_only_2d():
    clean, noisy = generate(100, seed=5), generate(100, seed=5, keypoint_noise_px=5.0)
    np.testing.assert_array_equal(clean.poses_3d, noisy.poses_3d)
    error_px = np.linalg.norm(clean.keypoints - noisy.keypoints, axis=-1).mean() * 500
    assert 4 < error_px < 9


def test_splits_differ_and_bad_arguments():
    assert not np.allclose(synthetic_split("train", 10).keypoints, synthetic_split("test", 10).keypoints)
    with pytest.raises(InputError):
        generate(0)
    with pytest.raises(InputError):
        generate(5, keypoint_noise_px=-1)
    with pytest.raises(InputError):
        synthetic_split("val", 5)
