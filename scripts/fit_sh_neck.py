"""Fit where the Stacked Hourglass layout's missing joint (H36M-17 joint 9, neck/nose) lies, as a
linear function of the 16 detected joints relative to the thorax: joint9 = thorax + sum_j A_j
(p_j - thorax), one 2x2 matrix A_j per joint (so the estimate moves with the person; left/right
symmetric by fitting on mirrored poses too).

Fitted on the SH detections of the training split (S1 S5 S6 S7) against the ground-truth joint 9
projected through each camera; the pixel error is reported on train, val (S8) and test (S9 S11)
beside the thorax->head fraction it replaces. Writes posedeploy/data/sh_neck_weights.json.

    python scripts/fit_sh_neck.py [--data ../shared/data/h36m]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from posedeploy.data.camera import project_to_2d, world_to_camera
from posedeploy.data.h36m import (
    CAMERA_IDS,
    FILE_3D,
    FILE_CAMERAS,
    KEYPOINT_FILES,
    SH16_TO_17,
    SH_NECK_FILE,
    SPLITS,
    load_cameras,
    load_keypoints_2d,
    load_positions_3d,
)
from posedeploy.skeleton import FLIP_PERMUTATION

THORAX16, HEAD16 = 8, 9  # positions of thorax and head among the 16 SH joints
# The 16-joint mirror permutation, from the 17-joint one.
FLIP16 = np.array([SH16_TO_17.index(FLIP_PERMUTATION[j]) for j in SH16_TO_17])


def pairs(root: Path, subjects) -> tuple[np.ndarray, np.ndarray]:
    """SH detections (N, 16, 2) and the projected ground-truth joint 9 (N, 2), pixels."""
    positions, cameras = load_positions_3d(root / FILE_3D), load_cameras(root / FILE_CAMERAS)
    detections = load_keypoints_2d(root / KEYPOINT_FILES["sh"], complete=False)[0]
    inputs, targets = [], []
    for subject in subjects:
        for sequence, views in detections.get(subject, {}).items():
            world = positions[subject][sequence].astype(np.float64)
            for view, cam_id in enumerate(CAMERA_IDS):
                cam = cameras[subject][cam_id]
                truth = project_to_2d(world_to_camera(world, cam), cam)
                inputs.append(views[view][: len(truth)])
                targets.append(truth[:, 9])
    return np.concatenate(inputs).astype(np.float64), np.concatenate(targets)


def fit(inputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Matrices (16, 2, 2), least squares over the poses and their mirror images."""
    x = np.concatenate([inputs, inputs[:, FLIP16] * [-1.0, 1.0]])
    y = np.concatenate([targets, targets * [-1.0, 1.0]])
    relative = (x - x[:, THORAX16 : THORAX16 + 1]).reshape(len(x), -1)  # (N, 32): x0 y0 x1 y1 ...
    w, *_ = np.linalg.lstsq(relative, y - x[:, THORAX16], rcond=None)  # (32, 2)
    matrices = w.reshape(16, 2, 2).transpose(0, 2, 1)  # [j, out, in]
    matrices[THORAX16] = 0.0  # p_thorax - thorax is 0: its column carries no information
    return matrices


def estimate(inputs: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    thorax = inputs[:, THORAX16]
    return thorax + np.einsum("jcd,njd->nc", matrices, inputs - thorax[:, None])


def error_px(inputs: np.ndarray, targets: np.ndarray, matrices: np.ndarray) -> float:
    return float(np.linalg.norm(estimate(inputs, matrices) - targets, axis=-1).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/h36m"))
    args = parser.parse_args()
    data = {split: pairs(args.data, subjects) for split, subjects in SPLITS.items()}
    matrices = fit(*data["train"])
    fraction = np.zeros((16, 2, 2))
    fraction[HEAD16] = 0.444 * np.eye(2)  # the fixed thorax->head point used before
    print("mean distance to the ground-truth joint 9, pixels:")
    for split, (inputs, targets) in data.items():
        print(
            f"  {split:<5} ({len(inputs):>7,} detections)  linear fit {error_px(inputs, targets, matrices):5.2f}   "
            f"thorax->head at 0.444 {error_px(inputs, targets, fraction):5.2f}"
        )
    out = Path(__file__).resolve().parents[1] / "posedeploy" / "data" / SH_NECK_FILE
    doc = {
        "what": "H36M-17 joint 9 (neck/nose) = thorax + sum_j matrices[j] @ (sh16[j] - thorax), pixels; "
        "SH16 order = H36M-17 without joint 9; matrices[j][out][in]",
        "fitted_on": f"Stacked Hourglass detections of {' '.join(SPLITS['train'])} (and their mirror images) "
        f"against the projected ground truth",
        "matrices": np.round(matrices, 6).tolist(),
        "mean_error_px": {split: round(error_px(*d, matrices), 2) for split, d in data.items()},
        "command": "python scripts/fit_sh_neck.py",
    }
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
