"""The reports of ``posedeploy eval`` (``--json``): one run, or several noise rules compared with
paired differences; typed records, and the tables printed for people."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from posedeploy.records import NOT_WRITTEN, OPTIONAL, Record
from posedeploy.uncertainty import Sparsification

# 2: the uncertainty section (calibration, sparsification, energy score); version 1 files read with it None
FORMAT, COMPARISON_FORMAT, FORMAT_VERSION = "posedeploy.eval", "posedeploy.eval-comparison", 2
# (group, metric) columns in the order they are printed.
SINGLE = ("mpjpe", "p_mpjpe", "pck", "auc")
BEST = ("mpjpe", "p_mpjpe", "pck", "auc")
AGGREGATED = ("mpjpe", "p_mpjpe")
# One pose from S hypotheses: the mean (the pipeline's own 'pose'), the joint-wise median, and the
# reprojection-based joint-wise selection (JPMA; needs camera intrinsics).
AGGREGATORS = ("mean", "median", "jpma")


@dataclass
class EvalRunSettings:
    lifter: str
    avg: str | None  # None when the lifter was evaluated alone
    trained_on: str
    data: str
    samples: int
    stride: int
    hypotheses: int
    noise: str | None
    alpha: float
    seed: int
    seconds: float
    checkpoint: str | None = field(default=None, metadata=OPTIONAL)
    split: str | None = field(default=None, metadata=OPTIONAL)
    draws: str | None = field(default=None, metadata=OPTIONAL)  # random or antithetic noise (None: random)


@dataclass(frozen=True)
class SigmaQuality:
    """How well the AVG's sigma tracks the lifter's true per-joint error (see evaluation.sigma_quality)."""

    error_r_overall: float | None
    error_r_within_joint: float | None
    clamped_fraction: float


@dataclass(frozen=True)
class SamplingStats:
    """What only a run with hypotheses has: spread, sigma and the best-of-S curve (by S, as text)."""

    mean_spread_mm: float | None = field(default=None, metadata=OPTIONAL)
    spread_error_correlation: float | None = field(default=None, metadata=OPTIONAL)
    mean_sigma: float | None = field(default=None, metadata=OPTIONAL)  # normalised screen units
    best_of_s_mpjpe: dict[str, float | None] | None = field(default=None, metadata=OPTIONAL)
    sigma: SigmaQuality | None = field(default=None, metadata=OPTIONAL)


@dataclass(frozen=True)
class UncertaintyStats:
    """Whether the spread means what it says (posedeploy/uncertainty.py), over every non-root joint."""

    calibration: str  # where the calibration came from: 'checkpoint', 'val split', or 'none'
    coverage: dict[str, float]  # p -> fraction of joints within radius(p)
    ece: float  # mean |coverage - p|
    coverage_gaussian: dict[str, float]  # the same with Gaussian radii of the raw spread (no calibration)
    ece_gaussian: float
    sparsification: Sparsification  # ordered by the (calibrated) spread; mm
    energy_score_mm: float  # of the calibrated distribution (the raw one without a calibration)
    energy_score_raw_mm: float  # of the raw hypotheses
    sharpness_mm: float  # mean (calibrated) spread
    raw_spread_mm: float  # mean raw spread
    spread_error_r: float | None  # Pearson r of spread and error over all joints (None: a constant)
    spread_error_r_within_joint: float | None  # ... within each joint, averaged


# per_action: group -> metric -> action -> value; means: group -> metric -> mean over actions (None:
# undefined, written as null).
Table = dict[str, dict[str, dict[str, float | None]]]


@dataclass(kw_only=True)
class EvalReport(Record):
    format: str | None = field(default=FORMAT, metadata=OPTIONAL)
    format_version: int | None = field(default=FORMAT_VERSION, metadata=OPTIONAL)
    settings: EvalRunSettings
    actions: list[str]
    counts: dict[str, int]
    per_action: Table
    means: dict[str, dict[str, float | None]]
    extra: SamplingStats = field(default_factory=SamplingStats)
    uncertainty: UncertaintyStats | None = field(default=None, metadata=OPTIONAL)
    # Per-sample MPJPE (mm) of the lifter alone ('single') and of best-of-S ('best'), and with
    # hypotheses the energy score ('energy', mm), the pose's joint errors and spreads ('joint_error',
    # 'spread', (N, 17) mm) and the joints within each radius ('hits', (N, 9)), for paired
    # comparisons between runs on the same samples.
    per_sample: dict[str, np.ndarray] = field(default_factory=dict, repr=False, metadata=NOT_WRITTEN)


@dataclass(frozen=True)
class PairedDifference:
    a: str
    b: str
    metric: str
    mean_mm: float  # the statistic of a minus that of b, in the metric's unit (mm unless 'unit' says otherwise)
    se_mm: float  # bootstrap standard error over sequences
    sequences: int
    unit: str | None = field(default=None, metadata=OPTIONAL)  # None: mm


@dataclass(kw_only=True)
class EvalComparison(Record):
    format: str | None = field(default=COMPARISON_FORMAT, metadata=OPTIONAL)
    format_version: int | None = field(default=FORMAT_VERSION, metadata=OPTIONAL)
    runs: list[EvalReport]
    paired: list[PairedDifference]


def run_label(report: EvalReport) -> str:
    return f"{report.settings.noise} alpha={report.settings.alpha:g}"


def format_report(report: EvalReport) -> str:
    """A per-action table (mm; PCK and AUC in %) with the mean over actions as the last row."""
    s = report.settings
    groups: list[tuple[str, tuple[str, ...], str]] = [("single", SINGLE, "lifter alone")]
    if "best" in report.means:
        groups += [("best", BEST, f"best-of-{s.hypotheses}")]
        groups += [
            (name, AGGREGATED, name if name != "jpma" else "JPMA") for name in AGGREGATORS if name in report.means
        ]
    short = {"mpjpe": "MPJPE", "p_mpjpe": "P-MPJPE", "pck": "PCK", "auc": "AUC"}
    width = {"mpjpe": 7, "p_mpjpe": 8, "pck": 7, "auc": 6}
    title = (
        f"{s.lifter} (trained on {s.trained_on}) on {s.data}: {s.samples:,} samples"
        + (f" (every {s.stride}th frame)" if s.stride != 1 else "")
        + (f", S={s.hypotheses}, {s.noise} noise, alpha {s.alpha}" if s.hypotheses else "")
    )
    spans = ["".join(f"{short[m]:>{width[m]}}" for m in metrics_) for _, metrics_, _ in groups]
    lines = [
        title,
        f"{'':<14}{'':>7}"
        + "".join(f"  {label:^{len(span)}}" for (_, _, label), span in zip(groups, spans, strict=True)),
        f"{'action':<14}{'n':>7}" + "".join(f"  {span}" for span in spans),
    ]
    for action in report.actions + ["mean"]:
        n = sum(report.counts.values()) if action == "mean" else report.counts[action]
        cells = []
        for group, metrics_, _ in groups:
            table = (
                report.means[group] if action == "mean" else {m: report.per_action[group][m][action] for m in metrics_}
            )
            cells.append("".join(_cell(table[m], width[m]) for m in metrics_))
        lines.append(f"{action:<14}{n:>7}" + "".join(f"  {c}" for c in cells))
    lines += _sampling_lines(report.extra)
    if report.uncertainty is not None:
        lines += uncertainty_table([report])
    lines.append("MPJPE and P-MPJPE in mm; PCK (150 mm) and AUC (0-150 mm) in %; mean: over actions.")
    return "\n".join(lines)


def _cell(value: float | None, width: int) -> str:
    return f"{value:>{width}.2f}" if value is not None else f"{'-':>{width}}"


def _sampling_lines(e: SamplingStats) -> list[str]:
    if e.mean_spread_mm is None or e.best_of_s_mpjpe is None:
        return []
    correlation = f"{e.spread_error_correlation:.3f}" if e.spread_error_correlation is not None else "-"
    lines = [
        f"mean spread {e.mean_spread_mm:.1f} mm; spread-error correlation {correlation}",
        "best-of-S MPJPE: " + ", ".join(f"S={k} {_number(v)}" for k, v in e.best_of_s_mpjpe.items()),
    ]
    q = e.sigma
    if q is not None and q.error_r_overall is not None:
        lines.append(
            f"sigma vs the lifter's true joint error: r {q.error_r_overall:.3f} overall, "
            f"{_number(q.error_r_within_joint, '.3f')} within a joint; {q.clamped_fraction:.0%} clamped to alpha"
        )
    return lines


def _number(value: float | None, spec: str = ".2f") -> str:
    return format(value, spec) if value is not None else "-"


def format_comparison(comparison: EvalComparison) -> str:
    reports, first = comparison.runs, comparison.runs[0].settings
    curve = list(reports[0].extra.best_of_s_mpjpe or {})
    lines = [
        f"{first.lifter} (trained on {first.trained_on}) on {first.data}: {first.samples:,} samples, "
        f"S={first.hypotheses}, the same noise draws in every run (seed {first.seed})",
        f"{'noise':<10}{'alpha':>8}{'lifter':>9}"
        + "".join(f"{'best-' + s:>11}" for s in curve)
        + f"{'sigma px':>10}{'r':>7}{'r joint':>9}{'clamped':>9}",
    ]
    for r in reports:
        e, s, q = r.extra, r.settings, r.extra.sigma
        best = e.best_of_s_mpjpe or {}
        sigma_px = e.mean_sigma * 500 if e.mean_sigma is not None else None  # of a 1000-px-wide image
        lines.append(
            f"{s.noise:<10}{s.alpha:>8g}{_number(r.means['single']['mpjpe']):>9}"
            + "".join(f"{_number(best.get(k)):>11}" for k in curve)
            + f"{_number(sigma_px):>10}{_number(q.error_r_overall if q else None, '.3f'):>7}"
            + f"{_number(q.error_r_within_joint if q else None, '.3f'):>9}"
            + f"{_number(q.clamped_fraction if q else None, '.0%'):>9}"
        )
    if any(r.uncertainty is not None for r in reports):
        lines += uncertainty_table(reports)
    if comparison.paired:
        lines.append(
            "paired differences (a - b): best-of-S MPJPE and energy score as means over actions; ECE and AUSE "
            "over all joints; bootstrap s.e. over sequences:"
        )
        for p in comparison.paired:
            unit = "mm" if p.unit is None else p.unit
            value = f"{p.mean_mm:+7.2f} {unit:<2}" if unit == "mm" else f"{p.mean_mm:+7.3f}   "
            spec = ".2f" if unit == "mm" else ".3f"
            lines.append(f"  {p.metric:<16} {p.a:<24} - {p.b:<24} {value} (s.e. {p.se_mm:{spec}})")
    lines.append(
        "MPJPE in mm; sigma px: mean sigma in pixels of a 1000-px-wide image; r: sigma vs the lifter's "
        "true joint error (all joints; within a joint); clamped: joint-views at exactly alpha."
    )
    return "\n".join(lines)


def uncertainty_table(reports: list[EvalReport]) -> list[str]:
    """Calibration, sparsification, energy score and sharpness, one row per run."""
    levels = ("0.1", "0.5", "0.9")
    lines = [
        "uncertainty (every non-root joint): coverage of radius(p), ECE over p = 0.1 ... 0.9; Gaussian: the "
        "raw spread's chi(3) radii",
        f"{'run':<26}{'calibration':<13}"
        + "".join(f"{'cov ' + p:>9}" for p in levels)
        + f"{'ECE':>7}{'ECE Gauss':>10}{'AUSE':>7}{'AURG':>7}{'energy':>8}{'raw ES':>8}{'spread':>8}{'raw':>7}{'r':>7}",
    ]
    for r in reports:
        u = r.uncertainty
        if u is None:
            continue
        lines.append(
            f"{run_label(r) if r.settings.noise else '-':<26}{u.calibration:<13}"
            + "".join(f"{u.coverage[p]:>9.3f}" for p in levels)
            + f"{u.ece:>7.3f}{u.ece_gaussian:>10.3f}{u.sparsification.ause:>7.3f}{u.sparsification.aurg:>7.3f}"
            + f"{u.energy_score_mm:>8.2f}{u.energy_score_raw_mm:>8.2f}{u.sharpness_mm:>8.1f}{u.raw_spread_mm:>7.1f}"
            + f"{_number(u.spread_error_r, '.3f'):>7}"
        )
    lines.append(
        "energy: energy score of the calibrated hypotheses (mm, lower is better; raw ES: of the raw ones); "
        "spread: mean calibrated spread (sharpness), raw: mean raw spread, mm; r: spread vs error"
    )
    return lines
