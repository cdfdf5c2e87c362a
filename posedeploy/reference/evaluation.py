"""Evaluation of a checkpoint on a PoseSet: the lifter alone, best-of-S and the aggregated pose.

Each metric is computed per sample, averaged per action, then over actions (Human3.6M
Protocols #1 and #2). Hypotheses are scored chunk by chunk as the sampler produces them, so that
S = 200 over the full test set never holds more than one chunk of hypotheses in memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypedDict, cast

import numpy as np
import torch

from posedeploy import aggregate, metrics, uncertainty
from posedeploy.data import PoseSet
from posedeploy.errors import InputError
from posedeploy.progress import progress
from posedeploy.reference.noise_comparison import recordings
from posedeploy.reference.reports import (
    AGGREGATED,
    BEST,
    EvalReport,
    EvalRunSettings,
    SamplingStats,
    SigmaQuality,
)
from posedeploy.reference.sampler import PipelineModule, SamplerResult, run_reference, run_single
from posedeploy.reference.uncertainty_judging import Parts, cross_fitted_parts, judge_uncertainty
from posedeploy.training.checkpoint import Checkpoint
from posedeploy.uncertainty import Calibration

# The best-of-S curve: best of the first S hypotheses of the same draw, for each S up to the run's.
BEST_OF = (1, 5, 10, 50, 200)


def _score_single(pred: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "mpjpe": metrics.mpjpe(pred, target) * 1000,
        "p_mpjpe": metrics.p_mpjpe(pred, target) * 1000,
        "pck": metrics.pck(pred, target) * 100,
        "auc": metrics.auc(pred, target) * 100,
    }


def evaluate(
    checkpoint: Checkpoint,
    data: PoseSet,
    hypotheses: int = 200,
    noise: str = "adaptive",
    seed: int = 0,
    device: str | torch.device = "cpu",
    max_poses: int | None = None,
    show_progress: bool = True,
    alpha: float | None = None,
    best_of: tuple[int, ...] | None = None,
    calibration: Calibration | str | None = None,
    calibration_source: str = "none",
    draws: str = "random",
) -> EvalReport:
    """Score ``checkpoint`` on ``data``; ``hypotheses`` = 0 evaluates the lifter alone.

    noise: adaptive, uniform or alpha (see posedeploy.reference.sampler.NOISE_MODES); alpha
    overrides the checkpoint's. Runs with the same seed, S and data draw the same noise.
    best_of: the S values of the best-of-S curve, each 1..S (None: those of :data:`BEST_OF` up to S).
    calibration: applied to the spread before its uncertainty is judged (``calibration_source`` says
    where it came from), or :data:`CROSSFIT`: each half of the recordings judged with a calibration
    fitted on the other; draws: random or antithetic noise.
    """
    if hypotheses < 0:
        raise InputError(f"number of hypotheses must be >= 0, got {hypotheses}")
    alpha = check_alpha(checkpoint.config.alpha if alpha is None else alpha)
    curve_s = best_of_curve(best_of, hypotheses)
    started = time.monotonic()
    avg = checkpoint.build_avg(device) if hypotheses > 0 and noise != "alpha" else None
    pipeline = PipelineModule(checkpoint.build_lifter(device), avg, alpha, noise_mode=noise)
    single_pose = run_single(pipeline, data.keypoints)
    scores: dict[str, dict[str, np.ndarray]] = {"single": _score_single(single_pose, data.poses_3d)}
    sample_mpjpe = {"single": scores["single"]["mpjpe"]}
    extra, judged = SamplingStats(), None
    if hypotheses > 0:
        sampled = _Sampling(data, hypotheses, curve_s, f"{noise} noise at alpha {alpha:g}")
        chunks: _Chunks = dict(seed=seed, max_poses=max_poses, keep_hypotheses=False, on_hypotheses=sampled.score)
        with progress(len(data), f"{noise} sampling, S={hypotheses}", enabled=show_progress) as advance:
            result = run_reference(
                pipeline, data.keypoints, hypotheses=hypotheses, progress=advance, draws=draws, **chunks
            )
        scores.update(sampled.aggregated_scores(result.pose))
        sample_mpjpe["best"] = sampled.best["mpjpe"]
        extra = sampled.stats(result, single_pose, alpha, noise == "adaptive")
        if hypotheses > 1:  # one hypothesis has no spread to judge
            fitted_on = {"noise": noise, "alpha": alpha, "hypotheses": hypotheses}
            parts = _calibration_parts(calibration, result, data, fitted_on)
            judged = judge_uncertainty(result, data.poses_3d, parts, calibration_source, sampled.energy, hypotheses)
            sample_mpjpe.update(judged.per_sample)
    settings = _run_settings(checkpoint, data, hypotheses, noise, alpha, seed, draws)
    settings.seconds = round(time.monotonic() - started, 1)
    report = _report(settings, data, scores, extra, sample_mpjpe)
    report.uncertainty = judged.stats if judged else None
    return report


def _run_settings(
    checkpoint: Checkpoint, data: PoseSet, hypotheses: int, noise: str, alpha: float, seed: int, draws: str
) -> EvalRunSettings:
    """What ran: the report's first lines."""
    return EvalRunSettings(
        lifter=checkpoint.config.lifter,
        avg=checkpoint.config.avg if hypotheses > 0 else None,
        trained_on=checkpoint.config.keypoints,
        data=data.source,
        samples=len(data),
        stride=data.meta.get("stride", 1),
        hypotheses=hypotheses,
        noise=noise if hypotheses > 0 else None,
        alpha=alpha,
        seed=seed,
        seconds=0.0,
        draws=draws if hypotheses > 0 else None,
    )


