"""Data: the H36M-17 skeleton's datasets as :class:`PoseSet` (numpy only).

``load_dataset`` is the one entry the commands use: ``data`` is a Human3.6M folder in the
VideoPose3D format, or ``synthetic`` for the built-in procedural poses.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from posedeploy.data.h36m import SPLITS, load_h36m
from posedeploy.data.poseset import PoseSet
from posedeploy.data.synthetic import synthetic_split
from posedeploy.errors import DataError

SYNTHETIC = "synthetic"
SYNTHETIC_SIZES = {"train": 50_000, "val": 2_000, "test": 2_000}
# Pixel noise of the synthetic 'noisy' keypoints, about the error of a good 2D detector.
SYNTHETIC_NOISE_PX = 5.0


AUTO = "auto"
# Where 'auto' looks for Human3.6M: $POSEDEPLOY_H36M, then the project's shared data folder.
H36M_SEARCH = ("POSEDEPLOY_H36M", "../shared/data/h36m")


def resolve_data(data: str | Path) -> str:
    """'auto' -> a Human3.6M folder when one is found (see :data:`H36M_SEARCH`), else 'synthetic'."""
    if str(data) != AUTO:
        return str(data)
    env, fallback = H36M_SEARCH
    for candidate in (os.environ.get(env), fallback):
        if candidate and (Path(candidate) / "data_3d_h36m.npz").is_file():
            return candidate
    return SYNTHETIC


def evenly_spaced(poses: PoseSet, samples: int) -> PoseSet:
    """About ``samples`` samples, evenly spaced over the whole set."""
    if samples < 1:
        raise DataError(f"number of samples must be >= 1, got {samples}")
    index = np.unique(np.linspace(0, len(poses) - 1, min(samples, len(poses))).round().astype(int))
    subset = poses.take(index)
    subset.meta["evenly_spaced"] = len(index)
    return subset


def load_dataset(
    data: str | Path,
    split: str,
    keypoints: str = "gt",
    actions: list[str] | None = None,
    stride: int = 1,
    synthetic_size: int | None = None,
) -> PoseSet:
    """The 'train', 'val' or 'test' split of ``data``: a Human3.6M folder (train S1 S5 S6 S7, val
    S8, test S9 S11; keypoints 'gt' or 'sh') or 'synthetic' (keypoints 'gt' or 'noisy'). Models
    are fitted on 'train' and every choice is made on 'val'; 'test' is for final numbers only."""
    if split not in SPLITS:
        raise DataError(f"split must be one of {', '.join(SPLITS)}, got '{split}'")
    if str(data) == SYNTHETIC:
        if keypoints not in ("gt", "noisy"):
            raise DataError(f"synthetic keypoints are 'gt' or 'noisy', got '{keypoints}'")
        if actions:
            raise DataError("actions can only be chosen for Human3.6M data")
        size = synthetic_size or SYNTHETIC_SIZES[split]
        poses = synthetic_split(split, size, SYNTHETIC_NOISE_PX if keypoints == "noisy" else 0.0)
        poses.source = f"synthetic/{keypoints}"
        return poses.every(stride)
    poses = load_h36m(Path(data), SPLITS[split], keypoints=keypoints, actions=actions, stride=stride)
    poses.meta["split"] = split
    return poses


__all__ = ["AUTO", "PoseSet", "SYNTHETIC", "evenly_spaced", "load_dataset", "resolve_data"]


def keypoints_for(data: str, source: str) -> str:
    """The 2D input to use with a checkpoint trained on ``source`` (e.g. 'h36m/sh'): the same kind of
    keypoints when ``data`` is the same kind of data, else ground truth."""
    kind, _, keypoints = source.partition("/")
    same = (kind == "synthetic") == (data == "synthetic")
    return keypoints if same and keypoints else "gt"
