"""``posedeploy train lifter`` and ``train avg`` as library functions: a frozen settings object (what a
recipe file in recipes/ holds, flags on top) in, the run's result out.

The rules of a run live here, not in the command line: each lifter's default hyper-parameters, what a
refit may not combine with, the ``--init`` / ``--resume`` identity checks, the distributed set-up,
and the join of 'train' and 'val' for a refit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from posedeploy.data import PoseSet, keypoints_for, load_dataset
from posedeploy.errors import CheckpointError, InputError

if TYPE_CHECKING:
    from posedeploy.training.checkpoint import Checkpoint
    from posedeploy.training.lifter_training import StartingPoint
    from posedeploy.training.trainer import FitSummary, TrainSettings

logger = logging.getLogger(__name__)


# Each lifter's official recipe (HTNet: main.py/opt.py; Modulated GCN: main_gcn.py), the learning
# rate's decay expressed per training sample so that it carries over to 10 Hz data.
class LifterDefaults(TypedDict):
    lr: float
    batch_size: int
    schedule: str
    clip_grad_norm: float | None


LIFTER_DEFAULTS: dict[str, LifterDefaults] = {
    "htnet": {"lr": 5e-4, "batch_size": 512, "schedule": "epoch", "clip_grad_norm": None},
    "mgcn_lw": {"lr": 1e-3, "batch_size": 64, "schedule": "samples", "clip_grad_norm": 1.0},
}


@dataclass(frozen=True)
class LifterRunSettings:
    """A lifter training run. None: the lifter's own default (:data:`LIFTER_DEFAULTS`)."""

    lifter: str = "mgcn_lw"
    data: str = "synthetic"  # a Human3.6M folder (VideoPose3D format) or 'synthetic'
    keypoints: str = "gt"
    out: Path = Path("runs/lifter")
    epochs: int = 30  # with resume: the total, including earlier ones
    batch_size: int | None = None  # summed over processes under torchrun
    lr: float | None = None
    schedule: str | None = None  # epoch, samples or cosine
    clip_grad_norm: float | None = None
    weight_decay: float = 0.0
    ema: float | None = None
    stride: int = 1
    val_stride: int = 1
    augment: bool = True
    input_noise: float = 0.0
    dropout: float = 0.0
    fold: str | None = None  # K/N: without the subjects of fold K of N (with refit: of 'train' and 'val' together)
    patience: int | None = None
    refit: bool = False  # 'train' and 'val' together, for exactly 'epochs', the last kept
    seed: int = 0
    resume: bool = False
    init: str | None = None  # a lifter checkpoint (file or shipped name) to start from
    device: str | None = None


@dataclass(frozen=True)
class AVGRunSettings:
    """An AVG training run on a trained lifter's per-joint errors."""

    checkpoint: Path = Path("runs/lifter/best.pt")  # the lifter's
    avg: str | None = None  # mlp or gcn (default: the lifter's PRPose pairing)
    alpha: float | None = None
    data: str = "synthetic"
    keypoints: str | None = None  # default: what the lifter was trained on
    out: Path = Path("runs/avg")
    epochs: int = 30
    batch_size: int = 512
    lr: float = 5e-4
    stride: int = 1
    val_stride: int = 1
    cache_dir: Path | None = None
    fold_lifters: tuple[Path, ...] = field(default_factory=tuple)
    patience: int | None = None
    refit: bool = False
    seed: int = 0
    resume: bool = False
    device: str | None = None


@dataclass(frozen=True)
class TrainingResult:
    metric: str  # mpjpe_mm (lifter) or mse (AVG)
    best: float  # the kept epoch's validation metric (in-sample for a refit)
    best_epoch: int
    epochs: int
    checkpoint: Path  # best.pt
    refit: bool
    history: list[dict[str, float]] = field(default_factory=list, repr=False)
    val_in_sample: bool = False  # the validation data among the training data (a refit, unless its fold left it out)
    main: bool = True  # False in the other processes of a torchrun: the main one writes and reports

    def describe(self, digits: int) -> str:
        which = f"last (refit; {'in-sample' if self.val_in_sample else 'held out'})" if self.refit else "best"
        return f"{which} {self.metric} {self.best:.{digits}f} at epoch {self.best_epoch}: {self.checkpoint}"


def _check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"seed must be a whole number >= 0, got {seed!r}")


def _check_refit(refit: bool, patience: int | None, fold_lifters: tuple[Path, ...] = ()) -> None:
    if refit and (patience is not None or fold_lifters):
        flag = "--patience" if patience is not None else "--fold-lifter"
        raise InputError(
            f"--refit trains on every training subject for a fixed number of epochs; it takes no {flag} "
            f"(choose the epochs on a run without --refit)"
        )


