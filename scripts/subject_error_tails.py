"""How heavy each training subject's error tail is, measured on a lifter that never saw that subject:
the quantiles of every non-root joint error over that joint's RMS error, per held-out subject (SH 2D).

A calibration fitted on one validation subject takes its radius factors (error / spread quantiles)
from that subject's errors; this says whether that subject's tail is typical of the others'.

    python scripts/subject_error_tails.py S8=runs/h36m6/mgcn_lw_s1_s7.pt \\
        S1=runs/h36m8/lc_drop_s1/lifter/best.pt S5=runs/h36m8/lc_drop_s5/lifter/best.pt \\
        S6=runs/h36m8/lc_drop_s6/lifter/best.pt S7=runs/h36m8/lc_drop_s7/lifter/best.pt
"""

from __future__ import annotations

import argparse

import numpy as np

from posedeploy import metrics
from posedeploy.data.h36m import load_h36m
from posedeploy.reference.sampler import PipelineModule, run_single
from posedeploy.training.checkpoint import load_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pairs", nargs="+", help="SUBJECT=CHECKPOINT: a subject and a lifter trained without it")
    parser.add_argument("--data", default="../shared/data/h36m")
    parser.add_argument("--stride", type=int, default=4)
    args = parser.parse_args()
    print("err: the mean non-root joint error, mm; q: quantiles of each error over its joint's RMS error")
    print(f"{'subject':<8} {'err':>7} {'q10':>6} {'q50':>6} {'q90':>6} {'q90/q50':>8}")
    for pair in args.pairs:
        subject, path = pair.split("=", 1)
        ckpt = load_checkpoint(path)
        data = load_h36m(args.data, [subject], "sh", stride=args.stride)
        pose = run_single(PipelineModule(ckpt.build_lifter("cpu"), None, alpha=1.0), data.keypoints)
        errors = metrics.joint_errors(pose.astype(np.float64), data.poses_3d)[:, 1:] * 1000
        q10, q50, q90 = np.quantile(errors / np.sqrt((errors**2).mean(0)), [0.1, 0.5, 0.9])
        print(f"{subject:<8} {errors.mean():>7.1f} {q10:>6.3f} {q50:>6.3f} {q90:>6.3f} {q90 / q50:>8.3f}")


if __name__ == "__main__":
    main()
