import numpy as np
import pytest

from posedeploy.errors import InputError
from posedeploy.skeleton import (
    BONES,
    FLIP_PERMUTATION,
    JOINT_NAMES,
    JOINTS_LEFT,
    JOINTS_RIGHT,
    NUM_JOINTS,
    PARENTS,
    adjacency,
    flip_pose,
)


def test_layout_is_consistent():
    assert len(JOINT_NAMES) == len(PARENTS) == NUM_JOINTS == 17
    assert all(p < j for j, p in enumerate(PARENTS))  # parents come first
    assert len(BONES) == 16
    for left, right in zip(JOINTS_LEFT, JOINTS_RIGHT, strict=True):
        assert JOINT_NAMES[left].replace("left", "") == JOINT_NAMES[right].replace("right", "")


def test_flip_is_an_involution_and_swaps_sides():
    rng = np.random.default_rng(0)
    pose = rng.normal(size=(5, 17, 3))
    flipped = flip_pose(pose)
    np.testing.assert_array_equal(flip_pose(flipped), pose)
    np.testing.assert_array_equal(flipped[:, 4, 0], -pose[:, 1, 0])  # left hip <- right hip, x mirrored
    np.testing.assert_array_equal(flipped[:, 0], pose[:, 0] * [-1, 1, 1])
    assert sorted(FLIP_PERMUTATION.tolist()) == list(range(17))


def test_flip_rejects_wrong_layout():
    with pytest.raises(InputError, match="17"):
        flip_pose(np.zeros((3, 16, 2)))


def test_adjacency_is_row_normalised_bone_graph_with_unit_diagonal():
    adj = adjacency()
    assert adj.shape == (17, 17) and adj.dtype == np.float32
    np.testing.assert_array_equal(np.diag(adj), 1)
    off = adj - np.eye(17)
    np.testing.assert_allclose(off.sum(axis=1), 1, rtol=1e-6)
    for child, parent in BONES:
        assert off[child, parent] > 0 and off[parent, child] > 0
    assert (off > 0).sum() == 2 * len(BONES)
    assert adj[0, 1] == pytest.approx(1 / 3)  # the pelvis has three neighbours
