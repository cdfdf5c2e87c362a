"""Best-of-S with the noise placed by an oracle, against the AVG's placement and uniform noise
(posedeploy/reference/noise_oracle.py says what each rule is). On the validation split only: it
decides what variance model to build, so it must not look at the test subjects.

    python scripts/noise_oracle.py --checkpoint mgcn_lw --keypoints sh --stride 40 \\
        [--alpha 0.005] [--rules uniform,perfect-avg]
"""

from __future__ import annotations

import argparse

from posedeploy import metrics
from posedeploy.assets import resolve_checkpoint
from posedeploy.data import load_dataset
from posedeploy.files import write_json
from posedeploy.reference.noise_comparison import paired_difference
from posedeploy.reference.noise_oracle import RULES, oracle_best_of
from posedeploy.training.checkpoint import load_checkpoint

PAIRS = [
    ("uniform", "adaptive"),
    ("oracle-3d", "uniform"),
    ("oracle-3d", "adaptive"),
    ("oracle-2d", "uniform"),
    ("oracle-amount", "uniform"),
    ("perfect-avg", "uniform"),
    ("perfect-avg", "oracle-amount"),
    ("perfect-clamped", "uniform"),
    ("perfect-clamped", "perfect-avg"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="mgcn_lw")
    parser.add_argument("--data", default="../shared/data/h36m")
    parser.add_argument("--keypoints", default="sh", help="the 2D input (its error is oracle-2d's weight)")
    parser.add_argument("--stride", type=int, default=40)
    parser.add_argument("--hypotheses", type=int, default=200)
    parser.add_argument("--alpha", type=float, default=None, help="default: the checkpoint's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rules", default=",".join(RULES), help="comma-separated, of: " + ", ".join(RULES))
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    ckpt = load_checkpoint(resolve_checkpoint(args.checkpoint))
    data = load_dataset(args.data, "val", keypoints=args.keypoints, stride=args.stride)
    truth_2d = load_dataset(args.data, "val", keypoints="gt", stride=args.stride)
    rules = tuple(r.strip() for r in args.rules.split(",") if r.strip())
    result = oracle_best_of(
        ckpt, data, truth_2d, hypotheses=args.hypotheses, alpha=args.alpha, seed=args.seed, rules=rules
    )

    mean = {rule: metrics.mean_by_action(result["best"][rule], data.actions)[1] for rule in rules}
    single = metrics.mean_by_action(result["single"], data.actions)[1]
    print(
        f"{ckpt.config.lifter} + {ckpt.config.avg} on {data.source} val, every {args.stride}th frame "
        f"({len(data):,} samples), S={args.hypotheses}, alpha {result['alpha']:g}; lifter alone {single:.2f} mm"
    )
    for rule in rules:
        print(
            f"  {rule:<15} best-of-{args.hypotheses} {mean[rule]:7.2f} mm   "
            f"mean sigma {result['mean_sigma'][rule] * 500:.2f} px"
        )
    print("paired differences (a - b), mean over actions, bootstrap s.e. over sequences:")
    paired = []
    for a, b in [(a, b) for a, b in PAIRS if a in rules and b in rules]:
        d = paired_difference(result["best"][a], result["best"][b], data)
        paired.append({"a": a, "b": b, **d})
        print(f"  {a:<15} - {b:<15} {d['mean_mm']:+7.2f} mm  (s.e. {d['se_mm']:.2f})")
    if args.json:
        report = {
            "settings": {**vars(args), "alpha": result["alpha"], "samples": len(data)},
            "lifter_mm": single,
            "best_of_s_mm": mean,
            "paired": paired,
        }
        write_json(args.json, report)


if __name__ == "__main__":
    main()
