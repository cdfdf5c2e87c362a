"""Estimate a refit's error on new people, relative to the run its calibration is carried from, from a
learning curve over runs of the same recipe trained on fewer subjects (posedeploy/reference/learning_curve.py).

Every run's error is that of its lifter alone on the held-out split ('val': S8), as `posedeploy eval
--split val --hypotheses 0` measures it; the refit itself is only counted (its 'val' errors are in-sample).

    python scripts/refit_error_ratio.py --data ../shared/data/h36m --keypoints sh \\
        --refit runs/h36m7/mgcn_lw_sh_refit/lifter/best.pt \\
        runs/h36m6/mgcn_lw_s1_s7.pt runs/h36m8/lc_drop_s{1,5,6,7}/lifter/best.pt

The first run is the one whose calibration the refit carries; the ratio printed is what
`posedeploy calibrate --from ITS_CALIBRATED_FILE --error-ratio` takes. With --folds, the calibration
is fitted on those fold runs instead (`posedeploy calibrate --fold-checkpoint ...`): the ratio is the
refit's error over that of a run trained on their mean number of samples, on the same curve.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from posedeploy.data import PoseSet, load_dataset
from posedeploy.reference.evaluation import evaluate
from posedeploy.reference.learning_curve import CurvePoint, fit_learning_curve, training_samples
from posedeploy.training.checkpoint import load_checkpoint


def point(path: Path, val: PoseSet, data: str, keypoints: str) -> CurvePoint:
    ckpt = load_checkpoint(path)
    if ckpt.config.training.get("refit"):
        raise SystemExit(f"{path} is a refit: its 'val' errors are in-sample and cannot be a point of the curve")
    report = evaluate(ckpt, val, hypotheses=0, show_progress=False)
    return CurvePoint(str(path), training_samples(ckpt, data, keypoints), report.means["single"]["mpjpe"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="the run the calibration comes from, then smaller runs")
    parser.add_argument("--refit", type=Path, required=True)
    parser.add_argument("--folds", type=Path, nargs="*", default=[], help="fold runs the calibration is fitted on")
    parser.add_argument("--data", default="../shared/data/h36m")
    parser.add_argument("--keypoints", default="sh")
    parser.add_argument("--stride", type=int, default=1, help="every STRIDE-th 'val' frame")
    args = parser.parse_args()

    val = load_dataset(args.data, "val", args.keypoints, stride=args.stride)
    points = [point(p, val, args.data, args.keypoints) for p in args.runs]
    refit_samples = training_samples(load_checkpoint(args.refit), args.data, args.keypoints)
    anchor = points[0]
    print(f"{'run':<60} {'samples':>9} {'val MPJPE':>10}")
    for p in points:
        print(f"{p.name:<60} {p.samples:>9,} {p.error_mm:>10.2f}")
    print(f"{str(args.refit) + ' (refit)':<60} {refit_samples:>9,} {'-':>10}")
    curve = fit_learning_curve(points)
    if args.folds:
        fold_samples = [training_samples(load_checkpoint(f), args.data, args.keypoints) for f in args.folds]
        for f, n in zip(args.folds, fold_samples, strict=True):
            print(f"{str(f) + ' (fold run)':<60} {n:>9,} {'-':>10}")
        from_samples, against = round(sum(fold_samples) / len(fold_samples)), "the fold runs' mean"
    else:
        from_samples, against = anchor.samples, "first run"
    ratio = curve.error_ratio(from_samples, refit_samples)
    print(f"\nE(N) = c N^-b: b = {curve.exponent:.4f}; refit / {against} = ({refit_samples:,} / {from_samples:,})^-b")
    print(
        f"error ratio {ratio:.4f}"
        + ("" if args.folds else f" (predicted refit error {ratio * anchor.error_mm:.2f} mm on data like 'val')")
    )
    others = points[1:]
    # How much the estimate rests on which smaller run: the curve through the first and each.
    if len(others) > 1 and not args.folds:
        alone = [fit_learning_curve([anchor, o]).error_ratio(anchor.samples, refit_samples) for o in others]
        print("the first run with one smaller run at a time: " + ", ".join(f"{r:.4f}" for r in alone))


if __name__ == "__main__":
    main()
