"""What the COCO -> H36M joint mapping costs: Human3.6M 2D keypoints lifted as they are, and again with
the four joints COCO lacks (pelvis, spine, thorax, head) built from the others as
posedeploy.keypoint_io.coco_to_h36m builds them from a COCO detector's output.

    python scripts/coco_mapping_cost.py --artifacts A --data ../shared/data/h36m --keypoints sh --split test --stride 4

It measures the construction rule only: a COCO detector also places its hips and shoulders
differently from Human3.6M's joint centres, which needs COCO detections of Human3.6M to measure.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from posedeploy.data import load_dataset
from posedeploy.keypoint_io import COCO_TO_H36M, coco_to_h36m
from posedeploy.metrics import mean_by_action, mpjpe, p_mpjpe
from posedeploy.runtime import MultiHypothesisLifter

BUILT = (0, 7, 8, 10)  # pelvis, spine, thorax, head


def as_coco_built(h36m: np.ndarray) -> np.ndarray:
    """(N, 17, 2) H36M joints -> the H36M joints coco_to_h36m builds from the COCO joints among them."""
    coco = np.zeros_like(h36m)
    for h, c in COCO_TO_H36M.items():
        coco[:, c] = h36m[:, h]
    return coco_to_h36m(coco).astype(h36m.dtype)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--artifacts", type=Path, required=True)
    ap.add_argument("--data", default="../shared/data/h36m")
    ap.add_argument("--keypoints", default="sh")
    ap.add_argument("--split", default="test")
    ap.add_argument("--stride", type=int, default=4)
    args = ap.parse_args()
    poses = load_dataset(args.data, args.split, args.keypoints, stride=args.stride)
    built = as_coco_built(poses.keypoints)
    moved = np.linalg.norm(built - poses.keypoints, axis=-1)[:, BUILT] * 500  # normalised -> px of a 1000-px image
    print(f"{poses.source} {args.split}, every {args.stride}th frame: {len(poses):,} poses")
    shifts = ", ".join(f"joint {j}: {m:.1f}" for j, m in zip(BUILT, moved.mean(0), strict=True))
    print(f"the built joints move by (mean, px of a 1000-px-wide image) {shifts}")
    truth = poses.poses_3d
    variants = [("as given", poses.keypoints), ("all four built", built)]
    for j in BUILT:  # which of them costs what: one joint built, the others as given
        one = poses.keypoints.copy()
        one[:, j] = built[:, j]
        variants.append((f"joint {j} built", one))
    with MultiHypothesisLifter(args.artifacts, seed=0) as lifter:
        for label, kp in variants:
            pose = np.concatenate([lifter(kp[i : i + 4096], units="m", seed=i).pose for i in range(0, len(kp), 4096)])
            _, err = mean_by_action(mpjpe(pose, truth) * 1000, poses.actions)
            _, aligned = mean_by_action(p_mpjpe(pose, truth) * 1000, poses.actions)
            print(f"{label:18s}: MPJPE {err:6.2f} mm, P-MPJPE {aligned:6.2f} mm")


if __name__ == "__main__":
    main()
