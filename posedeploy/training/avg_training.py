"""Weakly supervised training of the Adaptive Variance Generation (AVG) model.

Targets are the frozen lifter's per-joint errors divided by their mean over the training set
(pseudo-labels, see pseudo_labels.py), or, given fold lifters (folds.py), each sample's error under
the lifter that did not see its subject; loss is the MSE. Validation is the same MSE on the test
validation split's pseudo-labels (normalised by the training mean).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from posedeploy.data import PoseSet
from posedeploy.errors import InputError
from posedeploy.training.checkpoint import Checkpoint
from posedeploy.training.folds import assign_lifters
from posedeploy.training.models import AVGS, build_model
from posedeploy.training.pseudo_labels import load_or_compute
from posedeploy.training.trainer import TrainTask


class AVGTask(TrainTask):
    metric = "mse"

    def __init__(
        self,
        lifter_checkpoint: Checkpoint,
        train: PoseSet,
        val: PoseSet,
        avg: str | None = None,
        alpha: float | None = None,
        cache_dir: Path | None = None,
        device: str | torch.device = "cpu",
        fold_lifters: list[Checkpoint] | None = None,
        refit: bool = False,
    ):
        """``refit``: ``train`` holds ``val`` too (for a lifter refitted on both), so ``val`` is only
        reported and every epoch is written."""
        config = lifter_checkpoint.config.with_avg(avg, alpha)
        if config.avg not in AVGS:
            raise InputError(f"unknown AVG model '{config.avg}'; expected one of {', '.join(AVGS)}")
        if not config.alpha > 0:
            raise InputError(f"alpha must be > 0, got {config.alpha}")
        self.config, self.lifter_checkpoint, self.refit = config, lifter_checkpoint, refit
        self.fingerprint = lifter_checkpoint.lifter_fingerprint()
        self.name = f"avg/{config.avg}"
        self.train_source, self.val_source, self.val_split = train.source, val.source, val.meta.get("split")
        self.val_seen = train.shares_subjects(val)
        lifter = lifter_checkpoint.build_lifter(device)
        if fold_lifters:
            # Each training sample's label comes from the fold lifter that never saw its subject.
            owner = assign_lifters(train, fold_lifters, lifter_checkpoint)
            parts = [
                load_or_compute(
                    f.build_lifter(device),
                    f.lifter_fingerprint(),
                    train.keypoints[owner == i],
                    train.poses_3d[owner == i],
                    True,
                    cache_dir,
                )
                for i, f in enumerate(fold_lifters)
            ]
            inputs, errors = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
            self.pseudo_labels = {
                "from": "held-out folds",
                "fold_lifters": [f.lifter_fingerprint() for f in fold_lifters],
            }
        else:
            inputs, errors = load_or_compute(lifter, self.fingerprint, train.keypoints, train.poses_3d, True, cache_dir)
            self.pseudo_labels = {"from": "the lifter on its own training data"}
        self.error_mean = float(errors.mean())
        val_inputs, val_errors = load_or_compute(lifter, self.fingerprint, val.keypoints, val.poses_3d, True, cache_dir)
        self.inputs, self.targets = torch.from_numpy(inputs), torch.from_numpy(errors / self.error_mean)
        self.val_inputs, self.val_targets = torch.from_numpy(val_inputs), torch.from_numpy(val_errors / self.error_mean)
        self.model = build_model("avg", config.avg, config.avg_params)

    def identity(self) -> dict[str, Any]:
        identity = {
            "task": self.name,
            "lifter": self.fingerprint,
            "data": self.train_source,
            "samples": len(self.inputs),
            "pseudo_labels": self.pseudo_labels,
        }
        # Absent when unused, so that states written before the option existed still resume.
        return {**identity, "refit": True} if self.refit else identity

    @property
    def selects(self) -> bool:
        return not self.refit

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return nn.functional.mse_loss(model(x), y)

    def validate(self, model: nn.Module) -> float:
        device = next(model.parameters()).device
        total = 0.0
        for i in range(0, len(self.val_inputs), 8192):
            pred = model(self.val_inputs[i : i + 8192].to(device))
            total += float(((pred - self.val_targets[i : i + 8192].to(device)) ** 2).sum())
        return total / self.val_targets.numel()

    def checkpoint(self, model: nn.Module, summary: dict[str, float]) -> Checkpoint:
        self.config.training = {
            **self.lifter_checkpoint.config.training,
            "avg": {
                "train_source": self.train_source,
                "val_source": self.val_source,
                "val_split": self.val_split,
                "pseudo_label_mean_m": self.error_mean,
                "pseudo_labels": self.pseudo_labels,
                **({"refit": True} if self.refit else {}),
                **summary,
            },
        }
        avg_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        return Checkpoint(
            self.config,
            self.lifter_checkpoint.lifter_state,
            avg_state,
            {**self.lifter_checkpoint.meta, "lifter_fingerprint": self.fingerprint},
        )
