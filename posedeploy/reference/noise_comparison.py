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
from posedeploy.reference.reports import EvalComparison, EvalReport, PairedDifference, run_label

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


def compare(reports: list[EvalReport], data: PoseSet) -> list[PairedDifference]:
    """Paired best-of-S differences: every two noise rules at the same alpha, and every two alphas
    of the same noise rule."""
    pairs = []
    for a, b in itertools.combinations(reports, 2):
        same_alpha = a.settings.alpha == b.settings.alpha
        same_noise = a.settings.noise == b.settings.noise
        if same_alpha != same_noise:
            d = paired_difference(a.per_sample["best"], b.per_sample["best"], data)
            metric = f"best-of-{a.settings.hypotheses} MPJPE"
            pairs.append(PairedDifference(run_label(a), run_label(b), metric, d["mean_mm"], d["se_mm"], d["sequences"]))
    return pairs


def comparison_report(reports: list[EvalReport], data: PoseSet) -> EvalComparison:
    return EvalComparison(runs=reports, paired=compare(reports, data))
