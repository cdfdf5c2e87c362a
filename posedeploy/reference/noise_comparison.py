"""Noise baselines side by side: several ``posedeploy eval`` runs (noise rule x alpha) on the same
samples with the same noise draws, and their paired differences with bootstrap standard errors.

A paired difference is the headline statistic of (run a - run b) per sample: per-sample best-of-S
MPJPE differences, averaged per action, then over actions. Its standard error comes from a
bootstrap over sequences (clusters of consecutive, strongly correlated frames: one subject, action
and camera in Human3.6M, one generated sequence in the built-in data), resampled within each action.
"""

from __future__ import annotations

import itertools
from typing import TypedDict

import numpy as np

from posedeploy import uncertainty
from posedeploy.data import PoseSet
from posedeploy.reference.reports import EvalComparison, EvalReport, PairedDifference, run_label

BOOTSTRAP_REPLICATES = 2000
SLOW_REPLICATES = 200  # for statistics that re-sort every joint of the split per replicate (AUSE)


def clusters(data: PoseSet) -> np.ndarray:
    """A sequence label per sample: subject, action and camera."""
    return np.char.add(
        np.char.add(data.subjects.astype(str), "|" + data.actions.astype(str)), "|" + data.cameras.astype(str)
    )


def recordings(data: PoseSet) -> np.ndarray:
    """A recording label per sample: subject and action, every camera together. Cross-fitting splits
    the recordings, not the sequences: split by sequence, alternate folds would hold alternate cameras,
    whose errors differ, and the folds' errors of calibration would cancel when pooled."""
    return np.char.add(data.subjects.astype(str), "|" + data.actions.astype(str))


class _Difference(TypedDict):
    mean_mm: float
    se_mm: float
    sequences: int


def paired_difference(
    a: np.ndarray, b: np.ndarray, data: PoseSet, replicates: int = BOOTSTRAP_REPLICATES, seed: int = 0
) -> _Difference:
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


def _cluster_rows(data: PoseSet) -> list[np.ndarray]:
    """The rows of each sequence."""
    _, inverse = np.unique(clusters(data), return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    return np.split(order, np.cumsum(np.bincount(inverse))[:-1])


def paired_ece(a: np.ndarray, b: np.ndarray, data: PoseSet, replicates: int = BOOTSTRAP_REPLICATES) -> _Difference:
    """ECE(a) - ECE(b) from the per-sample joints within each radius (N, len(LEVELS)), with a
    bootstrap over sequences (per-sequence sums suffice, so every replicate is cheap)."""
    rows = _cluster_rows(data)
    per_joint = uncertainty.NUM_SCORED_JOINTS
    levels = np.asarray(uncertainty.LEVELS)
    ha = np.stack([a[r].sum(0) for r in rows]).astype(np.float64)
    hb = np.stack([b[r].sum(0) for r in rows]).astype(np.float64)
    n = np.array([len(r) * per_joint for r in rows], np.float64)

    def ece(hits: np.ndarray, count: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.abs(hits / count[..., None] - levels).mean(-1)
        return out

    draw = np.random.default_rng(0).integers(0, len(rows), (replicates, len(rows)))
    boot = ece(ha[draw].sum(1), n[draw].sum(1)) - ece(hb[draw].sum(1), n[draw].sum(1))
    full = float(ece(ha.sum(0)[None], n.sum()[None])[0] - ece(hb.sum(0)[None], n.sum()[None])[0])
    return {"mean_mm": full, "se_mm": float(boot.std(ddof=1)), "sequences": len(rows)}


def paired_ause(a: EvalReport, b: EvalReport, data: PoseSet, replicates: int = SLOW_REPLICATES) -> _Difference:
    """AUSE(a) - AUSE(b) over all joints, with a bootstrap over sequences (each replicate re-sorts)."""
    rows = _cluster_rows(data)

    def ause(report: EvalReport, idx: np.ndarray) -> float:
        s = report.per_sample
        return uncertainty.sparsification(s["joint_error"][idx], s["spread"][idx]).ause

    everything = np.arange(len(data))
    rng = np.random.default_rng(0)
    boot = []
    for _ in range(replicates):
        idx = np.concatenate([rows[k] for k in rng.integers(0, len(rows), len(rows))])
        boot.append(ause(a, idx) - ause(b, idx))
    return {
        "mean_mm": ause(a, everything) - ause(b, everything),
        "se_mm": float(np.std(boot, ddof=1)),
        "sequences": len(rows),
    }


def _pair(a: EvalReport, b: EvalReport, metric: str, d: _Difference, unit: str | None = None) -> PairedDifference:
    return PairedDifference(run_label(a), run_label(b), metric, d["mean_mm"], d["se_mm"], d["sequences"], unit)


def compare(reports: list[EvalReport], data: PoseSet) -> list[PairedDifference]:
    """Paired differences, every two noise rules at the same alpha, and every two alphas of the same
    noise rule: best-of-S MPJPE, and where both runs judged their uncertainty, the energy score,
    ECE and AUSE."""
    pairs = []
    for a, b in itertools.combinations(reports, 2):
        same_alpha = a.settings.alpha == b.settings.alpha
        same_noise = a.settings.noise == b.settings.noise
        if same_alpha == same_noise:
            continue
        best = paired_difference(a.per_sample["best"], b.per_sample["best"], data)
        pairs.append(_pair(a, b, f"best-of-{a.settings.hypotheses} MPJPE", best))
        if a.uncertainty is not None and b.uncertainty is not None:
            pairs.append(
                _pair(a, b, "energy score", paired_difference(a.per_sample["energy"], b.per_sample["energy"], data))
            )
            pairs.append(_pair(a, b, "ECE", paired_ece(a.per_sample["hits"], b.per_sample["hits"], data), unit=""))
            pairs.append(_pair(a, b, "AUSE", paired_ause(a, b, data), unit=""))
    return pairs


def comparison_report(reports: list[EvalReport], data: PoseSet) -> EvalComparison:
    return EvalComparison(runs=reports, paired=compare(reports, data))