CROSSFIT = "crossfit"


def _calibration_parts(
    calibration: Calibration | str | None, result: SamplerResult, data: PoseSet, fitted_on: dict[str, object]
) -> Parts | None:
    if calibration is None:
        return None
    if isinstance(calibration, str):
        if calibration != CROSSFIT:
            raise InputError(f"calibration must be a Calibration, '{CROSSFIT}' or None, got '{calibration}'")
        error = metrics.joint_errors(result.pose.astype(np.float64), data.poses_3d)
        fitted_on = {**fitted_on, "data": data.source, "samples": len(data)}
        return cross_fitted_parts(result.spread.astype(np.float64), error, recordings(data), fitted_on)
    return [(np.ones(len(data), bool), calibration)]


class _Chunks(TypedDict):
    """The options of :func:`run_reference` that :func:`evaluate` passes as they are."""

    seed: int
    max_poses: int | None
    keep_hypotheses: bool
    on_hypotheses: Callable[[slice, np.ndarray], None] | None


class _Sampling:
    """The hypotheses of a run, scored chunk by chunk as the sampler makes them: best-of-S (and its
    curve over S), the joint-wise median and JPMA poses."""

    def __init__(self, data: PoseSet, hypotheses: int, curve_s: list[int], what: str):
        n, target = len(data), data.poses_3d
        self.data, self.hypotheses, self.what = data, hypotheses, what
        grid = len(uncertainty.STRETCH_GRID)
        joints = uncertainty.NUM_SCORED_JOINTS
        self.energy = (np.empty((n, joints, grid), np.float32), np.empty((n, joints), np.float32))
        self.best = {k: np.empty(n) for k in BEST}
        self.curve = {s: np.empty(n) for s in curve_s}
        self.poses = {"median": np.empty_like(target)}
        self.pixels = None
        if data.intrinsics is not None and data.image_sizes is not None:
            self.poses["jpma"] = np.empty_like(target)
            self.pixels = data.pixels()

    def score(self, rows: slice, hyps: np.ndarray) -> None:
        if not np.isfinite(hyps).all():
            raise InputError(f"the pipeline gave non-finite hypotheses with {self.what}; lower alpha")
        t = self.data.poses_3d[rows]
        for s in self.curve:
            self.curve[s][rows] = metrics.best_of_mpjpe(hyps[:, :s], t) * 1000
        self.best["mpjpe"][rows] = self.curve[self.hypotheses][rows]
        self.best["p_mpjpe"][rows] = metrics.best_of_p_mpjpe(hyps, t) * 1000
        self.best["pck"][rows] = metrics.best_of_pck(hyps, t) * 100
        self.best["auc"][rows] = metrics.best_of_auc(hyps, t) * 100
        self.poses["median"][rows] = aggregate.median(hyps)
        if self.hypotheses > 1:
            self.energy[0][rows], self.energy[1][rows] = uncertainty.energy_terms(hyps * 1000, t * 1000)
        if self.pixels is not None:
            assert self.data.intrinsics is not None  # pixels are set only with intrinsics
            self.poses["jpma"][rows] = aggregate.jpma(hyps, self.pixels[rows], self.data.intrinsics[rows])

    def aggregated_scores(self, mean_pose: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
        scores = {"best": self.best}
        for name, pose in (("mean", mean_pose), *self.poses.items()):
            scores[name] = {k: v for k, v in _score_single(pose, self.data.poses_3d).items() if k in AGGREGATED}
        return scores

    def stats(self, result: SamplerResult, single_pose: np.ndarray, alpha: float, adaptive: bool) -> SamplingStats:
        target, actions = self.data.poses_3d, self.data.actions
        joint_error = metrics.joint_errors(result.pose, target)
        return SamplingStats(
            mean_spread_mm=float(result.spread.mean() * 1000),
            # Does the spread point at the joints that are wrong? (Pearson, over all joints)
            spread_error_correlation=float(np.corrcoef(joint_error.ravel(), result.spread.ravel())[0, 1]),
            mean_sigma=float(result.sigma.mean()),
            best_of_s_mpjpe={str(s): metrics.mean_by_action(v, actions)[1] for s, v in self.curve.items()},
            sigma=sigma_quality(result.sigma, metrics.joint_errors(single_pose, target), alpha) if adaptive else None,
        )


def _report(
    settings: EvalRunSettings,
    data: PoseSet,
    scores: dict[str, dict[str, np.ndarray]],
    extra: SamplingStats,
    sample_mpjpe: dict[str, np.ndarray],
) -> EvalReport:
    """Per-sample scores averaged per action, then over actions."""
    per_action: dict[str, dict[str, dict[str, float | None]]] = {}
    means: dict[str, dict[str, float | None]] = {}
    for group, values in scores.items():
        per_action[group], means[group] = {}, {}
        for name, per_sample in values.items():
            # a dict[str, float] is a Table row (whose None stands for an undefined mean)
            row = cast("tuple[dict[str, float | None], float]", metrics.mean_by_action(per_sample, data.actions))
            per_action[group][name], means[group][name] = row
    actions = data.action_names()
    counts = {a: int((data.actions == a).sum()) for a in actions}
    return EvalReport(
        settings=settings,
        actions=actions,
        counts=counts,
        per_action=per_action,
        means=means,
        extra=extra,
        per_sample=sample_mpjpe,
    )


# alpha is in normalised screen units, where the image is 2 wide: noise above 1 leaves the image.
MAX_ALPHA = 1.0
MAX_ALPHAS = 16  # values in one eval's sweep: each is a full sampling run


def check_alpha(alpha: float) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not (0 < alpha <= MAX_ALPHA):
        raise InputError(
            f"alpha must be a number in (0, {MAX_ALPHA:g}] (normalised screen units, the image is 2 "
            f"wide), got {alpha!r}"
        )
    return float(alpha)


def best_of_curve(best_of: tuple[int, ...] | None, hypotheses: int) -> list[int]:
    """The S values of the best-of-S curve, ending at ``hypotheses``; given values must lie in 1..S."""
    if best_of is None:
        return sorted({s for s in BEST_OF if s < hypotheses} | {hypotheses})
    bad = [s for s in best_of if isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= max(hypotheses, 1)]
    if bad:
        raise InputError(
            f"best-of values must be whole numbers from 1 to S={hypotheses}, got {', '.join(map(str, bad))}"
        )
    return sorted(set(best_of) | {hypotheses})


def sigma_quality(sigma: np.ndarray, joint_error: np.ndarray, alpha: float) -> SigmaQuality:
    """How well the AVG's sigma (B, 2, 17) tracks the lifter's true per-joint error (B, 17): Pearson
    r over all joints, r within each joint (averaged over the non-root joints), and the fraction
    of joint-views clamped to exactly alpha (the AVG predicted less than 1)."""
    s, e = sigma.astype(np.float64).mean(axis=1), joint_error.astype(np.float64)
    # Joints whose sigma never leaves the clamp (or whose error is always 0: the root) have no correlation.
    joints = [j for j in range(s.shape[1]) if s[:, j].std() > 1e-9 * alpha and e[:, j].std() > 0]
    within = [float(np.corrcoef(s[:, j], e[:, j])[0, 1]) for j in joints]
    return SigmaQuality(
        error_r_overall=float(np.corrcoef(s[:, joints].ravel(), e[:, joints].ravel())[0, 1]) if joints else None,
        error_r_within_joint=float(np.mean(within)) if within else None,
        clamped_fraction=float(np.mean(sigma <= alpha * (1 + 1e-5))),
    )
