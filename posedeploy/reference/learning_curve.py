"""A refit's error on new people, estimated from runs of the same recipe trained on fewer people.

A refit on 'train' and 'val' together has no held-out data left to be measured on, and the
calibration it carries from its recipe's run without 'val' was fitted to that run's larger errors,
so its radii come out wide. Runs trained on fewer subjects and validated on the same held-out split
trace the learning curve E(N) = c * N^-b (N: training samples); fitted by least squares on log E
against log N, it predicts the refit's error relative to the run's, E(N_refit) / E(N_run) =
(N_refit / N_run)^-b: the factor by which the carried spread is scaled
(``posedeploy calibrate --from RUN --error-ratio``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from posedeploy.errors import InputError


@dataclass(frozen=True)
class CurvePoint:
    name: str
    samples: int  # training samples the run saw
    error_mm: float  # its error on the held-out split


@dataclass(frozen=True)
class LearningCurve:
    points: tuple[CurvePoint, ...]
    exponent: float  # b in E(N) = c * N^-b; > 0 when more data helps

    def error_ratio(self, from_samples: int, to_samples: int) -> float:
        """E(to_samples) / E(from_samples) on the fitted curve."""
        if from_samples <= 0 or to_samples <= 0:
            raise InputError(f"sample counts must be positive, got {from_samples} and {to_samples}")
        return float((to_samples / from_samples) ** -self.exponent)


def fit_learning_curve(points: list[CurvePoint]) -> LearningCurve:
    """The power law through ``points`` (least squares in log-log); needs two sample counts or more."""
    if any(p.samples <= 0 or not (math.isfinite(p.error_mm) and p.error_mm > 0) for p in points):
        raise InputError("a learning curve needs positive sample counts and positive, finite errors")
    if len({p.samples for p in points}) < 2:
        raise InputError(
            f"a learning curve needs runs trained on at least two amounts of data, got {len(points)} run(s) "
            f"on {len({p.samples for p in points})}"
        )
    log_n = np.log([p.samples for p in points])
    log_e = np.log([p.error_mm for p in points])
    slope = float(np.polyfit(log_n, log_e, 1)[0])
    return LearningCurve(tuple(points), exponent=-slope)


def training_samples(checkpoint: Any, data: str, keypoints: str) -> int:
    """How many samples the checkpoint's lifter was trained on: as recorded, or, for a checkpoint
    written before the count was, its run's training set rebuilt at stride 1 (the recipes')."""
    from posedeploy.training.runs import lifter_training_set

    training = checkpoint.config.training
    if isinstance(training.get("samples"), int):
        return int(training["samples"])
    return len(lifter_training_set(data, keypoints, 1, training.get("fold"), bool(training.get("refit")), None, 1))
