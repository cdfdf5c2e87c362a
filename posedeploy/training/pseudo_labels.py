"""Pseudo-labels for the weakly supervised AVG model, cached on disk.

The label of a 2D pose is the frozen lifter's 3D error at each joint, ``|lifter(x) - y|`` per
joint (metres); the AVG model learns these errors divided by their mean over the training set.
Computing them runs the lifter over the whole training set, so they are cached under a key made
of the lifter's weights, the exact 2D inputs and 3D targets: a new lifter checkpoint or another
keypoint source gives another key, and a stale cache is never read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from posedeploy.files import atomic_path, cache_root
from posedeploy.progress import progress
from posedeploy.skeleton import flip_pose

logger = logging.getLogger(__name__)

CACHE_VERSION = 1


def default_cache_dir() -> Path:
    return cache_root() / "pseudo_labels"


def cache_key(lifter_fingerprint: str, keypoints: np.ndarray, poses_3d: np.ndarray, mirrored: bool) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps({"v": CACHE_VERSION, "lifter": lifter_fingerprint, "mirrored": mirrored}).encode())
    digest.update(np.ascontiguousarray(keypoints, np.float32).tobytes())
    digest.update(np.ascontiguousarray(poses_3d, np.float32).tobytes())
    return digest.hexdigest()[:32]


@torch.no_grad()
def lifter_errors(lifter: nn.Module, keypoints: np.ndarray, poses_3d: np.ndarray, batch: int = 4096) -> np.ndarray:
    """Per-joint 3D error (N, 17) of the lifter on each input, no test-time augmentation."""
    device = next(lifter.parameters()).device
    out = np.empty(keypoints.shape[:2], np.float32)
    with progress((len(keypoints) + batch - 1) // batch, "pseudo-labels") as advance:
        for i in range(0, len(keypoints), batch):
            pred = lifter(torch.from_numpy(keypoints[i : i + batch]).to(device)).cpu().numpy()
            out[i : i + batch] = np.linalg.norm(pred - poses_3d[i : i + batch], axis=-1)
            advance(1)
    return out


def load_or_compute(
    lifter: nn.Module,
    lifter_fingerprint: str,
    keypoints: np.ndarray,
    poses_3d: np.ndarray,
    mirrored: bool,
    cache_dir: Path | None,
) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, errors): the 2D inputs (with their mirror images appended when ``mirrored``, as
    the AVG model also sees mirrored views at test time) and the lifter's per-joint errors."""
    if mirrored:
        keypoints = np.concatenate([keypoints, flip_pose(keypoints)])
        poses_3d = np.concatenate([poses_3d, flip_pose(poses_3d)])
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"{cache_key(lifter_fingerprint, keypoints, poses_3d, mirrored)}.npz"
        if path.is_file():
            try:
                with np.load(path) as cached:
                    errors = cached["errors"]
                if errors.shape == keypoints.shape[:2]:
                    logger.info(f"pseudo-labels: cached ({path})")
                    return keypoints, errors
            except (OSError, KeyError, ValueError, zipfile.BadZipFile):
                pass  # unreadable cache: recompute and overwrite it
    lifter.eval()
    errors = lifter_errors(lifter, keypoints, poses_3d)
    if path is not None:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, errors=errors)
    return keypoints, errors
