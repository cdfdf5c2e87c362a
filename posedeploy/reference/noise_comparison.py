"""Noise baselines side by side: several ``posedeploy eval`` runs (noise rule x alpha) on the same
samples with the same noise draws, and their paired differences with bootstrap standard errors.

A paired difference is the headline statistic of (run a - run b) per sample: per-sample best-of-S
MPJPE differences, averaged per action, then over actions. Its standard error comes from a
bootstrap over sequences (clusters of consecutive, strongly correlated frames: one subject, action
and camera in Human3.6M, one generated sequence in the built-in data), resampled within each action.
"""

from __future__ import annotations

import itertools

import numpy as np

from posedeploy.data import PoseSet
from posedeploy.reference.evaluation import EvalReport

BOOTSTRAP_REPLICATES = 2000


def clusters(data: PoseSet) -> np.ndarray:
    """A sequence label per sample: subject, action and camera."""
    return np.char.add(
        np.char.add(data.subjects.astype(str), "|" + data.actions.astype(str)), "|" + data.cameras.astype(str)
    )


def paired_difference(
    a: np.ndarray, b: np.ndarray, data: PoseSet, replicates: int = BOOTSTRAP_REPLICATES, seed: int = 0
) -> dict:
    """Mean over actions of the per-sample (a - b), and its bootstrap standard error over sequences."""
    diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    labels = clusters(data)
    rng = np.random.default_rng(seed)
    action_means, replicate_means = [], []
    for action in data.action_names():
        rows = data.actions == action
        keys, inverse = np.unique(labels[rows], return_inverse=True)
        sums = np.bincount(inverse, weights=diff[rows], minlength=len(keys))
        counts = np.bincount(inverse, minlength=len(keys)).astype(np.float64)
        action_means.append(sums.sum() / counts.sum())
        draw = rng.integers(0, len(keys), (replicates, len(keys)))
        replicate_means.append(sums[draw].sum(1) / counts[draw].sum(1))
    boot = np.mean(replicate_means, axis=0)
    return {
        "mean_mm": float(np.mean(action_means)),
        "se_mm": float(boot.std(ddof=1)),
        "sequences": int(len(np.unique(labels))),
    }


def run_label(report: EvalReport) -> str:
    return f"{report.settings['noise']} alpha={report.settings['alpha']:g}"


def compare(reports: list[EvalReport], data: PoseSet) -> list[dict]:
    """Paired best-of-S differences: every two noise rules at the same alpha, and every two alphas
    of the same noise rule."""
    pairs = []
    for a, b in itertools.combinations(reports, 2):
        same_alpha = a.settings["alpha"] == b.settings["alpha"]
        same_noise = a.settings["noise"] == b.settings["noise"]
        if same_alpha != same_noise:
            d = paired_difference(a.per_sample["best"], b.per_sample["best"], data)
            pairs.append(
                {"a": run_label(a), "b": run_label(b), "metric": f"best-of-{a.settings['hypotheses']} MPJPE", **d}
            )
    return pairs


def comparison_report(reports: list[EvalReport], data: PoseSet) -> dict:
    return {"runs": [r.as_dict() for r in reports], "paired": compare(reports, data)}


def format_comparison(reports: list[EvalReport], paired: list[dict]) -> str:
    first = reports[0].settings
    curve = list(reports[0].extra["best_of_s_mpjpe"])
    lines = [
        f"{first['lifter']} (trained on {first['trained_on']}) on {first['data']}: {first['samples']:,} samples, "
        f"S={first['hypotheses']}, the same noise draws in every run (seed {first['seed']})",
        f"{'noise':<10}{'alpha':>8}{'lifter':>9}"
        + "".join(f"{'best-' + s:>11}" for s in curve)
        + f"{'sigma px':>10}{'r':>7}{'r joint':>9}{'clamped':>9}",
    ]
    for r in reports:
        e, s = r.extra, r.settings
        q = e.get("sigma") or {}
        fmt = lambda v, spec: format(v, spec) if v is not None else "-"  # noqa: E731
        lines.append(
            f"{s['noise']:<10}{s['alpha']:>8g}{r.means['single']['mpjpe']:>9.2f}"
            + "".join(f"{e['best_of_s_mpjpe'][k]:>11.2f}" for k in curve)
            + f"{e['mean_sigma'] * 500:>10.2f}{fmt(q.get('error_r_overall'), '.3f'):>7}"
            + f"{fmt(q.get('error_r_within_joint'), '.3f'):>9}{fmt(q.get('clamped_fraction'), '.0%'):>9}"
        )
    if paired:
        lines.append("paired differences of best-of-S MPJPE (a - b), mean over actions, bootstrap s.e. over sequences:")
        for p in paired:
            lines.append(f"  {p['a']:<24} - {p['b']:<24} {p['mean_mm']:+7.2f} mm  (s.e. {p['se_mm']:.2f})")
    lines.append(
        "MPJPE in mm; sigma px: mean sigma in pixels of a 1000-px-wide image; r: sigma vs the lifter's "
        "true joint error (all joints; within a joint); clamped: joint-views at exactly alpha."
    )
    return "\n".join(lines)
