"""Loaders of the VideoPose3D files, on fake files in the real layout and on the real data."""

import json

import numpy as np
import pytest

from posedeploy.data import load_dataset
from posedeploy.data.camera import image_coordinates
from posedeploy.data.h36m import (
    ACTIONS,
    SH16_TO_17,
    canonical_action,
    complete_sh16,
    load_cameras,
    load_h36m,
    load_keypoints_2d,
    load_positions_3d,
)
from posedeploy.errors import DataError
from posedeploy.skeleton import flip_pose


def test_fake_folder_loads_with_ground_truth_and_detections(fake_h36m):
    gt = load_h36m(fake_h36m, ["S9", "S11"], "gt")
    sh = load_h36m(fake_h36m, ["S9", "S11"], "sh")
    assert len(gt) == len(sh) == 2 * 3 * 4 * 12  # subjects x sequences x cameras x frames
    assert gt.keypoints.shape == (len(gt), 17, 2) and gt.poses_3d.shape == (len(gt), 17, 3)
    assert gt.keypoints.dtype == np.float32 and gt.poses_3d.dtype == np.float32
    np.testing.assert_array_equal(gt.poses_3d[:, 0], 0)  # root-relative
    assert set(gt.actions) == {"Walking", "Sitting", "Photo"}
    np.testing.assert_array_equal(gt.poses_3d, sh.poses_3d)
    # The fake detections are the projected truth shifted by 3 px, joint 9 estimated.
    joints = [j for j in range(17) if j != 9]
    for cam in set(gt.cameras):
        w, h = (1000, 1002) if cam in ("54138969", "60457274") else (1000, 1000)
        sel = gt.cameras == cam
        shift = image_coordinates(sh.keypoints[sel].astype(np.float64), w, h) - image_coordinates(
            gt.keypoints[sel].astype(np.float64), w, h
        )
        np.testing.assert_allclose(shift[:, joints], 3.0, atol=2e-3)


def test_32_and_17_joint_3d_files_agree(tmp_path):
    from conftest import make_fake_h36m

    a = load_h36m(make_fake_h36m(tmp_path / "a", joints_3d=32), ["S1"])
    b = load_h36m(make_fake_h36m(tmp_path / "b", joints_3d=17), ["S1"])
    np.testing.assert_array_equal(a.keypoints, b.keypoints)


def test_stride_and_action_filter(fake_h36m):
    every3 = load_h36m(fake_h36m, ["S1"], "gt", actions=["Walking"], stride=3)
    assert len(every3) == 4 * 4  # 4 cameras x frames 0, 3, 6, 9
    assert set(every3.frames.tolist()) == {0, 3, 6, 9}
    assert set(every3.actions) == {"Walking"}


def test_sh16_completion_estimates_the_neck_from_the_detected_joints():
    rng = np.random.default_rng(0)
    kp16 = rng.normal(size=(4, 16, 2)).astype(np.float32)
    kp17 = complete_sh16(kp16)
    assert kp17.shape == (4, 17, 2) and kp17.dtype == np.float32
    np.testing.assert_array_equal(kp17[:, list(SH16_TO_17)], kp16)
    # It moves with the person and mirrors with the pose.
    shift = np.array([30.0, -12.0], np.float32)
    np.testing.assert_allclose(complete_sh16(kp16 + shift)[:, 9], kp17[:, 9] + shift, atol=1e-4)
    mirrored16 = flip_pose(kp17)[:, list(SH16_TO_17)]
    np.testing.assert_allclose(complete_sh16(mirrored16)[:, 9], flip_pose(kp17)[:, 9], atol=1e-4)
    # On an upright body the neck/nose lands between the thorax and the head.
    body = np.zeros((1, 17, 2))
    body[0, :, 1] = [0, 0, 45, 90, 0, 45, 90, -25, -50, -60, -70, -48, -25, 0, -48, -25, 0]
    body[0, [1, 2, 3, 14, 15, 16], 0], body[0, [4, 5, 6, 11, 12, 13], 0] = -10, 10
    neck = complete_sh16(body[:, list(SH16_TO_17)])[0, 9]
    assert -70 < neck[1] < -50 and abs(neck[0]) < 1e-3


def test_action_names():
    assert canonical_action("Walking 1") == "Walking"
    assert canonical_action("WalkingDog") == "WalkDog"
    assert len(ACTIONS) == 15
    with pytest.raises(DataError, match="unknown Human3.6M action 'Dancing 1'"):
        canonical_action("Dancing 1")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"subjects": ["S2"]}, "unknown Human3.6M subject"),
        ({"subjects": ["S1"], "actions": ["Juggling"]}, "unknown Human3.6M action"),
        ({"subjects": ["S1"], "keypoints": "cpn"}, "unknown keypoint source"),
        ({"subjects": ["S1"], "stride": 0}, "stride"),
        ({"subjects": ["S5"]}, "subject S5 is missing"),
    ],
)
def test_bad_requests_are_named(fake_h36m, kwargs, message):
    with pytest.raises(DataError, match=message):
        load_h36m(fake_h36m, **kwargs)


