"""The training loop shared by the lifter and the AVG model.

Adam (amsgrad; with ``weight_decay`` > 0 the decay is decoupled from the gradient, as in AdamW,
on every parameter) with one of three learning-rate schedules: ``epoch`` (HTNet and PRPose's AVG): the
rate is multiplied by ``lr_decay`` after every epoch and by ``lr_decay_large`` instead after every
``large_decay_every``-th; ``samples`` (Modulated GCN): a staircase, multiplied by ``sample_decay``
every ``decay_every_samples`` training samples (the official 0.96 per 100,000 steps of 64), so
that the rate per sample seen does not depend on the batch size or on the dataset's frame rate;
``cosine``: half a cosine from ``lr`` down to ``cosine_floor`` x ``lr`` over the run's ``epochs``,
for data too small for the staircase to decay within a run (10 Hz Human3.6M).
Optionally the gradient norm is clipped, and an exponential moving average of the weights
(``ema``) is kept, which is then what is validated and written. After each
epoch the BatchNorm statistics are re-estimated with the epoch's final (or averaged) weights, the model is
validated, the best one (the last in a refit, which has no held-out data to choose with) is written
as a posedeploy checkpoint (``best.pt``)
and the whole training state as ``last.pt``, from which ``resume`` continues. Both files are
written atomically, so an interrupted run leaves the previous complete ones.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypedDict

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from posedeploy.errors import CheckpointError, InputError, TrainingError
from posedeploy.files import atomic_path, folder_lock
from posedeploy.progress import progress
from posedeploy.training.checkpoint import Checkpoint, safe_torch_load, save_checkpoint, save_torch
from posedeploy.training.distributed import Context, all_reduce_mean
from posedeploy.training.weight_average import WeightAverage

logger = logging.getLogger(__name__)

STATE_FORMAT = "posedeploy.training-state"
BEST, LAST, LOG = "best.pt", "last.pt", "log.jsonl"


@dataclass
class TrainSettings:
    epochs: int = 30
    batch_size: int = 256
    lr: float = 5e-4
    lr_decay: float = 0.95
    lr_decay_large: float = 0.5
    large_decay_every: int = 5
    schedule: str = "epoch"  # epoch | samples | cosine
    sample_decay: float = 0.96
    decay_every_samples: int = 6_400_000
    cosine_floor: float = 0.01
    clip_grad_norm: float | None = None
    weight_decay: float = 0.0
    ema: float | None = None  # validate and keep an exponential moving average of the weights with this decay per step
    seed: int = 0
    patience: int | None = None  # stop after this many epochs without a better validation metric

    def validate(self) -> None:
        if self.epochs < 1:
            raise InputError(f"epochs must be >= 1, got {self.epochs}")
        if self.patience is not None and self.patience < 1:
            raise InputError(f"patience must be >= 1 epoch, got {self.patience}")
        if self.batch_size < 1:
            raise InputError(f"batch size must be >= 1, got {self.batch_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise InputError(f"learning rate must be > 0, got {self.lr}")
        if self.schedule not in SCHEDULES:
            raise InputError(f"learning-rate schedule must be one of {', '.join(SCHEDULES)}, got '{self.schedule}'")
        if self.clip_grad_norm is not None and not self.clip_grad_norm > 0:
            raise InputError(f"gradient clipping norm must be > 0, got {self.clip_grad_norm}")
        if not (self.weight_decay >= 0 and self.lr * self.weight_decay < 1):
            # each step multiplies the weights by 1 - lr x decay: at 1 or more they vanish or flip sign
            raise InputError(
                f"weight decay must be >= 0 and below 1 / learning rate ({1 / self.lr:.3g}), got {self.weight_decay}"
            )
        if self.ema is not None and not 0 < self.ema < 1:
            raise InputError(f"weight-average decay (--ema) must be between 0 and 1 (e.g. 0.9998), got {self.ema}")

    def lr_at(self, epoch: int, samples_seen: int, samples_per_epoch: int) -> float:
        """The learning rate in (1-based) ``epoch`` after ``samples_seen`` training samples in all."""
        if self.schedule == "cosine":
            done = min(1.0, samples_seen / (self.epochs * samples_per_epoch))
            return self.lr * (self.cosine_floor + (1 - self.cosine_floor) * 0.5 * (1 + math.cos(math.pi * done)))
        if self.schedule == "samples":
            return self.lr * self.sample_decay ** (samples_seen // self.decay_every_samples)
        lr = self.lr
        for e in range(1, epoch):
            lr *= self.lr_decay_large if e % self.large_decay_every == 0 else self.lr_decay
        return lr


SCHEDULES = ("epoch", "samples", "cosine")
SETTINGS_BEFORE_THEY_EXISTED = {"weight_decay": 0.0, "ema": None}


class TrainTask(ABC):
    """What the loop needs to know about one model's training."""

    name: str  # written into last.pt so that a resume cannot mix two tasks
    model: nn.Module
    inputs: torch.Tensor  # (N, ...) training inputs, indexed on the first axis
    targets: torch.Tensor
    metric: str  # the validation metric's name, lower is better

    @property
    def selects(self) -> bool:
        """Whether validation chooses the epoch written as best.pt. A refit (the validation data among the
        training data) has nothing to choose with: every epoch is written, so best.pt is the last."""
        return True

    # Whether the validation subjects are among the training ones (a refit's fold run may leave them out).
    val_seen: bool = True

    @property
    def val_in_sample(self) -> bool:
        """Whether the validation data is among the training data (its metric then judges nothing)."""
        return not self.selects and self.val_seen

    @abstractmethod
    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Loss of one batch (augmentation, if any, happens here)."""

    def augment(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """The inputs as training sees them, less any noise added for regularisation (used to
        re-estimate BatchNorm statistics for clean inputs)."""
        return x

    @abstractmethod
    def validate(self, model: nn.Module) -> float:
        """Validation metric of the current weights (the model is in eval mode)."""

    @abstractmethod
    def checkpoint(self, model: nn.Module, summary: dict[str, float]) -> Checkpoint:
        """The deployable checkpoint of these weights."""

    def identity(self) -> dict[str, Any]:
        """What must not change between a run and its resume."""
        return {"task": self.name}


RECALIBRATION_BATCHES = 200


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, task: TrainTask, batch_size: int, gen: torch.Generator) -> None:
    """Re-estimate every BatchNorm's statistics as a plain average over training batches, with
    the weights as they are now ("precise BN").

    The running averages kept during training lag behind weights that are still moving; on the
    graph lifters here that lag cost 15-20 mm of validation MPJPE, which this pass removes.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    was_training = model.training
    # Only the BatchNorms in training mode: dropout stays off, so that the statistics are those of
    # the network that is evaluated (with dropout on, their variance would be inflated).
    model.eval()
    for m in norms:
        m.train()
    device = next(model.parameters()).device
    order = torch.randperm(len(task.inputs), generator=gen)[: RECALIBRATION_BATCHES * batch_size]
    for start in range(0, len(order), batch_size):
        model(task.augment(task.inputs[order[start : start + batch_size]], gen).to(device))
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    model.train(was_training)