def _joined_with_val(
    train: PoseSet, val: PoseSet | None, data: str, keypoints: str, stride: int, val_stride: int
) -> PoseSet:
    """A refit's training data: 'train' and 'val' together, both at the training stride (``val``: the
    'val' split already loaded at ``val_stride``, or None)."""
    if val is None or val_stride != stride:
        val = load_dataset(data, "val", keypoints, stride=stride)
    return train.join(val)


def lifter_training_set(
    data: str, keypoints: str, stride: int, fold: list[int] | None, refit: bool, val: PoseSet | None, val_stride: int
) -> PoseSet:
    """What a lifter run trains on: 'train' at its stride, joined with 'val' (``val``, loaded at
    ``val_stride``, or None to load it only when needed) for a refit, without its held-out fold
    (``fold``: K, N). A refit's folds deal the subjects of both splits, so that every one of them is
    held out by one fold run (the calibration's out-of-sample errors, posedeploy/reference/calibrate.py);
    a run's folds deal those of 'train'."""
    from posedeploy.training.folds import without_fold

    train = load_dataset(data, "train", keypoints, stride=stride)
    if refit:
        train = _joined_with_val(train, val, data, keypoints, stride, val_stride)
    return without_fold(train, fold) if fold else train


def _train_settings(s: LifterRunSettings) -> TrainSettings:
    from posedeploy.training.trainer import TrainSettings

    defaults = LIFTER_DEFAULTS.get(s.lifter, LIFTER_DEFAULTS["mgcn_lw"])
    return TrainSettings(
        epochs=s.epochs,
        batch_size=defaults["batch_size"] if s.batch_size is None else s.batch_size,
        lr=defaults["lr"] if s.lr is None else s.lr,
        seed=s.seed,
        patience=s.patience,
        schedule=defaults["schedule"] if s.schedule is None else s.schedule,
        clip_grad_norm=defaults["clip_grad_norm"] if s.clip_grad_norm is None else s.clip_grad_norm,
        weight_decay=s.weight_decay,
        ema=s.ema,
    )


def _starting_point(
    s: LifterRunSettings, held_out: list[int] | None
) -> tuple[StartingPoint | None, dict[str, Any] | None]:
    """The checkpoint --init starts from (checked before minutes of data loading), and its record in
    the run's identity. A resumed run takes it from its last.pt, so --init is optional then, and must agree."""
    from posedeploy.assets import resolve_checkpoint
    from posedeploy.training.lifter_training import StartingPoint
    from posedeploy.training.trainer import saved_identity

    start: StartingPoint | None
    start, record = None, saved_identity(s.out).get("init") if s.resume else None
    if s.init is not None:
        start = StartingPoint.read(resolve_checkpoint(s.init), label=s.init)
        start.check(s.lifter, held_out, s.out)
        if s.resume and (record or {}).get("sha256") != start.sha256:
            was = f"started from {record['path']}" if record else "not started from a checkpoint"
            raise CheckpointError(
                f"the run in {s.out} was {was}, not from --init {s.init} (another file, or changed "
                f"since): resume it without --init"
            )
        record = record or start.describe()
    return start, record


def train_lifter(s: LifterRunSettings) -> TrainingResult:
    """Train a single-hypothesis lifter (MPJPE loss, mirror augmentation) on the 'train' split, choosing
    the best epoch on the held-out 'val' split (Human3.6M: train S1 S5 S6 S7, val S8)."""
    import torch

    from posedeploy.training import distributed
    from posedeploy.training.device import resolve_device
    from posedeploy.training.folds import parse_fold
    from posedeploy.training.lifter_training import LifterTask, check_regularisers
    from posedeploy.training.trainer import fit

    _check_seed(s.seed)
    settings = _train_settings(s)
    settings.validate()  # before minutes of data loading
    check_regularisers(s.lifter, s.input_noise, s.dropout)
    _check_refit(s.refit, s.patience)
    held_out = list(parse_fold(s.fold)) if s.fold else None
    start, start_record = _starting_point(s, held_out)
    ctx = distributed.setup(resolve_device(s.device))
    try:
        val = load_dataset(s.data, "val", s.keypoints, stride=s.val_stride)
        train = lifter_training_set(s.data, s.keypoints, s.stride, held_out, s.refit, val, s.val_stride)
        torch.manual_seed(s.seed)
        task = LifterTask(
            s.lifter,
            train,
            val,
            augment=s.augment,
            init=start_record,
            input_noise=s.input_noise,
            dropout=s.dropout,
            refit=s.refit,
        )
        if start is not None and not s.resume:
            start.load_into(task.model)
        if ctx.is_main:
            logger.info(f"training {s.lifter} on {len(train):,} samples ({train.source}), validating on {len(val):,}")
        summary = fit(task, settings, s.out, ctx, resume=s.resume)
    finally:
        distributed.teardown(ctx)
    return _result(summary, s.out, s.refit, ctx.is_main)


