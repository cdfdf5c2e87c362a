"""Print the summary table of docs/RESULTS.md from the reports that scripts/eval_h36m.sh wrote.

    python scripts/results_summary.py runs/h36m/mgcn_lw_gt/eval runs/h36m/mgcn_lw_sh/eval

Each argument is an evaluation prefix (PREFIX_single.json, PREFIX_s200_adaptive.json,
PREFIX_s200_fixed.json). Numbers are copied from the reports, never recomputed, so the table
cannot drift from what `posedeploy eval` printed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _load(prefix: str, name: str) -> dict:
    return json.loads(Path(f"{prefix}_{name}.json").read_text())


def _pair(scores: dict) -> str:
    return f"{scores['mpjpe']:.1f} / {scores['p_mpjpe']:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prefixes", nargs="+")
    args = parser.parse_args()
    print(
        "| lifter | 2D input | lifter alone (all frames) | frames for S=200 | lifter alone (same frames) "
        "| best-of-200 adaptive | best-of-200 fixed | mean | median | JPMA | spread mm | spread-error r |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for prefix in args.prefixes:
        single, adaptive, fixed = (_load(prefix, n) for n in ("single", "s200_adaptive", "s200_fixed"))
        s, a = adaptive["settings"], adaptive["means"]
        cells = [
            s["lifter"],
            s["trained_on"],
            _pair(single["means"]["single"]),
            f"{s['samples']:,} (every {s['stride']}th)",
            _pair(a["single"]),
            _pair(a["best"]),
            _pair(fixed["means"]["best"]),
            f"{a['mean']['mpjpe']:.1f}",
            f"{a['median']['mpjpe']:.1f}",
            f"{a['jpma']['mpjpe']:.1f}",
            f"{adaptive['extra']['mean_spread_mm']:.1f}",
            f"{adaptive['extra']['spread_error_correlation']:.3f}",
        ]
        print("| " + " | ".join(cells) + " |")
    print("\nMPJPE / P-MPJPE in mm, means over the 15 actions of S9 and S11; aggregated poses: MPJPE.")


if __name__ == "__main__":
    main()