def _load_state(out_dir: Path) -> tuple[Path, dict[str, Any]]:
    """``out_dir``'s last.pt, which ``resume`` continues from."""
    path = out_dir / LAST
    if not path.is_file():
        raise CheckpointError(f"nothing to resume: {path} does not exist")
    state = safe_torch_load(path, "training state")
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise CheckpointError(f"cannot resume from {path}: not a posedeploy training state")
    wrong = [key for key, kind in STATE_FIELDS.items() if not isinstance(state.get(key), kind)]
    if wrong:
        raise CheckpointError(
            f"cannot resume from {path}: the training state is damaged or incomplete "
            f"({', '.join(wrong)} missing or of the wrong type); start the run again without --resume"
        )
    return path, state


# What a training state must hold for a resume (anything else in it is optional).
STATE_FIELDS: dict[str, type | tuple[type, ...]] = {
    "identity": dict,
    "settings": dict,
    "epoch": int,
    "model": dict,
    "optimizer": dict,
    "best": (int, float),
    "best_epoch": int,
    "history": list,
}


def saved_identity(out_dir: str | Path) -> dict[str, Any]:
    """The identity of the run in ``out_dir`` (what ``resume`` will hold it to)."""
    identity: dict[str, Any] = _load_state(Path(out_dir))[1]["identity"]  # a dict: checked by _load_state
    return identity


