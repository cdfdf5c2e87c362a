"""Print the uncertainty of several `posedeploy eval --json` reports as one Markdown table, and (with
--recommend) the fewest hypotheses whose ECE and AUSE are within 10 % of the largest S's.

    python scripts/uncertainty_table.py runs/h36m6/study/mgcn_s/*.json --recommend
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from posedeploy.reference.reports import EvalComparison, EvalReport

WITHIN = 0.10


def reports(paths: list[Path]) -> list[EvalReport]:
    out: list[EvalReport] = []
    for path in paths:
        doc = json.loads(path.read_text())
        runs = EvalComparison.from_json(doc).runs if "runs" in doc else [EvalReport.from_json(doc)]
        for r in runs:  # reports written before they recorded their draws: scripts/hypotheses_needed.sh's file names
            if r.settings.draws is None and path.stem.endswith("_antithetic"):
                r.settings.draws = "antithetic"
        out += runs
    return out


def draws(r: EvalReport) -> str:
    return r.settings.draws or "random"


def row(r: EvalReport) -> str:
    s, u = r.settings, r.uncertainty
    assert u is not None
    cov, sp = u.coverage, u.sparsification
    cells = [s.noise, f"{s.alpha:g}", s.hypotheses, draws(r), f"{cov['0.5']:.3f}", f"{cov['0.9']:.3f}"]
    cells += [f"{u.ece:.3f}", f"{u.ece_gaussian:.3f}", f"{sp.ause:.3f}", f"{sp.aurg:.3f}", f"{u.energy_score_mm:.2f}"]
    cells += [f"{u.sharpness_mm:.1f}", f"{r.means['best']['mpjpe']:.2f}", f"{r.means['mean']['mpjpe']:.2f}"]
    return "| " + " | ".join(map(str, cells)) + " |"


def recommend(runs: list[EvalReport]) -> None:
    """The fewest S, for each kind of draws, within WITHIN of the largest S's best ECE and AUSE."""
    largest = max(r.settings.hypotheses for r in runs)
    top = [r.uncertainty for r in runs if r.settings.hypotheses == largest and r.uncertainty]
    ece, ause = min(u.ece for u in top), min(u.sparsification.ause for u in top)
    print(f"\nS={largest}: ECE {ece:.4f}, AUSE {ause:.4f} (the better of its runs)")
    for kind in sorted({draws(r) for r in runs}):
        fit = sorted(
            r.settings.hypotheses
            for r in runs
            if r.uncertainty
            and draws(r) == kind
            and r.uncertainty.ece <= ece * (1 + WITHIN)
            and r.uncertainty.sparsification.ause <= ause * (1 + WITHIN)
        )
        print(f"{kind}: the fewest S within {WITHIN:.0%} of both: {fit[0] if fit else '-'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("reports", nargs="+", type=Path)
    parser.add_argument("--recommend", action="store_true")
    args = parser.parse_args()
    runs = [r for r in reports(args.reports) if r.uncertainty is not None]
    runs.sort(key=lambda r: (r.settings.noise, r.settings.alpha, draws(r), r.settings.hypotheses))
    print(
        "| noise | alpha | S | draws | cov 0.5 | cov 0.9 | ECE | ECE Gaussian raw | AUSE | AURG | energy mm | "
        "spread mm | best-of-S mm | mean pose mm |"
    )
    print("|" + "---|" * 14)
    for r in runs:
        print(row(r))
    if args.recommend:
        recommend(runs)


if __name__ == "__main__":
    main()
