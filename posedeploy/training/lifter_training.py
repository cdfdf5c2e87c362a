"""Supervised training of a single-hypothesis lifter: MPJPE on root-relative 3D, mirror
augmentation (optionally Gaussian jitter of the 2D input and dropout in a graph lifter), validation
by the mirror-averaged MPJPE per action (Protocol #1)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from posedeploy.data import PoseSet
from posedeploy.errors import CheckpointError, InputError
from posedeploy.files import sha256_file
from posedeploy.metrics import mean_by_action, mpjpe
from posedeploy.reference.sampler import Mirror, PipelineModule, run_single
from posedeploy.training.checkpoint import Checkpoint, PipelineConfig, load_checkpoint
from posedeploy.training.models import DEFAULT_AVG, build_model, default_params
from posedeploy.training.models.graph_conv import set_dropout
from posedeploy.training.trainer import LAST, TrainTask


@dataclass(frozen=True)
class StartingPoint:
    """A trained lifter checkpoint whose weights a new run starts from (fine-tuning, or a warm
    restart with a fresh optimizer and schedule), identified by its file's digest."""

    path: Path
    label: str  # as the user named it: a file, or a shipped checkpoint's name
    checkpoint: Checkpoint
    sha256: str

    @classmethod
    def read(cls, path: str | Path, label: str | None = None) -> StartingPoint:
        path = Path(path)
        if path.name == LAST:
            raise CheckpointError(
                f"--init {path} is a training state: pass the run's best.pt, or continue the run with --resume"
            )
        if not path.is_file():
            raise CheckpointError(f"checkpoint not found: {path}")
        digest = sha256_file(path)
        checkpoint = load_checkpoint(path)
        if sha256_file(path) != digest:  # replaced while it was read: the digest would not name these weights
            raise CheckpointError(f"{path} changed while it was read; try again once it is no longer being written")
        return cls(path, label or str(path), checkpoint, digest)

    def load_into(self, model: nn.Module) -> None:
        model.load_state_dict(self.checkpoint.build_lifter().state_dict())

    def check(self, lifter: str, fold: list[int] | None, out_dir: Path | None = None) -> None:
        """That a run of ``lifter`` (without ``fold``, writing to ``out_dir``) can start here."""
        config = self.checkpoint.config
        if config.lifter != lifter:
            raise CheckpointError(
                f"--init {self.label} holds a '{config.lifter}' lifter; this run trains '{lifter}' "
                f"(pass --lifter {config.lifter})"
            )
        if config.lifter_params != default_params("lifter", lifter):
            raise CheckpointError(
                f"--init {self.label}: its {lifter} has parameters {config.lifter_params}, this run "
                f"builds {default_params('lifter', lifter)}"
            )
        # A fold lifter's errors count as held-out only if no weights it started from saw that fold.
        started_without = config.training.get("fold")
        if fold is not None and (started_without is None or list(started_without) != list(fold)):
            seen = (
                "every training subject"
                if started_without is None
                else f"all but fold {started_without[0]}/{started_without[1]}"
            )
            raise CheckpointError(
                f"--init {self.label} was trained on {seen}: a run without fold {fold[0]}/{fold[1]} "
                f"started from it has seen that fold"
            )
        if out_dir is not None and self.path.resolve().parent == Path(out_dir).resolve():
            raise InputError(
                f"--init {self.label} is in --out {out_dir}, where this run writes its best.pt: copy it elsewhere first"
            )

    def describe(self) -> dict[str, Any]:
        """The record a run keeps of where it started (in its identity and its checkpoints)."""
        config = self.checkpoint.config
        return {
            "path": self.label,
            "sha256": self.sha256,
            "keypoints": config.keypoints,
            "fold": config.training.get("fold"),
            "weights": self.checkpoint.weights,
            **{k: config.training[k] for k in ("epoch", "mpjpe_mm") if k in config.training},
        }


# The lifters built of graph convolution blocks, which --dropout sets (HTNet has its own dropout).
GRAPH_LIFTERS = ("mgcn_lw",)


def check_regularisers(lifter: str, input_noise: float, dropout: float) -> None:
    """That ``input_noise`` and ``dropout`` (see ``LifterTask``) are usable for ``lifter``."""
    if not 0 <= input_noise < 1:  # also rejects NaN
        raise InputError(
            f"input noise must be >= 0 and < 1 (normalised screen units; 0.002 = 1 px of a 1000-px "
            f"image), got {input_noise}"
        )
    if not 0 <= dropout < 1:
        raise InputError(f"dropout must be >= 0 and < 1, got {dropout}")
    if dropout and lifter not in GRAPH_LIFTERS:
        raise InputError(
            f"--dropout applies to the graph-convolution lifters ({', '.join(GRAPH_LIFTERS)}); "
            f"{lifter} has its own dropout in its model definition"
        )