def _read_state(out_dir: Path, task: TrainTask, settings: TrainSettings) -> dict[str, Any]:
    path, state = _load_state(out_dir)
    saved, wanted = state["identity"], task.identity()
    if saved != wanted:
        diff = ", ".join(
            f"{k} {saved.get(k, '(none)')} -> {wanted.get(k, '(none)')}"
            for k in {**saved, **wanted}
            if saved.get(k) != wanted.get(k)
        )
        raise CheckpointError(f"cannot resume from {path}: it trains something else ({diff})")
    # How long to train may change on resume, not how; a cosine schedule is shaped by its length.
    free = ("patience",) if settings.schedule == "cosine" else ("epochs", "patience")
    wanted = {k: v for k, v in asdict(settings).items() if k not in free}
    # A setting added after the state was written had no effect on it: take it as agreed, unless
    # the state's run is known to have had a value for it (no weight decay before there was one).
    saved = {k: state["settings"].get(k, SETTINGS_BEFORE_THEY_EXISTED.get(k, v)) for k, v in wanted.items()}
    if saved != wanted:
        diff = ", ".join(f"{k} {saved[k]} -> {wanted[k]}" for k in wanted if saved[k] != wanted[k])
        allowed = " and ".join(f"--{k}" for k in free)
        raise CheckpointError(f"cannot resume from {path}: settings differ ({diff}); only {allowed} may change")
    return state


def _write_log(out_dir: Path, history: list[dict[str, float]]) -> None:
    """log.jsonl: one line per epoch, rewritten whole (and atomically) from the run's history."""
    with atomic_path(out_dir / LOG) as tmp:
        tmp.write_text("".join(json.dumps(record) + "\n" for record in history))


class FitSummary(TypedDict):
    """What :func:`fit` returns: the kept epoch, its metric, and the record of every epoch."""

    best: float
    best_epoch: int
    metric: str
    epochs: int
    history: list[dict[str, float]]
    val_in_sample: bool


def fit(
    task: TrainTask, settings: TrainSettings, out_dir: str | Path, ctx: Context, resume: bool = False
) -> FitSummary:
    """Train ``task.model``; returns a summary (best metric and epoch, epochs run)."""
    settings.validate()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with folder_lock(out_dir, "train") if ctx.is_main else contextlib.nullcontext():
        return _fit(task, settings, out_dir, ctx, resume)


def _fit(task: TrainTask, settings: TrainSettings, out_dir: Path, ctx: Context, resume: bool) -> FitSummary:
    run = _Run(task, settings, out_dir, ctx)
    start_epoch = run.resume() if resume else 1
    if not resume and (out_dir / LAST).exists() and ctx.is_main:
        logger.info(f"note: {out_dir} holds an earlier run; it will be overwritten (use --resume to continue it)")
    if start_epoch > settings.epochs and ctx.is_main:
        logger.info(f"{task.name}: already trained for {start_epoch - 1} epochs (asked for {settings.epochs})")
    for epoch in range(start_epoch, settings.epochs + 1):
        started = time.monotonic()
        lr, train_loss, gen = run.train_epoch(epoch)
        if ctx.is_main:
            run.judge_and_save(epoch, lr, train_loss, gen, started)
        ctx.barrier()
        if settings.patience is not None and epoch - run.best_epoch >= settings.patience:
            if ctx.is_main:
                logger.info(
                    f"{task.name}: no better {task.metric} for {settings.patience} epochs; stopping at epoch {epoch}"
                )
            break
    return {
        "best": run.best,
        "best_epoch": run.best_epoch,
        "metric": task.metric,
        "epochs": len(run.history),
        "history": run.history,
        "val_in_sample": task.val_in_sample,
    }


