"""Supervised training of a single-hypothesis lifter: MPJPE on root-relative 3D, mirror
augmentation, validation by the mirror-averaged MPJPE per action (Protocol #1)."""

from __future__ import annotations

import torch
from torch import nn

from posedeploy.data import PoseSet
from posedeploy.errors import InputError
from posedeploy.metrics import mean_by_action, mpjpe
from posedeploy.training.checkpoint import Checkpoint, PipelineConfig
from posedeploy.training.models import DEFAULT_AVG, build_model, default_params
from posedeploy.training.sampler import Mirror, PipelineModule, run_single
from posedeploy.training.trainer import TrainTask


def mpjpe_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(pred - target, dim=-1).mean()


class LifterTask(TrainTask):
    metric = "mpjpe_mm"

    def __init__(self, lifter: str, train: PoseSet, val: PoseSet, augment: bool = True):
        if lifter not in DEFAULT_AVG:
            raise InputError(f"unknown lifter '{lifter}'; expected one of {', '.join(DEFAULT_AVG)}")
        self.name = f"lifter/{lifter}"
        self.lifter, self.train_source, self.mirror_augment = lifter, train.source, augment
        self.model = build_model("lifter", lifter)
        self.inputs = torch.from_numpy(train.keypoints)
        self.targets = torch.from_numpy(train.poses_3d)
        self.val = val
        self.fold = train.meta.get("fold")  # [K, N]: trained without fold K of N (posedeploy.training.folds)
        self.mirror2d, self.mirror3d = Mirror(2), Mirror(3)

    def identity(self) -> dict:
        return {"task": self.name, "data": self.train_source, "samples": len(self.inputs), "augment": self.mirror_augment}

    def _flips(self, n: int, gen: torch.Generator) -> torch.Tensor:
        return torch.rand(n, generator=gen) < 0.5 if self.mirror_augment else torch.zeros(n, dtype=torch.bool)

    def augment(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return torch.where(self._flips(len(x), gen)[:, None, None], self.mirror2d(x), x)

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        # Mirror a random half of the batch, 2D and 3D alike.
        flip = self._flips(len(x), gen).to(x.device)[:, None, None]
        x = torch.where(flip, self.mirror2d.to(x.device)(x), x)
        y = torch.where(flip, self.mirror3d.to(y.device)(y), y)
        return mpjpe_loss(model(x), y)

    def validate(self, model: nn.Module) -> float:
        pred = run_single(PipelineModule(model, None, alpha=1.0), self.val.keypoints)
        return mean_by_action(mpjpe(pred, self.val.poses_3d) * 1000, self.val.actions)[1]

    def checkpoint(self, model: nn.Module, summary: dict) -> Checkpoint:
        config = PipelineConfig(
            lifter=self.lifter, lifter_params=default_params("lifter", self.lifter), keypoints=self.train_source,
            training={"stage": "lifter", "val_source": self.val.source, "val_split": self.val.meta.get("split"),
                      "fold": self.fold, **summary},
        )  # fmt: skip
        return Checkpoint(config, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
