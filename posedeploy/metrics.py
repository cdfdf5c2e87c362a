"""Pose accuracy metrics (numpy only). Inputs in any unit; reports convert metres to millimetres.

Every function returns one value per sample, so that results can be grouped by action and
averaged per sample — never a batch mean credited to a whole mixed-action batch.

- MPJPE: mean joint distance (Protocol #1).
- P-MPJPE: MPJPE after the similarity transform (rotation, scale, translation) that best aligns
  the prediction to the target (Procrustes, Protocol #2).
- best-of-S: the smallest error among S hypotheses of a sample, pose-level as in PRPose (the
  whole pose of one hypothesis, not the best hypothesis per joint).
- PCK: fraction of joints within 150 mm; AUC: mean PCK over thresholds 0, 5, ..., 150 mm.
"""

from __future__ import annotations

import numpy as np

from posedeploy.errors import InputError
from posedeploy.skeleton import check_joints

PCK_THRESHOLD_MM = 150.0
AUC_THRESHOLDS_MM = np.linspace(0.0, 150.0, 31)


def _check_pair(pred: np.ndarray, target: np.ndarray) -> None:
    check_joints(pred, "prediction", 3)
    check_joints(target, "target", 3)
    try:
        np.broadcast_shapes(pred.shape, target.shape)
    except ValueError:
        raise InputError(f"prediction {pred.shape} and target {target.shape} do not match") from None


def joint_errors(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-joint Euclidean distances (..., 17)."""
    _check_pair(pred, target)
    errors: np.ndarray = np.linalg.norm(pred - target, axis=-1)
    return errors


def mpjpe(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(..., 17, 3) -> (...): mean per-joint position error of each pose."""
    per_pose: np.ndarray = joint_errors(pred, target).mean(axis=-1)
    return per_pose


def procrustes_align(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Align each predicted pose (N, J, 3) to its target with the optimal rotation, scale and
    translation (reflections excluded)."""
    mu_p = pred.mean(axis=-2, keepdims=True)
    mu_t = target.mean(axis=-2, keepdims=True)
    p0, t0 = pred - mu_p, target - mu_t
    norm_p = np.sqrt((p0**2).sum(axis=(-2, -1), keepdims=True))
    norm_t = np.sqrt((t0**2).sum(axis=(-2, -1), keepdims=True))
    norm_p = np.where(norm_p == 0, 1.0, norm_p)
    norm_t = np.where(norm_t == 0, 1.0, norm_t)
    p0, t0 = p0 / norm_p, t0 / norm_t
    h = np.swapaxes(t0, -1, -2) @ p0  # (N, 3, 3)
    u, s, vt = np.linalg.svd(h)
    v = np.swapaxes(vt, -1, -2)
    det = np.sign(np.linalg.det(v @ np.swapaxes(u, -1, -2)))
    # A reflection would fit better: flip the least significant axis instead.
    v[..., :, -1] *= det[..., None]
    s[..., -1] *= det
    rotation = v @ np.swapaxes(u, -1, -2)
    scale = s.sum(axis=-1)[..., None, None] * norm_t / norm_p
    aligned: np.ndarray = scale * (pred - mu_p) @ rotation + mu_t
    return aligned


def p_mpjpe(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(..., 17, 3) -> (...): MPJPE after Procrustes alignment of each pose."""
    _check_pair(pred, target)
    target = np.broadcast_to(target, pred.shape)
    flat_p = pred.reshape(-1, *pred.shape[-2:]).astype(np.float64)
    flat_t = target.reshape(-1, *target.shape[-2:]).astype(np.float64)
    aligned = procrustes_align(flat_p, flat_t)
    per_pose: np.ndarray = np.linalg.norm(aligned - flat_t, axis=-1).mean(axis=-1).reshape(pred.shape[:-2])
    return per_pose


def pck(pred: np.ndarray, target: np.ndarray, threshold: float = PCK_THRESHOLD_MM / 1000) -> np.ndarray:
    """Fraction of joints closer than ``threshold`` (same unit as the poses)."""
    within: np.ndarray = (joint_errors(pred, target) < threshold).mean(axis=-1)
    return within


def auc(pred: np.ndarray, target: np.ndarray, thresholds: np.ndarray = AUC_THRESHOLDS_MM / 1000) -> np.ndarray:
    """Area under the PCK curve: mean PCK over ``thresholds``."""
    errors = joint_errors(pred, target)
    area: np.ndarray = np.mean([(errors < t).mean(axis=-1) for t in thresholds], axis=0)
    return area


def _check_hypotheses(hypotheses: np.ndarray, target: np.ndarray) -> None:
    check_joints(hypotheses, "hypotheses", 3)
    check_joints(target, "target", 3)
    if hypotheses.ndim != 4 or target.ndim != 3 or hypotheses.shape[0] != target.shape[0]:
        raise InputError(
            f"hypotheses must be (N, S, 17, 3) and target (N, 17, 3), got {hypotheses.shape} and {target.shape}"
        )


def best_of_mpjpe(hypotheses: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(N, S, 17, 3), (N, 17, 3) -> (N,): MPJPE of the best whole hypothesis of each sample."""
    _check_hypotheses(hypotheses, target)
    best: np.ndarray = mpjpe(hypotheses, target[:, None]).min(axis=1)
    return best


def best_of_p_mpjpe(hypotheses: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(N, S, 17, 3), (N, 17, 3) -> (N,): the smallest P-MPJPE among the S hypotheses."""
    _check_hypotheses(hypotheses, target)
    best: np.ndarray = p_mpjpe(hypotheses, target[:, None]).min(axis=1)
    return best


def best_of_pck(hypotheses: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(N,): the highest PCK among the S hypotheses."""
    _check_hypotheses(hypotheses, target)
    best: np.ndarray = pck(hypotheses, target[:, None]).max(axis=1)
    return best


def best_of_auc(hypotheses: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(N,): the highest AUC among the S hypotheses."""
    _check_hypotheses(hypotheses, target)
    best: np.ndarray = auc(hypotheses, target[:, None]).max(axis=1)
    return best


def mean_by_action(values: np.ndarray, actions: np.ndarray) -> tuple[dict[str, float], float]:
    """Per-action means of per-sample values, and the mean over actions (each action weighs the same)."""
    values, actions = np.asarray(values), np.asarray(actions)
    if values.shape != actions.shape:
        raise InputError(f"{values.shape[0]} values for {actions.shape[0]} action labels")
    per_action = {a: float(values[actions == a].mean()) for a in dict.fromkeys(actions.tolist())}
    return per_action, float(np.mean(list(per_action.values()))) if per_action else float("nan")
