"""Per-joint uncertainty that means what it says, and the metrics that judge it (numpy only).

The raw ``spread`` of the pipeline is the RMS distance of the S hypotheses to their mean: it measures
how much the lifter's answer moves under the sampled 2D noise, not how far the answer is from the
truth. On Human3.6M it is about half the true error. A :class:`Calibration`, fitted on a validation
split, turns it into a spread and radii that hold what they claim:

- calibrated ``spread`` (per joint): sqrt(floor^2 + scale^2 * raw^2), the RMS distance of the true
  joint from ``pose`` expected for that raw spread (fitted as the conditional mean of the squared error);
- ``radius(p)``: spread * factor(p), the radius around ``pose`` that holds the true joint with
  probability p, where factor(p) is the p-quantile of error / calibrated spread on the validation data.

Without a calibration, radii are those of an isotropic 3D Gaussian with the raw spread as RMS radius
(chi(3) quantiles): the assumption whose failure the calibration corrects, kept as the baseline.

The metrics, over every non-root joint of every sample (the root is 0 by construction):
coverage of the radii at p = 0.1 ... 0.9 and its expected calibration error (ECE, the mean |coverage - p|);
sparsification (mean error left after removing the most uncertain fraction, against removing by the
true error: AUSE, and against removing at random: AURG, both normalised by the mean error); the
energy score of the samples (a proper scoring rule); sharpness (the mean spread).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from posedeploy.errors import InputError
from posedeploy.records import OPTIONAL, Record
from posedeploy.skeleton import NUM_JOINTS, ROOT

LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # where coverage is reported; ECE averages over them
# The radius table of a calibration: dense in the middle, into the tails as far as validation data reaches.
TABLE_LEVELS = (0.005, *(round(0.01 * i, 2) for i in range(1, 100)), 0.995, 0.999)
FORMS = ("scale", "joint_scale", "joint_affine")
SPARSIFICATION_STEPS = 50  # fractions 0, 1/50, ..., 49/50 of the joints removed
_JOINTS = np.array([j for j in range(NUM_JOINTS) if j != ROOT])
NUM_SCORED_JOINTS = len(_JOINTS)  # every joint but the root, which is 0 by construction


def chi3_quantile(p: float) -> float:
    """The p-quantile of the chi distribution with 3 degrees of freedom (bisection on its CDF)."""
    lo, hi = 0.0, 12.0
    for _ in range(80):
        r = (lo + hi) / 2
        cdf = math.erf(r / math.sqrt(2)) - math.sqrt(2 / math.pi) * r * math.exp(-r * r / 2)
        lo, hi = (r, hi) if cdf < p else (lo, r)
    return (lo + hi) / 2


def gaussian_factor(p: float) -> float:
    """radius(p) / RMS radius for an isotropic 3D Gaussian."""
    return chi3_quantile(p) / math.sqrt(3)


def check_level(p: object) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)) or not 0 < p < 1:
        raise InputError(f"a radius's probability must be a number in (0, 1), got {p!r}")
    return float(p)


@dataclass(frozen=True)
class Calibration(Record):
    """A fitted calibration of the spread (metres in, metres out): see the module's docstring."""

    form: str  # one of FORMS
    floor_m: list[float]  # per joint (17): the error left when the hypotheses agree
    scale: list[float]  # per joint (17)
    levels: list[float]  # TABLE_LEVELS
    factors: list[float]  # quantiles of error / calibrated spread at those levels
    fitted_on: dict[str, Any] = field(default_factory=dict)  # data, split, samples, noise, alpha, hypotheses
    hypotheses: int | None = field(default=None, metadata=OPTIONAL)  # the S a user needs (fewest within 10 %)

    def __post_init__(self) -> None:
        if self.form not in FORMS:
            raise InputError(f"unknown calibration form '{self.form}'; expected one of {', '.join(FORMS)}")
        if len(self.floor_m) != NUM_JOINTS or len(self.scale) != NUM_JOINTS:
            raise InputError(f"a calibration needs a floor and a scale for each of the {NUM_JOINTS} joints")
        f = np.asarray(self.factors, float)
        if len(f) != len(self.levels) or not np.all(np.isfinite(f)) or np.any(np.diff(f) < 0) or f[0] < 0:
            raise InputError("a calibration's radius factors must be finite, >= 0 and rise with the level")

    def spread(self, raw: np.ndarray, hypotheses: int | None = None) -> np.ndarray:
        """Calibrated spread from the raw spread (..., 17) of ``hypotheses`` = S draws, both in metres.

        The raw spread of S draws around their own mean is sqrt((S - 1) / S) of the spread of the
        distribution they come from; a raw spread of another S than the calibration's is first brought
        to the calibration's S, so that one calibration serves any S."""
        raw = np.asarray(raw, np.float64) * self._small_sample_factor(hypotheses)
        floor, scale = np.asarray(self.floor_m, np.float64), np.asarray(self.scale, np.float64)
        out: np.ndarray = np.sqrt(floor**2 + (scale * raw) ** 2).astype(np.float32)
        return out

    def scaled(self, ratio: float) -> Calibration:
        """This calibration for a model whose errors are ``ratio`` times those it was fitted on: the
        spread (floor and scale alike) scaled, the radius factors, which are relative, kept."""
        floor = [ratio * f for f in self.floor_m]
        scale = [ratio * c for c in self.scale]
        fitted_on = {**self.fitted_on, "error_ratio": ratio}
        return replace(self, floor_m=floor, scale=scale, fitted_on=fitted_on)

    def _small_sample_factor(self, hypotheses: int | None) -> float:
        fitted = self.fitted_on.get("hypotheses")
        if hypotheses is None or not isinstance(fitted, int) or fitted < 2 or hypotheses < 2:
            return 1.0
        return math.sqrt(((fitted - 1) / fitted) / ((hypotheses - 1) / hypotheses))

    def factor(self, p: float) -> float:
        """radius(p) / calibrated spread. Beyond the table's last level the tail is the chi(3) tail,
        scaled to meet the table there; below its first, the radius falls linearly to 0."""
        p = check_level(p)
        levels, factors = self.levels, self.factors
        if p > levels[-1]:
            return factors[-1] * chi3_quantile(p) / chi3_quantile(levels[-1])
        return float(np.interp(p, [0.0, *levels], [0.0, *factors]))

    def radius(self, spread: np.ndarray, p: float) -> np.ndarray:
        """Per-joint radius (same units as ``spread``, the calibrated spread) holding the joint with probability p."""
        out: np.ndarray = (np.asarray(spread) * self.factor(p)).astype(np.float32)
        return out