class _Run:
    """One training run's state: the model, its optimizer and weight average, and the record so far."""

    best: float
    best_epoch: int
    history: list[dict[str, float]]  # one record per epoch

    def __init__(self, task: TrainTask, settings: TrainSettings, out_dir: Path, ctx: Context):
        self.task, self.settings, self.out_dir, self.ctx = task, settings, out_dir, ctx
        self.model = task.model.to(ctx.device)
        # AdamW with no decay takes exactly Adam's steps, so runs without --weight-decay are unchanged.
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=settings.lr, amsgrad=True, weight_decay=settings.weight_decay
        )
        self.average = WeightAverage(self.model, settings.ema) if settings.ema is not None else None
        self.best, self.best_epoch, self.history = math.inf, 0, []
        self.trained = DistributedDataParallel(self.model) if ctx.distributed else self.model

    def resume(self) -> int:
        """Restore the run from last.pt; the epoch to continue with."""
        state = _read_state(self.out_dir, self.task, self.settings)
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:  # the weights of another model
            first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(
                f"cannot resume from {self.out_dir / LAST}: its weights do not fit this {self.task.name} "
                f"model ({first}); start the run again without --resume"
            ) from None
        if self.average is not None:
            self.average.load_state_dict(state.get("ema"), self.model)
        self.best, self.best_epoch, self.history = state["best"], state["best_epoch"], state["history"]
        start: int = state["epoch"] + 1
        if self.ctx.is_main:
            _write_log(self.out_dir, self.history)  # last.pt's history is the record: a kill after it lost no epoch
            logger.info(
                f"resuming {self.task.name} at epoch {start} "
                f"(best {self.task.metric} {self.best:.2f} at epoch {self.best_epoch})"
            )
        return start

    def train_epoch(self, epoch: int) -> tuple[float, float, torch.Generator]:
        """One pass over this process's share of the data; (its first learning rate, mean loss, generator)."""
        task, s, ctx = self.task, self.settings, self.ctx
        n = len(task.inputs)
        per_rank_batch = max(1, s.batch_size // ctx.world_size)
        lr = s.lr_at(epoch, (epoch - 1) * n, n)
        # Shuffle order and dropout are functions of (seed, epoch) alone: a resumed run repeats
        # exactly the epochs an uninterrupted one would have run.
        gen = torch.Generator().manual_seed(s.seed * 100_003 + epoch)
        torch.manual_seed(s.seed * 100_003 + epoch)
        order = torch.randperm(n, generator=gen)[ctx.rank :: ctx.world_size]
        self.trained.train()
        total_loss, seen = 0.0, 0
        batches = range(0, len(order), per_rank_batch)
        with progress(len(batches), f"epoch {epoch}/{s.epochs}", enabled=ctx.is_main) as advance:
            for start in batches:
                idx = order[start : start + per_rank_batch]
                for group in self.optimizer.param_groups:
                    group["lr"] = s.lr_at(epoch, (epoch - 1) * n + start * ctx.world_size, n)
                loss = task.loss(self.trained, task.inputs[idx].to(ctx.device), task.targets[idx].to(ctx.device), gen)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]  # torch's Tensor.backward has no annotations
                if s.clip_grad_norm is not None:
                    nn.utils.clip_grad_norm_(self.model.parameters(), s.clip_grad_norm)
                self.optimizer.step()
                if self.average is not None:
                    self.average.update(self.model)
                total_loss += loss.item() * len(idx)
                seen += len(idx)
                advance(1)
        train_loss = all_reduce_mean(total_loss / max(1, seen), ctx)
        if not math.isfinite(train_loss):
            raise TrainingError(
                f"{task.name} diverged in epoch {epoch} (training loss {train_loss}); nothing of this epoch was "
                f"written — lower the learning rate (now {lr:.2g}), or resume from {self.out_dir / LAST} if it exists"
            )
        return lr, train_loss, gen

    def judge_and_save(self, epoch: int, lr: float, train_loss: float, gen: torch.Generator, started: float) -> None:
        """Validate the epoch's weights (the running average, where there is one); write best.pt when they
        are the best so far, last.pt and the log always."""
        task = self.task
        judged = self.average.averaged(self.model) if self.average is not None else self.model
        recalibrate_batchnorm(judged, task, self.settings.batch_size, gen)
        judged.eval()
        with torch.no_grad():
            metric = task.validate(judged)
        if not math.isfinite(metric):
            raise TrainingError(
                f"{task.name}: validation {task.metric} is {metric} after epoch {epoch}; "
                "nothing of this epoch was written"
            )
        improved = metric < self.best or not task.selects
        if improved:
            self.best, self.best_epoch = metric, epoch
            summary = {"epoch": epoch, task.metric: metric, "train_loss": train_loss}
            save_checkpoint(self.out_dir / BEST, task.checkpoint(judged, summary))
        seconds = round(time.monotonic() - started, 1)
        self.history.append(
            {"epoch": epoch, "lr": lr, "train_loss": train_loss, task.metric: metric, "seconds": seconds}
        )
        self._save_state(epoch)
        # A task that does not select keeps every epoch: neither a star nor a "best" would mean anything.
        kept = (
            f"{' *' if improved else ''}  (best {self.best:.2f} @ {self.best_epoch})"
            if task.selects
            else (" (in-sample)" if task.val_in_sample else " (held out)")
        )
        logger.info(
            f"epoch {epoch}/{self.settings.epochs}  lr {lr:.2e}  train loss {train_loss:.4f}  "
            f"val {task.metric} {metric:.2f}{kept}  {seconds:.0f} s"
        )

    def _save_state(self, epoch: int) -> None:
        state = {
            "format": STATE_FORMAT,
            "identity": self.task.identity(),
            "settings": asdict(self.settings),
            "epoch": epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "ema": self.average.state_dict() if self.average is not None else None,
            "best": self.best,
            "best_epoch": self.best_epoch,
            "history": self.history,
        }
        save_torch(state, self.out_dir / LAST)
        _write_log(self.out_dir, self.history)