def test_missing_and_corrupted_files(fake_h36m, tmp_path):
    with pytest.raises(DataError, match="folder not found"):
        load_h36m(tmp_path / "nowhere", ["S1"])
    (fake_h36m / "cameras.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        load_cameras(fake_h36m / "cameras.json")
    (fake_h36m / "cameras.json").write_text(json.dumps({"cameras": {"S1": {"54138969": {"R": [1, 2]}}}}))
    with pytest.raises(DataError, match="does not hold cameras"):
        load_cameras(fake_h36m / "cameras.json")
    (fake_h36m / "data_3d_h36m.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match="not a valid npz"):
        load_positions_3d(fake_h36m / "data_3d_h36m.npz")
    np.savez(tmp_path / "other.npz", something=np.zeros(3))
    with pytest.raises(DataError, match="no 'positions_3d' entry"):
        load_positions_3d(tmp_path / "other.npz")
    np.savez(tmp_path / "shape.npz", positions_3d=np.array({"S1": {"Walking": np.zeros((5, 20, 3))}}, dtype=object))
    with pytest.raises(DataError, match=r"S1/Walking has shape \(5, 20, 3\)"):
        load_positions_3d(tmp_path / "shape.npz")
    np.savez(tmp_path / "kp.npz", positions_2d=np.array({"S1": {"Walking": [np.zeros((5, 15, 2))]}}, dtype=object))
    with pytest.raises(DataError, match="expected \\(F, 16 or 17, 2\\)"):
        load_keypoints_2d(tmp_path / "kp.npz")


def test_synthetic_dataset_choices():
    assert load_dataset("synthetic", "test", "gt", synthetic_size=50).source == "synthetic/gt"
    with pytest.raises(DataError, match="synthetic keypoints"):
        load_dataset("synthetic", "test", "sh")
    with pytest.raises(DataError, match="split"):
        load_dataset("synthetic", "holdout")
    assert load_dataset("synthetic", "val", synthetic_size=50).meta["split"] == "val"


@pytest.mark.data
def test_real_h36m_splits_hold_out_s8_for_every_choice(h36m_root):
    splits = {name: set(load_dataset(h36m_root, name, "gt", stride=50).subjects) for name in ("train", "val", "test")}
    assert splits == {"train": {"S1", "S5", "S6", "S7"}, "val": {"S8"}, "test": {"S9", "S11"}}


@pytest.mark.data
def test_sh_neck_estimate_beats_the_fixed_fraction_on_the_test_subjects(h36m_root):
    gt = load_h36m(h36m_root, ["S9"], "gt", stride=10)
    sh = load_h36m(h36m_root, ["S9"], "sh", stride=10)
    error_px = np.linalg.norm(gt.pixels()[:, 9] - sh.pixels()[:, 9], axis=-1).mean()
    assert error_px < 12  # 17 px with the thorax->head fraction it replaced


@pytest.mark.data
def test_real_h36m_test_split(h36m_root):
    gt = load_h36m(h36m_root, ["S9", "S11"], "gt", stride=20)
    sh = load_h36m(h36m_root, ["S9", "S11"], "sh", stride=20)
    assert sorted(set(gt.actions)) == sorted(ACTIONS)
    assert set(gt.subjects) == {"S9", "S11"}
    assert len(sh) < len(gt)  # S11 Directions has no detections
    assert np.isfinite(sh.keypoints).all() and np.abs(gt.keypoints).max() < 1.2
    # On S9 (detections for every sequence, so the samples align) the detections are 12-18 px
    # from the projected ground truth on average (README of the data); 500 px per normalised unit.
    gt9, sh9 = load_h36m(h36m_root, ["S9"], "gt", stride=20), load_h36m(h36m_root, ["S9"], "sh", stride=20)
    np.testing.assert_array_equal(gt9.poses_3d, sh9.poses_3d)
    joints = [j for j in range(17) if j != 9]
    error_px = np.linalg.norm(gt9.keypoints - sh9.keypoints, axis=-1)[:, joints].mean() * 500
    assert 10 < error_px < 20
    bones = np.linalg.norm(gt.poses_3d[:, 2] - gt.poses_3d[:, 1], axis=-1)
    assert 0.35 < bones.mean() < 0.55  # right thigh, metres