def radius(spread: np.ndarray, p: float, calibration: Calibration | None) -> np.ndarray:
    """radius(p) for a spread already calibrated with ``calibration``, or the Gaussian radius of a raw spread."""
    if calibration is not None:
        return calibration.radius(spread, p)
    out: np.ndarray = (np.asarray(spread) * gaussian_factor(check_level(p))).astype(np.float32)
    return out


def _check_pair(raw_spread: np.ndarray, errors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    raw, err = np.asarray(raw_spread, np.float64), np.asarray(errors, np.float64)
    if raw.shape != err.shape or raw.ndim != 2 or raw.shape[1] != NUM_JOINTS or len(raw) == 0:
        raise InputError(
            f"calibration needs spreads and errors of the same shape (N, 17); got {raw.shape}, {err.shape}"
        )
    if not (np.isfinite(raw).all() and np.isfinite(err).all()):
        raise InputError("calibration needs finite spreads and errors")
    return raw, err


def _floor_and_scale(raw: np.ndarray, err: np.ndarray, form: str) -> tuple[np.ndarray, np.ndarray]:
    """Per joint: E[error^2 | raw] = floor^2 + scale^2 raw^2, with the form's constraints."""
    floor, scale = np.zeros(NUM_JOINTS), np.ones(NUM_JOINTS)
    r2, e2 = raw[:, _JOINTS] ** 2, err[:, _JOINTS] ** 2
    if form == "scale":
        scale[_JOINTS] = math.sqrt(e2.sum() / max(r2.sum(), 1e-30))
    elif form == "joint_scale":
        scale[_JOINTS] = np.sqrt(e2.sum(0) / np.maximum(r2.sum(0), 1e-30))
    else:  # least squares of e^2 on raw^2, each coefficient kept >= 0
        for k, j in enumerate(_JOINTS):
            x, y = r2[:, k], e2[:, k]
            var = x.var()
            slope = ((x - x.mean()) * (y - y.mean())).mean() / var if var > 0 else 0.0
            intercept = y.mean() - slope * x.mean()
            if slope <= 0:
                slope, intercept = 0.0, y.mean()
            elif intercept < 0:
                slope, intercept = y.sum() / max(x.sum(), 1e-30), 0.0
            floor[j], scale[j] = math.sqrt(intercept), math.sqrt(slope)
    return floor, scale


def fit_calibration(
    raw_spread: np.ndarray, errors: np.ndarray, form: str = "joint_affine", fitted_on: dict[str, Any] | None = None
) -> Calibration:
    """Fit a calibration on raw spreads and true joint errors (N, 17) of a validation split, metres."""
    if form not in FORMS:
        raise InputError(f"unknown calibration form '{form}'; expected one of {', '.join(FORMS)}")
    raw, err = _check_pair(raw_spread, errors)
    floor, scale = _floor_and_scale(raw, err, form)
    spread = np.sqrt(floor**2 + (scale * raw) ** 2)[:, _JOINTS]
    z = err[:, _JOINTS] / np.maximum(spread, 1e-12)
    factors = np.maximum.accumulate(np.quantile(z.ravel(), TABLE_LEVELS))
    return Calibration(
        form=form,
        floor_m=[float(v) for v in floor],
        scale=[float(v) for v in scale],
        levels=list(TABLE_LEVELS),
        factors=[float(v) for v in factors],
        fitted_on=dict(fitted_on or {}),
    )


# --- the metrics ---------------------------------------------------------------------------------


def coverage(errors: np.ndarray, spread: np.ndarray, calibration: Calibration | None) -> dict[str, float]:
    """Fraction of non-root joints within radius(p), for each p in LEVELS (keys '0.1' ... '0.9')."""
    err, sp = np.asarray(errors)[..., _JOINTS], np.asarray(spread)[..., _JOINTS]
    return {f"{p:g}": float(np.mean(err <= radius(sp, p, calibration))) for p in LEVELS}


def ece(covered: dict[str, float]) -> float:
    """Expected calibration error: the mean |coverage - p| over the levels."""
    return float(np.mean([abs(c - float(p)) for p, c in covered.items()]))


def hit_counts(errors: np.ndarray, spread: np.ndarray, calibration: Calibration | None) -> np.ndarray:
    """(N, len(LEVELS)): per sample, how many non-root joints lie within radius(p) — sums over samples
    give coverage, so a bootstrap over sequences needs only these."""
    err, sp = np.asarray(errors)[..., _JOINTS], np.asarray(spread)[..., _JOINTS]
    return np.stack([(err <= radius(sp, p, calibration)).sum(-1) for p in LEVELS], axis=-1)


@dataclass(frozen=True)
class Sparsification:
    fractions: list[float]  # of the joints removed
    by_uncertainty: list[float]  # mean error (mm) of the rest, removing the largest spreads first
    by_error: list[float]  # ... removing the largest errors first (the oracle)
    ause: float  # area between the two, over the mean error
    aurg: float  # area between removing at random (flat) and by uncertainty, over the mean error


def _removal_curve(errors: np.ndarray, order_key: np.ndarray, steps: int) -> np.ndarray:
    """Mean error left after removing the largest ``order_key`` fraction k/steps, k = 0..steps-1."""
    ordered = errors[np.argsort(order_key, kind="stable")]  # ascending: the kept ones come first
    sums = np.concatenate([[0.0], np.cumsum(ordered)])
    n = len(ordered)
    kept = np.maximum(1, np.round(n * (1 - np.arange(steps) / steps)).astype(int))
    out: np.ndarray = sums[kept] / kept
    return out


def sparsification(errors: np.ndarray, spread: np.ndarray, steps: int = SPARSIFICATION_STEPS) -> Sparsification:
    """Sparsification of the non-root joints' errors (any unit; curves in mm if errors are)."""
    err = np.asarray(errors, np.float64)[..., _JOINTS].ravel()
    unc = np.asarray(spread, np.float64)[..., _JOINTS].ravel()
    by_unc, by_err = _removal_curve(err, unc, steps), _removal_curve(err, err, steps)
    mean = max(float(err.mean()), 1e-12)
    # the mean of the curve over the equally spaced fractions stands for its area on [0, 1)
    return Sparsification(
        fractions=[k / steps for k in range(steps)],
        by_uncertainty=[float(v) for v in by_unc],
        by_error=[float(v) for v in by_err],
        ause=float((by_unc - by_err).mean() / mean),
        aurg=float((mean - by_unc).mean() / mean),
    )


def energy_score(hypotheses: np.ndarray, target: np.ndarray, stretch: np.ndarray | None = None) -> np.ndarray:
    """Per sample, the energy score of the hypotheses (B, S, 17, 3) for the target (B, 17, 3), per
    non-root joint and averaged over them: E|X - y| - E|X - X'| / 2 (units of the input; lower is
    better), for X, X' drawn from the S hypotheses themselves: the distribution a user is given (the
    mean over distinct pairs alone would score the distribution the hypotheses were drawn from, and
    favour small S).
    ``stretch`` (B, 17): each joint's hypotheses moved away from their mean by that factor first
    (the calibrated distribution: calibrated spread / raw spread)."""
    h = np.asarray(hypotheses, np.float64)[:, :, _JOINTS]
    y = np.asarray(target, np.float64)[:, None, _JOINTS]
    if h.shape[1] < 2:
        raise InputError("the energy score needs at least 2 hypotheses per pose")
    if stretch is not None:
        mean = h.mean(axis=1, keepdims=True)
        h = mean + (h - mean) * np.asarray(stretch, np.float64)[:, None, _JOINTS, None]
    to_target = np.linalg.norm(h - y, axis=-1).mean(axis=1)
    out: np.ndarray = (to_target - _between(h) / 2).mean(axis=-1)
    return out


def _between(h: np.ndarray) -> np.ndarray:
    """E|X - X'| over the S hypotheses (axis 1) as a distribution: the mean over all S^2 ordered pairs,
    exactly (an estimate from a few pairs would be biased for draws that are not independent, such as
    antithetic ones)."""
    s = h.shape[1]
    if s <= EXACT_PAIRS_AT_ONCE:
        out: np.ndarray = np.linalg.norm(h[:, :, None] - h[:, None], axis=-1).mean(axis=(1, 2))
        return out
    total = np.zeros((h.shape[0], *h.shape[2:-1]))
    for k in range(s):  # one hypothesis against all, to bound memory
        total += np.linalg.norm(h - h[:, k : k + 1], axis=-1).sum(axis=1)
    out = total / (s * s)
    return out


EXACT_PAIRS_AT_ONCE = 64  # up to this S, all pairs in one array


# Stretch factors at which an eval pass records E|X - y| (1/8 octave apart, 0.5 ... 32), so that the
# energy score of any calibration of the run can be computed afterwards without the hypotheses.
GRID_STEPS_PER_OCTAVE = 8
STRETCH_GRID = 2.0 ** (np.arange(-8, 41) / GRID_STEPS_PER_OCTAVE)


def energy_terms(hypotheses: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """E|X_c - y| for every stretch c of STRETCH_GRID (B, 16, G) and E|X - X'| unstretched (B, 16), per
    non-root joint: E|X_c - X_c'| is c E|X - X'|, so these give the energy score of any stretch."""
    h = np.asarray(hypotheses, np.float64)[:, :, _JOINTS]
    y = np.asarray(target, np.float64)[:, _JOINTS]
    if h.shape[1] < 2:
        raise InputError("the energy score needs at least 2 hypotheses per pose")
    mean = h.mean(axis=1)
    offset, deviation = mean - y, h - mean[:, None]
    to_target = np.stack(
        [np.linalg.norm(offset[:, None] + c * deviation, axis=-1).mean(axis=1) for c in STRETCH_GRID], axis=-1
    )
    return to_target.astype(np.float32), _between(h).astype(np.float32)


def energy_from_terms(to_target: np.ndarray, between: np.ndarray, stretch: np.ndarray | None) -> np.ndarray:
    """Per sample, the energy score at ``stretch`` (B, 17; None: 1) from :func:`energy_terms`: E|X_c - y|
    interpolated in log c between the grid's points (stretches outside the grid are clipped to it)."""
    n = len(between)
    c = np.ones((n, NUM_SCORED_JOINTS)) if stretch is None else np.asarray(stretch, np.float64)[:, _JOINTS]
    c = np.clip(c, STRETCH_GRID[0], STRETCH_GRID[-1])
    position = (np.log2(c) - np.log2(STRETCH_GRID[0])) * GRID_STEPS_PER_OCTAVE  # fractional index into the grid
    low = np.minimum(np.floor(position).astype(int), len(STRETCH_GRID) - 2)
    weight = position - low
    lo = np.take_along_axis(to_target, low[..., None], axis=-1)[..., 0]
    hi = np.take_along_axis(to_target, low[..., None] + 1, axis=-1)[..., 0]
    out: np.ndarray = ((1 - weight) * lo + weight * hi - c * between / 2).mean(axis=-1)
    return out


def stretch_factor(
    raw_spread: np.ndarray, calibration: Calibration | None, hypotheses: int | None = None
) -> np.ndarray | None:
    """Calibrated / raw spread per joint (1 where the raw spread is 0), or None without a calibration."""
    if calibration is None:
        return None
    raw = np.asarray(raw_spread, np.float64)
    cal = calibration.spread(raw, hypotheses).astype(np.float64)
    out: np.ndarray = np.where(raw > 0, cal / np.maximum(raw, 1e-12), 1.0)
    return out


SPREAD_BINS = 4  # conditional ECE: within each quarter of the joints, ordered by spread


def conditional_ece(errors: np.ndarray, spread: np.ndarray, calibration: Calibration | None) -> float:
    """ECE within each quarter of the non-root joints ordered by spread, averaged: a radius table
    fitted to the pooled errors holds p overall whatever the spread says (the marginal ECE cannot
    tell a spread that tracks the error from one that does not); this asks that it hold at every spread."""
    err, sp = np.asarray(errors)[..., _JOINTS].ravel(), np.asarray(spread)[..., _JOINTS].ravel()
    bins = np.array_split(np.argsort(sp, kind="stable"), SPREAD_BINS)
    return float(
        np.mean([np.mean([abs(np.mean(err[b] <= radius(sp[b], p, calibration)) - p) for p in LEVELS]) for b in bins])
    )


def cross_fitted(raw_spread: np.ndarray, errors: np.ndarray, groups: np.ndarray, form: str) -> dict[str, float]:
    """A form judged out of sample: fitted on alternate groups (``groups``: a recording id per
    sample), judged on the others, both ways round, averaged: ECE, conditional ECE and AUSE."""
    _, ids = np.unique(groups, return_inverse=True)
    fold = ids % 2
    scores: dict[str, list[float]] = {"ece": [], "conditional_ece": [], "ause": []}
    for k in (0, 1):
        fit, held = fold != k, fold == k
        if not fit.any() or not held.any():
            raise InputError("choosing a calibration's form needs at least two sequences")
        cal = fit_calibration(raw_spread[fit], errors[fit], form)
        spread = cal.spread(raw_spread[held])
        scores["ece"].append(ece(coverage(errors[held], spread, cal)))
        scores["conditional_ece"].append(conditional_ece(errors[held], spread, cal))
        scores["ause"].append(sparsification(errors[held], spread).ause)
    return {k: float(np.mean(v)) for k, v in scores.items()}


FORM_TOLERANCE = 0.003  # of held-out conditional ECE: within it, the simpler form is kept


def choose_form(
    raw_spread: np.ndarray, errors: np.ndarray, groups: np.ndarray
) -> tuple[str, dict[str, dict[str, float]]]:
    """The form with the lowest held-out conditional ECE (the simplest within FORM_TOLERANCE of it),
    and each form's held-out scores."""
    table = {form: cross_fitted(raw_spread, errors, groups, form) for form in FORMS}
    best = min(v["conditional_ece"] for v in table.values())
    return next(f for f in FORMS if table[f]["conditional_ece"] <= best + FORM_TOLERANCE), table


AUTO = "auto"  # the form chosen by choose_form


def fit_form(
    raw: np.ndarray, errors: np.ndarray, groups: np.ndarray, form: str, fitted_on: dict[str, Any]
) -> tuple[Calibration, dict[str, dict[str, float]]]:
    """Fit a calibration of ``form``; with form 'auto', choose it by held-out scores first (returned too)."""
    held_out: dict[str, dict[str, float]] = {}
    if form == AUTO:
        form, held_out = choose_form(raw, errors, groups)
    return fit_calibration(raw, errors, form, fitted_on), held_out