def mpjpe_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    loss: torch.Tensor = torch.linalg.vector_norm(pred - target, dim=-1).mean()
    return loss


class LifterTask(TrainTask):
    metric = "mpjpe_mm"

    def __init__(
        self,
        lifter: str,
        train: PoseSet,
        val: PoseSet,
        augment: bool = True,
        init: dict[str, Any] | None = None,
        input_noise: float = 0.0,
        dropout: float = 0.0,
        refit: bool = False,
    ):
        """``init``: the record (``StartingPoint.describe``) of the checkpoint the run started from; its
        weights are loaded by the caller, and not at all when the run resumes. ``input_noise``: the
        standard deviation of Gaussian jitter added to every training 2D coordinate, in normalised
        screen units (0.002 is 1 px of a 1000-px-wide image). ``dropout``: the probability of
        dropping a hidden feature in each graph convolution block while training (mgcn_lw).
        ``refit``: ``val`` is part of ``train`` (the final model, its epoch count chosen before), so
        its error is only reported and every epoch is written."""
        if lifter not in DEFAULT_AVG:
            raise InputError(f"unknown lifter '{lifter}'; expected one of {', '.join(DEFAULT_AVG)}")
        check_regularisers(lifter, input_noise, dropout)
        self.name = f"lifter/{lifter}"
        self.lifter, self.train_source, self.mirror_augment = lifter, train.source, augment
        self.model = build_model("lifter", lifter)
        self.input_noise, self.dropout = input_noise, dropout
        self.refit = refit
        set_dropout(self.model, dropout)
        self.init = init
        self.inputs = torch.from_numpy(train.keypoints)
        self.targets = torch.from_numpy(train.poses_3d)
        self.val = val
        self.train_split = train.meta.get("split")
        self.val_seen = train.shares_subjects(val)
        self.fold = train.meta.get("fold")  # [K, N]: trained without fold K of N (posedeploy.training.folds)
        self.mirror2d, self.mirror3d = Mirror(2), Mirror(3)

    def identity(self) -> dict[str, Any]:
        identity = {
            "task": self.name,
            "data": self.train_source,
            "samples": len(self.inputs),
            "augment": self.mirror_augment,
        }
        # Absent when unused, so that states written before these options existed still resume.
        if self.init is not None:
            identity["init"] = self.init
        return {**identity, **self._choices()}

    @property
    def selects(self) -> bool:
        return not self.refit

    def _choices(self) -> dict[str, float | bool]:
        """The optional training choices this run made (none: empty)."""
        return {
            k: v for k, v in (("input_noise", self.input_noise), ("dropout", self.dropout), ("refit", self.refit)) if v
        }

    def _flips(self, n: int, gen: torch.Generator) -> torch.Tensor:
        return torch.rand(n, generator=gen) < 0.5 if self.mirror_augment else torch.zeros(n, dtype=torch.bool)

    def augment(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return torch.where(self._flips(len(x), gen)[:, None, None], self.mirror2d(x), x)

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        # Mirror a random half of the batch, 2D and 3D alike; jitter the 2D.
        flip = self._flips(len(x), gen).to(x.device)[:, None, None]
        x = torch.where(flip, self.mirror2d.to(x.device)(x), x)
        if self.input_noise:
            x = x + self.input_noise * torch.randn(x.shape, generator=gen).to(x.device)
        y = torch.where(flip, self.mirror3d.to(y.device)(y), y)
        return mpjpe_loss(model(x), y)

    def validate(self, model: nn.Module) -> float:
        pred = run_single(PipelineModule(model, None, alpha=1.0), self.val.keypoints)
        return mean_by_action(mpjpe(pred, self.val.poses_3d) * 1000, self.val.actions)[1]

    def checkpoint(self, model: nn.Module, summary: dict[str, float]) -> Checkpoint:
        config = PipelineConfig(
            lifter=self.lifter,
            lifter_params=default_params("lifter", self.lifter),
            keypoints=self.train_source,
            training={
                "stage": "lifter",
                "val_source": self.val.source,
                "val_split": self.val.meta.get("split"),
                "fold": self.fold,
                "samples": len(self.inputs),
                **({"init": self.init} if self.init else {}),
                **self._choices(),
                **({"train_split": self.train_split} if self.train_split else {}),
                **summary,
            },
        )
        return Checkpoint(config, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
