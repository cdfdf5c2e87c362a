"""How much the built-in synthetic data looks like Human3.6M: joint angles, bone lengths, camera
geometry and handedness of the synthetic training split against Human3.6M's training subjects
(S1 S5 S6 S7 S8, all cameras). Prints a Markdown table (docs/RESULTS.md).

    python scripts/synthetic_vs_h36m.py [--data ../shared/data/h36m] [--stride 5]
"""

from __future__ import annotations

import argparse

import numpy as np

from posedeploy.data import load_dataset
from posedeploy.data.posture import ANGLES, bone_lengths, joint_angles
from posedeploy.data.synthetic import handedness


def describe(data) -> dict[str, list[float]]:
    poses, intrinsics = data.poses_3d, data.intrinsics
    rows = {f"{name} (deg)": values for name, values in joint_angles(poses).items()}
    bones = bone_lengths(poses)
    rows["femur + tibia + spine + neck + head (m)"] = bones[:, [1, 2, 6, 7, 8, 9]].sum(-1)
    rows["shoulder width (m)"] = np.linalg.norm(poses[:, 11] - poses[:, 14], axis=-1)
    rows["focal length (px)"] = intrinsics[:, 0]
    # The pelvis's distance from the camera, from the torso's length in 3D and in the image.
    torso_px = np.linalg.norm(data.pixels()[:, 8] - data.pixels()[:, 0], axis=-1)
    rows["camera distance (m)"] = intrinsics[:, 0] * np.linalg.norm(poses[:, 8], axis=-1) / np.maximum(torso_px, 1e-6)
    return {k: np.percentile(v, (10, 50, 90)).tolist() for k, v in rows.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/h36m")
    parser.add_argument("--stride", type=int, default=5, help="every STRIDE-th Human3.6M frame")
    args = parser.parse_args()
    h36m = load_dataset(args.data, "train", "gt", stride=args.stride)
    synthetic = load_dataset("synthetic", "train", "gt")
    a, b = describe(h36m), describe(synthetic)
    print(f"Human3.6M train ({len(h36m):,} samples) vs synthetic train ({len(synthetic):,}): p10 / p50 / p90\n")
    print("| quantity | Human3.6M | synthetic |\n|---|---|---|")
    for key in a:
        fmt = (
            (lambda v: " / ".join(f"{x:.2f}" for x in v))
            if "(m)" in key
            else (lambda v: " / ".join(f"{x:.0f}" for x in v))
        )
        print(f"| {key} | {fmt(a[key])} | {fmt(b[key])} |")
    for name, data in (("Human3.6M", h36m), ("synthetic", synthetic)):
        print(f"\n{name}: {100 * np.mean(handedness(data.poses_3d) < 0):.2f} % of frames right-handed (handedness < 0)")
    print("\nangles: " + "; ".join(f"{k}: {v}" for k, v in ANGLES.items()))


if __name__ == "__main__":
    main()
