"""An eval run's uncertainty, judged against the truth: calibration, sparsification, energy score,
sharpness (the metrics are in posedeploy/uncertainty.py; this gathers them for a report)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from posedeploy import metrics, uncertainty
from posedeploy.reference.reports import UncertaintyStats
from posedeploy.reference.sampler import SamplerResult
from posedeploy.skeleton import NUM_JOINTS, ROOT
from posedeploy.uncertainty import Calibration

_JOINTS = [j for j in range(NUM_JOINTS) if j != ROOT]


@dataclass(frozen=True)
class Judged:
    stats: UncertaintyStats
    per_sample: dict[str, np.ndarray]  # energy (N,), joint_error and spread (N, 17) mm, hits (N, 9)


# Which calibration judges which samples: one for all, or (cross-fitting) each fold its own.
Parts = list[tuple[np.ndarray, Calibration]]


def cross_fitted_parts(raw: np.ndarray, error: np.ndarray, groups: np.ndarray, fitted_on: dict[str, object]) -> Parts:
    """Two calibrations of a split on itself: each fitted (form chosen) on every other recording and
    applied to the rest, so that a split's own numbers judge a calibration out of sample."""
    _, ids = np.unique(groups, return_inverse=True)
    parts = []
    for k in (0, 1):
        held, train = ids % 2 == k, ids % 2 != k
        fold = {**fitted_on, "fold": f"{1 - k} of 2"}
        calibration, _ = uncertainty.fit_form(raw[train], error[train], groups[train], uncertainty.AUTO, fold)
        parts.append((held, calibration))
    return parts


def judge_uncertainty(
    result: SamplerResult,
    target: np.ndarray,
    parts: Parts | None,
    source: str,
    energy: tuple[np.ndarray, np.ndarray],
    hypotheses: int,
) -> Judged:
    """Judge a run's (raw) spread, calibrated by ``parts`` when given, against the true errors;
    ``energy``: the run's :func:`uncertainty.energy_terms` (mm)."""
    raw = result.spread.astype(np.float64)
    error = metrics.joint_errors(result.pose.astype(np.float64), target)
    spread, hits = raw.copy(), uncertainty.hit_counts(error, raw, None)
    stretch = None if parts is None else np.ones_like(raw)
    for rows, calibration in parts or []:
        spread[rows] = calibration.spread(raw[rows], hypotheses)
        hits[rows] = uncertainty.hit_counts(error[rows], spread[rows], calibration)
        assert stretch is not None
        stretch[rows] = uncertainty.stretch_factor(raw[rows], calibration, hypotheses)
    gaussian = uncertainty.coverage(error, raw, None)
    covered = {
        f"{p:g}": float(v) for p, v in zip(uncertainty.LEVELS, hits.sum(0) / (len(hits) * len(_JOINTS)), strict=True)
    }
    energy_raw = uncertainty.energy_from_terms(*energy, None)
    energy_calibrated = uncertainty.energy_from_terms(*energy, stretch) if stretch is not None else energy_raw
    e, u = error[:, _JOINTS], spread[:, _JOINTS]
    within = [_pearson(e[:, k], u[:, k]) for k in range(len(_JOINTS))]
    defined = [r for r in within if r is not None]
    stats = UncertaintyStats(
        calibration=source if parts is not None else "none",
        coverage=covered,
        ece=uncertainty.ece(covered),
        coverage_gaussian=gaussian,
        ece_gaussian=uncertainty.ece(gaussian),
        sparsification=uncertainty.sparsification(error * 1000, spread * 1000),
        energy_score_mm=float(energy_calibrated.mean()),
        energy_score_raw_mm=float(energy_raw.mean()),
        sharpness_mm=float(u.mean() * 1000),
        raw_spread_mm=float(raw[:, _JOINTS].mean() * 1000),
        spread_error_r=_pearson(e.ravel(), u.ravel()),
        spread_error_r_within_joint=float(np.mean(defined)) if defined else None,
    )
    per_sample = {"energy": energy_calibrated, "joint_error": error * 1000, "spread": spread * 1000, "hits": hits}
    return Judged(stats, per_sample)


def _pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    if a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])
