"""Supervised training of a single-hypothesis lifter: MPJPE on root-relative 3D, mirror
augmentation, validation by the mirror-averaged MPJPE per action (Protocol #1)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from posedeploy.data import PoseSet
from posedeploy.errors import InputError
from posedeploy.metrics import mean_by_action, mpjpe
from posedeploy.training.checkpoint import Checkpoint, PipelineConfig, load_checkpoint
from posedeploy.training.models import DEFAULT_AVG, build_model, default_params
from posedeploy.training.sampler import Mirror, PipelineModule, run_single
from posedeploy.training.trainer import TrainTask


@dataclass(frozen=True)
class StartingPoint:
    """A trained lifter checkpoint whose weights a new run starts from (fine-tuning, or a warm
    restart with a fresh optimizer and schedule), identified by its file's digest."""

    path: Path
    checkpoint: Checkpoint
    sha256: str

    @classmethod
    def read(cls, path: str | Path) -> "StartingPoint":
        path = Path(path)
        checkpoint = load_checkpoint(path)
        return cls(path, checkpoint, hashlib.sha256(path.read_bytes()).hexdigest())

    def check(self, lifter: str) -> None:
        """That this run's ``lifter`` can start from these weights."""
        config = self.checkpoint.config
        if config.lifter != lifter:
            raise InputError(f"--init {self.path} holds a '{config.lifter}' lifter; this run trains '{lifter}'")
        if config.lifter_params != default_params("lifter", lifter):
            raise InputError(f"--init {self.path}: its {lifter} has parameters {config.lifter_params}, this run "
                             f"builds {default_params('lifter', lifter)}")  # fmt: skip

    def load_into(self, model: nn.Module, lifter: str) -> None:
        self.check(lifter)
        model.load_state_dict(self.checkpoint.build_lifter().state_dict())

    def describe(self) -> dict:
        training = self.checkpoint.config.training
        return {"path": str(self.path), "sha256": self.sha256, "keypoints": self.checkpoint.config.keypoints,
                **{k: training[k] for k in ("epoch", "mpjpe_mm") if k in training}}  # fmt: skip


def mpjpe_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(pred - target, dim=-1).mean()


class LifterTask(TrainTask):
    metric = "mpjpe_mm"

    def __init__(self, lifter: str, train: PoseSet, val: PoseSet, augment: bool = True, init: StartingPoint | None = None):
        if lifter not in DEFAULT_AVG:
            raise InputError(f"unknown lifter '{lifter}'; expected one of {', '.join(DEFAULT_AVG)}")
        self.name = f"lifter/{lifter}"
        self.lifter, self.train_source, self.mirror_augment = lifter, train.source, augment
        self.model = build_model("lifter", lifter)
        self.init = init
        if init is not None:
            init.load_into(self.model, lifter)
        self.inputs = torch.from_numpy(train.keypoints)
        self.targets = torch.from_numpy(train.poses_3d)
        self.val = val
        self.fold = train.meta.get("fold")  # [K, N]: trained without fold K of N (posedeploy.training.folds)
        self.mirror2d, self.mirror3d = Mirror(2), Mirror(3)

    def identity(self) -> dict:
        identity = {"task": self.name, "data": self.train_source, "samples": len(self.inputs), "augment": self.mirror_augment}
        if self.init is not None:  # absent otherwise, so that states written before --init still resume
            identity["init"] = self.init.sha256
        return identity

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
                      "fold": self.fold, **({"init": self.init.describe()} if self.init else {}), **summary},
        )  # fmt: skip
        return Checkpoint(config, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
