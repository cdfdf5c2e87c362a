"""Data: the H36M-17 skeleton's datasets as :class:`PoseSet` (numpy only).

``load_dataset`` is the one entry the commands use: ``data`` is a Human3.6M folder in the
VideoPose3D format, or ``synthetic`` for the built-in procedural poses.
"""

from __future__ import annotations

from pathlib import Path

from posedeploy.data.h36m import TEST_SUBJECTS, TRAIN_SUBJECTS, load_h36m
from posedeploy.data.poseset import PoseSet
from posedeploy.data.synthetic import synthetic_split
from posedeploy.errors import DataError

SYNTHETIC = "synthetic"
SYNTHETIC_SIZES = {"train": 50_000, "test": 5_000}
# Pixel noise of the synthetic 'noisy' keypoints, about the error of a good 2D detector.
SYNTHETIC_NOISE_PX = 5.0


def load_dataset(
    data: str | Path,
    split: str,
    keypoints: str = "gt",
    actions: list[str] | None = None,
    stride: int = 1,
    synthetic_size: int | None = None,
) -> PoseSet:
    """The 'train' or 'test' split of ``data``: a Human3.6M folder (train S1 S5 S6 S7 S8, test S9
    S11; keypoints 'gt' or 'sh') or 'synthetic' (keypoints 'gt' or 'noisy')."""
    if split not in ("train", "test"):
        raise DataError(f"split must be 'train' or 'test', got '{split}'")
    if str(data) == SYNTHETIC:
        if keypoints not in ("gt", "noisy"):
            raise DataError(f"synthetic keypoints are 'gt' or 'noisy', got '{keypoints}'")
        if actions:
            raise DataError("actions can only be chosen for Human3.6M data")
        size = synthetic_size or SYNTHETIC_SIZES[split]
        poses = synthetic_split(split, size, SYNTHETIC_NOISE_PX if keypoints == "noisy" else 0.0)
        poses.source = f"synthetic/{keypoints}"
        return poses.every(stride)
    subjects = TRAIN_SUBJECTS if split == "train" else TEST_SUBJECTS
    return load_h36m(Path(data), subjects, keypoints=keypoints, actions=actions, stride=stride)


__all__ = ["PoseSet", "SYNTHETIC", "load_dataset"]