def _result(summary: FitSummary, out: Path, refit: bool, main: bool) -> TrainingResult:
    return TrainingResult(
        metric=summary["metric"],
        best=summary["best"],
        best_epoch=summary["best_epoch"],
        epochs=summary["epochs"],
        checkpoint=Path(out) / "best.pt",
        refit=refit,
        history=summary["history"],
        val_in_sample=summary["val_in_sample"],
        main=main,
    )


def train_avg(s: AVGRunSettings) -> TrainingResult:
    """Train the AVG model on the frozen lifter's per-joint errors (weak supervision, cached
    pseudo-labels), choosing the best epoch on the held-out 'val' split."""
    import torch

    from posedeploy.assets import resolve_checkpoint
    from posedeploy.training import distributed
    from posedeploy.training.avg_training import AVGTask
    from posedeploy.training.checkpoint import load_checkpoint
    from posedeploy.training.device import resolve_device
    from posedeploy.training.folds import without_fold
    from posedeploy.training.pseudo_labels import default_cache_dir
    from posedeploy.training.trainer import TrainSettings, fit

    lifter_path, lifter_ckpt = _avg_run_lifter(s)
    lifter_refitted = bool(lifter_ckpt.config.training.get("refit"))
    settings = TrainSettings(epochs=s.epochs, batch_size=s.batch_size, lr=s.lr, seed=s.seed, patience=s.patience)
    settings.validate()
    ctx = distributed.setup(resolve_device(s.device))
    try:
        if lifter_refitted and not s.refit and ctx.is_main:
            logger.warning(
                f"{lifter_path} was refitted with 'val' among its training data: the 'val' pseudo-labels are "
                f"in-sample errors, so they cannot choose this AVG model's epoch fairly; fix --epochs on a "
                f"lifter trained without 'val' and pass --refit"
            )
        keypoints = s.keypoints or keypoints_for(s.data, lifter_ckpt.config.keypoints)
        train = load_dataset(s.data, "train", keypoints, stride=s.stride)
        val = load_dataset(s.data, "val", keypoints, stride=s.val_stride)
        if s.refit:
            train = _joined_with_val(train, val, s.data, keypoints, s.stride, s.val_stride)
            if lifter_ckpt.config.training.get("fold"):
                # The errors of the subjects the lifter was refitted without must stay out of sample.
                train = without_fold(train, lifter_ckpt.config.training["fold"])
        torch.manual_seed(s.seed)
        folds = [load_checkpoint(resolve_checkpoint(f)) for f in s.fold_lifters]
        task = AVGTask(
            lifter_ckpt,
            train,
            val,
            avg=s.avg,
            alpha=s.alpha,
            cache_dir=s.cache_dir or default_cache_dir(),
            device=ctx.device,
            fold_lifters=folds,
            refit=s.refit,
        )
        if ctx.is_main:
            logger.info(
                f"training AVG '{task.config.avg}' on {len(task.inputs):,} pseudo-labels ({train.source}; "
                f"errors of {task.pseudo_labels['from']})"
            )
        summary = fit(task, settings, s.out, ctx, resume=s.resume)
    finally:
        distributed.teardown(ctx)
    return _result(summary, s.out, s.refit, ctx.is_main)


def _avg_run_lifter(s: AVGRunSettings) -> tuple[Path, Checkpoint]:
    """The lifter an AVG run trains on (path and checkpoint), after the run's settings are checked against it."""
    from posedeploy.assets import resolve_checkpoint
    from posedeploy.training.checkpoint import load_checkpoint

    _check_seed(s.seed)
    lifter_path = resolve_checkpoint(s.checkpoint)
    if lifter_path.resolve().parent == Path(s.out).resolve():
        raise InputError(
            f"--out {s.out} is the folder of the lifter checkpoint {lifter_path}: training there would "
            f"replace it; write the AVG run to its own folder"
        )
    _check_refit(s.refit, s.patience, s.fold_lifters)
    lifter_ckpt = load_checkpoint(lifter_path)
    if s.refit and not lifter_ckpt.config.training.get("refit"):
        raise InputError(
            f"--refit is for a lifter trained with --refit; {lifter_path} was not: its 'val' errors are "
            f"held out, unlike its 'train' ones. Train without --refit and choose the epoch on 'val'"
        )
    return lifter_path, lifter_ckpt
