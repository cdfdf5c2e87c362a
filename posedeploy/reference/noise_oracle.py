"""How much can a variance model buy? Best-of-S with sigma set by an oracle.

Every rule spends the same amount of noise over the data set (the mean of the AVG's adaptive
sigma) with the same noise draws. The first four also give each sample the same amount as the
adaptive sigma does (the mean over its joints and views) and differ only in *where* it goes:

  adaptive       clamp(AVG, 1) * alpha, as PRPose
  uniform        that sigma's mean on every joint
  oracle-3d      proportional to the lifter's true 3D error at each joint of the sample itself
                 (what the AVG's pseudo-labels measure, known perfectly)
  oracle-2d      proportional to the detector's true 2D error at each joint and view (needs the
                 ground-truth 2D of the same frames)

The last three let the amount vary from sample to sample, as an AVG's prediction does (their
errors are normalised by the mean error on this data, where the AVG's labels use the training mean):

  oracle-amount  the same on every joint, proportional to the sample's true mean joint error
  perfect-avg    proportional to the true 3D error of each joint, not normalised per sample: what
                 an AVG model that predicted its pseudo-labels exactly would give, without the clamp
  perfect-clamped  the same with PRPose's clamp: proportional to max(error / mean error, 1)

The noise is drawn exactly as ``posedeploy eval`` draws it on a CPU (one generator, the same
chunks), so the adaptive and uniform rows are those of ``eval --noise adaptive,uniform``.
"""

from __future__ import annotations

from typing import TypedDict

import numpy as np
import torch

from posedeploy import metrics
from posedeploy.contract import check_hypotheses, draw_noise
from posedeploy.data import PoseSet
from posedeploy.errors import InputError
from posedeploy.progress import progress
from posedeploy.reference.sampler import CPU_MAX_POSES, PipelineModule, rows_per_call, run_single
from posedeploy.skeleton import FLIP_PERMUTATION
from posedeploy.training.checkpoint import Checkpoint

RULES = ("adaptive", "uniform", "oracle-3d", "oracle-2d", "oracle-amount", "perfect-avg", "perfect-clamped")


def placed(weights: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
    """Sigma (B, 2, 17) proportional to ``weights`` with the per-sample mean ``total`` (B, 1, 1)."""
    weights = weights.clamp(min=1e-6)
    return weights / weights.mean(dim=(1, 2), keepdim=True) * total


def both_views(per_joint: np.ndarray) -> np.ndarray:
    """(N, 17) per-joint values of a pose -> (N, 2, 17) for the pose and its mirror image."""
    return np.stack([per_joint, per_joint[:, FLIP_PERMUTATION]], axis=1).astype(np.float32)


def _rule_sigma(
    rule: str,
    adaptive: torch.Tensor,
    total: torch.Tensor,
    e: torch.Tensor,
    e_2d: torch.Tensor,
    scale: float,
    mean_error: float,
    clamped_scale: float,
) -> torch.Tensor:
    """The (B, 2, 17) sigma of one noise rule (see RULES), from this chunk's AVG sigma and true errors."""
    if rule == "adaptive":
        return adaptive
    if rule == "uniform":
        return total.expand_as(adaptive)
    if rule == "oracle-3d":
        return placed(e, total)
    if rule == "oracle-2d":
        return placed(e_2d, total)
    if rule == "oracle-amount":
        return (e.mean(dim=(1, 2), keepdim=True) * scale).expand_as(adaptive)
    if rule == "perfect-avg":
        return e * scale
    return torch.clamp(e / mean_error, min=1) * clamped_scale  # perfect-clamped


class OracleScores(TypedDict):
    """What :func:`oracle_best_of` measured: per-sample mm by rule, the lifter's own, sigma by rule."""

    best: dict[str, np.ndarray]
    single: np.ndarray
    mean_sigma: dict[str, float]
    alpha: float


@torch.no_grad()
def oracle_best_of(
    checkpoint: Checkpoint,
    data: PoseSet,
    truth_2d: PoseSet,
    hypotheses: int = 200,
    alpha: float | None = None,
    seed: int = 0,
    rules: tuple[str, ...] = RULES,
    show_progress: bool = True,
) -> OracleScores:
    """Per-sample best-of-S MPJPE (mm) of each of ``rules`` (see :data:`RULES`), the lifter's own
    per-sample MPJPE ('single') and each rule's mean sigma (normalised units)."""
    unknown = [r for r in rules if r not in RULES]
    if unknown or not rules:
        raise InputError(f"oracle rules must be among {', '.join(RULES)}, got {', '.join(unknown) or 'none'}")
    if len(truth_2d) != len(data) or not np.array_equal(truth_2d.poses_3d, data.poses_3d):
        raise InputError("the ground-truth 2D set does not cover the same frames as the data")
    hypotheses = check_hypotheses(hypotheses)
    alpha = checkpoint.config.alpha if alpha is None else alpha
    pipeline = PipelineModule(checkpoint.build_lifter("cpu"), checkpoint.build_avg("cpu"), alpha)
    single = run_single(pipeline, data.keypoints)
    error_3d = both_views(metrics.joint_errors(single, data.poses_3d))
    error_2d = both_views(np.linalg.norm(data.keypoints - truth_2d.keypoints, axis=-1))
    chunks = [torch.from_numpy(data.keypoints[i : i + 4096]) for i in range(0, len(data), 4096)]
    adaptive_all = torch.cat([pipeline.sigma(pipeline.views(kp)) for kp in chunks])
    # The data set's mean adaptive sigma, and its mean true error: the scale of the rules whose
    # amount varies between samples.
    sigma_total = float(adaptive_all.sum())
    mean_error = float(error_3d.mean())
    scale = sigma_total / error_3d.size / mean_error  # sigma per metre of true error
    clamped_scale = sigma_total / error_3d.size / float(np.maximum(error_3d / mean_error, 1).mean())

    step = rows_per_call(CPU_MAX_POSES, hypotheses)  # as run_reference on a CPU: the same draws
    rng = np.random.default_rng(seed)
    best = {rule: np.empty(len(data)) for rule in rules}
    sigma_sum = dict.fromkeys(rules, 0.0)
    with progress(len(data), f"oracle sampling, S={hypotheses}", enabled=show_progress) as advance:
        for start in range(0, len(data), step):
            rows = slice(start, min(len(data), start + step))
            views = pipeline.views(torch.from_numpy(data.keypoints[rows]))
            adaptive = adaptive_all[rows]
            total = adaptive.mean(dim=(1, 2), keepdim=True)
            e = torch.from_numpy(error_3d[rows])
            e_2d = torch.from_numpy(error_2d[rows])
            noise = torch.from_numpy(draw_noise(rng, rows.stop - rows.start, hypotheses))
            for rule in rules:
                sigma = _rule_sigma(rule, adaptive, total, e, e_2d, scale, mean_error, clamped_scale)
                hyps = pipeline.hypotheses(views, sigma, noise).numpy()
                best[rule][rows] = metrics.best_of_mpjpe(hyps, data.poses_3d[rows]) * 1000
                sigma_sum[rule] += float(sigma.sum())
            advance(rows.stop - rows.start)
    return {
        "best": best,
        "single": metrics.mpjpe(single, data.poses_3d) * 1000,
        "mean_sigma": {rule: total / (len(data) * error_3d[0].size) for rule, total in sigma_sum.items()},
        "alpha": alpha,
    }
