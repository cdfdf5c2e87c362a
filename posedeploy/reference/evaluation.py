"""Evaluation of a checkpoint on a PoseSet: the lifter alone, best-of-S and the aggregated pose.

Each metric is computed per sample, averaged per action, then over actions (Human3.6M
Protocols #1 and #2). Hypotheses are scored chunk by chunk as the sampler produces them, so that
S = 200 over the full test set never holds more than one chunk of hypotheses in memory.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from posedeploy import aggregate, metrics
from posedeploy.data import PoseSet
from posedeploy.errors import InputError
from posedeploy.progress import progress
from posedeploy.reference.sampler import PipelineModule, run_reference, run_single
from posedeploy.training.checkpoint import Checkpoint

# (group, metric) columns in the order they are printed.
SINGLE = ("mpjpe", "p_mpjpe", "pck", "auc")
BEST = ("mpjpe", "p_mpjpe", "pck", "auc")
AGGREGATED = ("mpjpe", "p_mpjpe")
# One pose from S hypotheses: the mean (the pipeline's own 'pose'), the joint-wise median, and the
# reprojection-based joint-wise selection (JPMA; needs camera intrinsics).
AGGREGATORS = ("mean", "median", "jpma")


# The best-of-S curve: best of the first S hypotheses of the same draw, for each S up to the run's.
BEST_OF = (1, 5, 10, 50, 200)


@dataclass
class EvalReport:
    settings: dict
    actions: list[str]
    counts: dict[str, int]
    per_action: dict[str, dict[str, dict[str, float]]]  # group -> metric -> action -> value
    means: dict[str, dict[str, float]]  # group -> metric -> mean over actions
    extra: dict = field(default_factory=dict)
    # Per-sample MPJPE (mm) of the lifter alone ('single') and of best-of-S ('best'), for paired
    # comparisons between runs on the same samples; not part of the JSON report.
    per_sample: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict:
        return {
            "settings": self.settings,
            "actions": self.actions,
            "counts": self.counts,
            "per_action": self.per_action,
            "means": self.means,
            "extra": self.extra,
        }


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
) -> EvalReport:
    """Score ``checkpoint`` on ``data``; ``hypotheses`` = 0 evaluates the lifter alone.

    noise: adaptive, uniform or alpha (see posedeploy.reference.sampler.NOISE_MODES); alpha
    overrides the checkpoint's. Runs with the same seed, S and data draw the same noise.
    best_of: the S values of the best-of-S curve, each 1..S (None: those of :data:`BEST_OF` up to S).
    """
    if hypotheses < 0:
        raise InputError(f"number of hypotheses must be >= 0, got {hypotheses}")
    alpha = checkpoint.config.alpha if alpha is None else alpha
    check_alpha(alpha)
    curve_s = best_of_curve(best_of, hypotheses)
    started = time.monotonic()
    lifter = checkpoint.build_lifter(device)
    avg = checkpoint.build_avg(device) if hypotheses > 0 and noise != "alpha" else None
    pipeline = PipelineModule(lifter, avg, alpha, noise_mode=noise)
    target = data.poses_3d
    single_pose = run_single(pipeline, data.keypoints)
    scores: dict[str, dict[str, np.ndarray]] = {"single": _score_single(single_pose, target)}
    sample_mpjpe = {"single": scores["single"]["mpjpe"]}
    extra: dict = {}
    if hypotheses > 0:
        n = len(data)
        best = {k: np.empty(n) for k in BEST}
        curve = {s: np.empty(n) for s in curve_s}
        poses = {"median": np.empty_like(target)}
        can_jpma = data.intrinsics is not None and data.image_sizes is not None
        if can_jpma:
            poses["jpma"] = np.empty_like(target)
            pixels = data.pixels()

        def score_chunk(rows: slice, hyps: np.ndarray) -> None:
            if not np.isfinite(hyps).all():
                raise InputError(
                    f"the pipeline gave non-finite hypotheses with {noise} noise at alpha {alpha:g}; lower alpha"
                )
            t = target[rows]
            for s_ in curve_s:
                curve[s_][rows] = metrics.best_of_mpjpe(hyps[:, :s_], t) * 1000
            best["mpjpe"][rows] = curve[hypotheses][rows]
            best["p_mpjpe"][rows] = metrics.best_of_p_mpjpe(hyps, t) * 1000
            best["pck"][rows] = metrics.best_of_pck(hyps, t) * 100
            best["auc"][rows] = metrics.best_of_auc(hyps, t) * 100
            poses["median"][rows] = aggregate.median(hyps)
            if can_jpma:
                poses["jpma"][rows] = aggregate.jpma(hyps, pixels[rows], data.intrinsics[rows])

        with progress(n, f"{noise} sampling, S={hypotheses}", enabled=show_progress) as advance:
            result = run_reference(
                pipeline,
                data.keypoints,
                hypotheses=hypotheses,
                seed=seed,
                max_poses=max_poses,
                keep_hypotheses=False,
                on_hypotheses=score_chunk,
                progress=advance,
            )
        scores["best"] = best
        for name, pose in (("mean", result.pose), *poses.items()):
            scores[name] = {k: v for k, v in _score_single(pose, target).items() if k in AGGREGATED}
        sample_mpjpe["best"] = best["mpjpe"]
        joint_error = metrics.joint_errors(result.pose, target)
        extra = {
            "mean_spread_mm": float(result.spread.mean() * 1000),
            # Does the spread point at the joints that are wrong? (Pearson, over all joints)
            "spread_error_correlation": float(np.corrcoef(joint_error.ravel(), result.spread.ravel())[0, 1]),
            "mean_sigma": float(result.sigma.mean()),  # normalised screen units
            "best_of_s_mpjpe": {str(s_): metrics.mean_by_action(v, data.actions)[1] for s_, v in curve.items()},
        }
        if noise == "adaptive":
            extra["sigma"] = sigma_quality(result.sigma, metrics.joint_errors(single_pose, target), alpha)
    per_action: dict[str, dict[str, dict[str, float]]] = {}
    means: dict[str, dict[str, float]] = {}
    for group, values in scores.items():
        per_action[group], means[group] = {}, {}
        for name, per_sample in values.items():
            per_action[group][name], means[group][name] = metrics.mean_by_action(per_sample, data.actions)
    actions = data.action_names()
    settings = {
        "lifter": checkpoint.config.lifter,
        "avg": checkpoint.config.avg if hypotheses > 0 else None,
        "trained_on": checkpoint.config.keypoints,
        "data": data.source,
        "samples": len(data),
        "stride": data.meta.get("stride", 1),
        "hypotheses": hypotheses,
        "noise": noise if hypotheses > 0 else None,
        "alpha": alpha,
        "seed": seed,
        "seconds": round(time.monotonic() - started, 1),
    }
    counts = {a: int((data.actions == a).sum()) for a in actions}
    return EvalReport(settings, actions, counts, per_action, means, extra, sample_mpjpe)


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


def sigma_quality(sigma: np.ndarray, joint_error: np.ndarray, alpha: float) -> dict:
    """How well the AVG's sigma (B, 2, 17) tracks the lifter's true per-joint error (B, 17): Pearson
    r over all joints, r within each joint (averaged over the non-root joints), and the fraction
    of joint-views clamped to exactly alpha (the AVG predicted less than 1)."""
    s, e = sigma.astype(np.float64).mean(axis=1), joint_error.astype(np.float64)
    # Joints whose sigma never leaves the clamp (or whose error is always 0: the root) have no correlation.
    joints = [j for j in range(s.shape[1]) if s[:, j].std() > 1e-9 * alpha and e[:, j].std() > 0]
    within = [float(np.corrcoef(s[:, j], e[:, j])[0, 1]) for j in joints]
    return {
        "error_r_overall": float(np.corrcoef(s[:, joints].ravel(), e[:, joints].ravel())[0, 1]) if joints else None,
        "error_r_within_joint": float(np.mean(within)) if within else None,
        "clamped_fraction": float(np.mean(sigma <= alpha * (1 + 1e-5))),
    }


def format_report(report: EvalReport) -> str:
    """A per-action table (mm; PCK and AUC in %) with the mean over actions as the last row."""
    s = report.settings
    groups = [("single", SINGLE, "lifter alone")]
    if "best" in report.means:
        groups += [("best", BEST, f"best-of-{s['hypotheses']}")]
        groups += [
            (name, AGGREGATED, name if name != "jpma" else "JPMA") for name in AGGREGATORS if name in report.means
        ]
    short = {"mpjpe": "MPJPE", "p_mpjpe": "P-MPJPE", "pck": "PCK", "auc": "AUC"}
    width = {"mpjpe": 7, "p_mpjpe": 8, "pck": 7, "auc": 6}
    title = (
        f"{s['lifter']} (trained on {s['trained_on']}) on {s['data']}: {s['samples']:,} samples"
        + (f" (every {s['stride']}th frame)" if s["stride"] != 1 else "")
        + (f", S={s['hypotheses']}, {s['noise']} noise, alpha {s['alpha']}" if s["hypotheses"] else "")
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
            values = [
                report.means[group][m] if action == "mean" else report.per_action[group][m][action] for m in metrics_
            ]
            cells.append("".join(f"{v:>{width[m]}.2f}" for v, m in zip(values, metrics_, strict=True)))
        lines.append(f"{action:<14}{n:>7}" + "".join(f"  {c}" for c in cells))
    if report.extra:
        e = report.extra
        lines.append(
            f"mean spread {e['mean_spread_mm']:.1f} mm; spread-error correlation {e['spread_error_correlation']:.3f}"
        )
        lines.append("best-of-S MPJPE: " + ", ".join(f"S={k} {v:.2f}" for k, v in e["best_of_s_mpjpe"].items()))
        if "sigma" in e and e["sigma"]["error_r_overall"] is not None:
            q = e["sigma"]
            lines.append(
                f"sigma vs the lifter's true joint error: r {q['error_r_overall']:.3f} overall, "
                f"{q['error_r_within_joint']:.3f} within a joint; {q['clamped_fraction']:.0%} clamped to alpha"
            )
    lines.append("MPJPE and P-MPJPE in mm; PCK (150 mm) and AUC (0-150 mm) in %; mean: over actions.")
    return "\n".join(lines)
