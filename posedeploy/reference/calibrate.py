"""``posedeploy calibrate``: fit the calibration of a checkpoint's spread on a validation split and
write a copy of the checkpoint that carries it (export puts it in the manifest; the reference and
every runtime backend apply it alike).

The calibration is fitted at the checkpoint's alpha and noise rule, at S hypotheses, on the raw
spread and the true joint errors of the mean pose (posedeploy/uncertainty.py). Its form (one scale,
one scale per joint, or a floor and a scale per joint) is chosen by held-out ECE within each quarter
of the joints ordered by spread: fitted on every other recording of the split (all its cameras), judged on the rest,
both ways round.

A refitted checkpoint has no held-out split: its calibration is either carried from its recipe's run
without 'val' (``carry_from``), or fitted on fold runs (``folds``): the refit's recipe trained once
without each subject of 'train' and 'val' (``train lifter --refit --fold K/N``, then its AVG model),
every subject lifted by the fold run that never saw it, the out-of-sample errors of all pooled.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from posedeploy.errors import InputError
from posedeploy.uncertainty import AUTO, FORMS, Calibration, fit_form

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CalibrateSettings:
    out: Path  # the calibrated checkpoint (a copy; the input is never changed)
    checkpoint: str | Path | None = None  # a file or a shipped name; None: the default
    data: str = "synthetic"
    keypoints: str | None = None  # default: what the checkpoint was trained on
    split: str = "val"  # never 'test': the calibration is a choice
    hypotheses: int = 200  # S the calibration is fitted at
    alpha: float | None = None  # the noise scale to fit at and write into the copy (None: the checkpoint's)
    recommended_hypotheses: int | None = None  # the S users need, recorded with it (None: the S above)
    form: str = AUTO  # one of uncertainty.FORMS, or auto (held-out conditional ECE)
    draws: str = "random"
    carry_from: str | Path | None = None  # take this checkpoint's calibration instead of fitting one
    # Fit on these fold runs (lifter + AVG, one per fold of one K/N, each refitted without its fold)
    # instead of on ``split``: each subject of 'train' and 'val' lifted by the run that never saw it.
    folds: tuple[str | Path, ...] = ()
    # With carry_from or folds: the refit's expected error over that of the runs the calibration was
    # fitted with (posedeploy/reference/learning_curve.py); the spread is scaled by it. None: 1.
    error_ratio: float | None = None
    stride: int = 1
    seed: int = 0
    max_poses: int | None = None
    device: str | None = None


@dataclass(frozen=True)
class CalibrateResult:
    out: Path
    calibration: Calibration
    samples: int
    held_out: dict[str, dict[str, float]]  # form -> held-out ECE, conditional ECE, AUSE (empty: the form was given)

    def describe(self) -> str:
        c = self.calibration
        lines = [
            f"calibrated on {c.fitted_on.get('data')} ({self.samples:,} samples, S={c.fitted_on.get('hypotheses')}): "
            f"form '{c.form}', radius(0.5) = {c.factor(0.5):.3f} x spread, radius(0.9) = {c.factor(0.9):.3f} x spread"
        ]
        lines += [
            f"  {form:<13} held out: ECE {v['ece']:.4f}, by spread {v['conditional_ece']:.4f}, AUSE {v['ause']:.4f}"
            + ("  <- chosen" if form == c.form else "")
            for form, v in self.held_out.items()
        ]
        ratio = c.fitted_on.get("error_ratio")
        scaled = f", its spread scaled by the error ratio {ratio:.4f}" if ratio is not None else ""
        if "carried_from" in c.fitted_on:
            lines.append(f"  carried from {c.fitted_on['carried_from']}{scaled}")
        elif "folds" in c.fitted_on:
            runs = len(c.fitted_on["folds"])
            lines.append(f"  fitted on {runs} fold runs, each subject by the one without it{scaled}")
        lines.append(f"wrote {self.out}")
        return "\n".join(lines)


def raw_spread_and_errors(
    pipeline: Any, data: Any, hypotheses: int, seed: int, max_poses: int | None, draws: str
) -> tuple[np.ndarray, np.ndarray]:
    """The raw spread and the mean pose's joint errors (N, 17), metres, of a reference run on ``data``."""
    from posedeploy import metrics
    from posedeploy.reference.sampler import run_reference

    result = run_reference(
        pipeline,
        data.keypoints,
        hypotheses=hypotheses,
        seed=seed,
        max_poses=max_poses,
        keep_hypotheses=False,
        draws=draws,
    )
    result.check_finite()
    return result.spread.astype(np.float64), metrics.joint_errors(result.pose.astype(np.float64), data.poses_3d)


def _checked(s: CalibrateSettings) -> tuple[int, int]:
    """The settings checked before any work: S to fit at, and the S to recommend."""
    from posedeploy.contract import DRAWS, check_hypotheses

    if s.split == "test":
        raise InputError("the calibration is a choice: fit it on 'val' (or 'train'), never on the test split")
    if s.form != AUTO and s.form not in FORMS:
        raise InputError(f"form must be one of {', '.join(FORMS)} or auto, got '{s.form}'")
    if s.draws not in DRAWS:
        raise InputError(f"draws must be one of {', '.join(DRAWS)}, got '{s.draws}'")
    if s.carry_from is not None and s.folds:
        raise InputError("--from carries a calibration and --fold-checkpoint fits one: give one of them")
    if s.error_ratio is not None:
        if s.carry_from is None and not s.folds:
            raise InputError(
                "--error-ratio scales a calibration fitted on other runs: name the checkpoint to carry it from "
                "(--from) or the fold runs to fit it on (--fold-checkpoint)"
            )
        if not (math.isfinite(s.error_ratio) and 0 < s.error_ratio <= 2):
            raise InputError(f"--error-ratio must be a number in (0, 2], got {s.error_ratio}")
    hypotheses = check_hypotheses(s.hypotheses)
    if hypotheses < 2:
        raise InputError("a calibration needs S >= 2 hypotheses: one hypothesis has no spread")
    return hypotheses, check_hypotheses(s.recommended_hypotheses or hypotheses)


def calibrate(settings: CalibrateSettings) -> CalibrateResult:
    from posedeploy.assets import resolve_checkpoint
    from posedeploy.files import refuse_overwrite
    from posedeploy.reference.noise_comparison import recordings
    from posedeploy.training.checkpoint import load_checkpoint, save_checkpoint

    s = settings
    hypotheses, recommended = _checked(s)
    path = resolve_checkpoint(s.checkpoint)
    folds = {f"--fold-checkpoint {f}": f for f in s.folds}
    refuse_overwrite(s.out, {"--checkpoint": path, "--from": s.carry_from, **folds})
    ckpt = load_checkpoint(path)
    if ckpt.avg_state is None:
        raise InputError(f"{path} holds only a lifter: train its AVG model first (posedeploy train avg)")
    if s.alpha is not None:
        from posedeploy.reference.evaluation import check_alpha

        ckpt.config = replace(ckpt.config, alpha=check_alpha(s.alpha))
    if s.carry_from is not None:
        return _carry(s, path, ckpt)
    sampled = _sample_folds(s, ckpt, hypotheses) if s.folds else _sample_split(s, path, ckpt, hypotheses)
    data, raw, errors, source = sampled
    fitted_on = {
        "checkpoint": path.name,
        "data": data.source,
        **source,
        "samples": len(data),
        "stride": s.stride,
        "noise": "adaptive",
        "alpha": ckpt.config.alpha,
        "hypotheses": hypotheses,
        "draws": s.draws,
        "seed": s.seed,
    }
    calibration, held_out = fit_form(raw, errors, recordings(data), s.form, fitted_on)
    calibration = replace(calibration, hypotheses=recommended)
    if s.error_ratio is not None:  # only with fold runs here (checked)
        calibration = calibration.scaled(s.error_ratio)
    ckpt.config = replace(ckpt.config, uncertainty=calibration.to_json())
    save_checkpoint(s.out, ckpt)
    return CalibrateResult(Path(s.out), calibration, len(data), held_out)


_Sampled = tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]  # poses, raw spread, errors, where they came from


def _sample_split(s: CalibrateSettings, path: Path, ckpt: Any, hypotheses: int) -> _Sampled:
    """The checkpoint itself sampled on ``s.split``, which it must not have trained on."""
    from posedeploy.data import keypoints_for, load_dataset
    from posedeploy.reference.sampler import PipelineModule
    from posedeploy.training.device import resolve_device

    if s.split == "val" and ckpt.config.training.get("refit"):
        raise InputError(
            f"{path}'s lifter was refitted with 'val' among its training data, so its 'val' errors are in-sample: "
            f"calibrate the checkpoint of the same recipe trained without 'val', and carry its calibration over "
            f"(posedeploy calibrate --from FILE)"
        )
    keypoints = s.keypoints or keypoints_for(s.data, ckpt.config.keypoints)
    data = load_dataset(s.data, s.split, keypoints, stride=s.stride)
    device = resolve_device(s.device)
    pipeline = PipelineModule(ckpt.build_lifter(device), ckpt.build_avg(device), ckpt.config.alpha)
    logger.info(f"sampling S={hypotheses} on {len(data):,} {s.split} poses ({data.source})")
    raw, errors = raw_spread_and_errors(pipeline, data, hypotheses, s.seed, s.max_poses, s.draws)
    return data, raw, errors, {"split": s.split}


def _carry(s: CalibrateSettings, path: Path, ckpt: Any) -> CalibrateResult:
    """Give ``ckpt`` the calibration of another checkpoint of the same models and alpha (a refit
    takes the calibration of its recipe's run without 'val', which was fitted out of sample), its
    spread scaled by the error ratio when one is given."""
    from posedeploy.assets import resolve_checkpoint
    from posedeploy.training.checkpoint import load_checkpoint, save_checkpoint

    source_path = resolve_checkpoint(s.carry_from)
    source = load_checkpoint(source_path)
    calibration = source.calibration()
    if calibration is None:
        raise InputError(f"--from {source_path} carries no calibration; calibrate it first")
    theirs, ours = source.config, ckpt.config
    if (theirs.lifter, theirs.avg, theirs.alpha) != (ours.lifter, ours.avg, ours.alpha):
        raise InputError(
            f"--from {source_path} is {theirs.lifter} + {theirs.avg} at alpha {theirs.alpha}; {path} is "
            f"{ours.lifter} + {ours.avg} at alpha {ours.alpha}: a calibration carries over only between the same models"
        )
    fitted_on = {**calibration.fitted_on, "carried_from": source_path.name}
    recommended = s.recommended_hypotheses or calibration.hypotheses
    calibration = replace(calibration, fitted_on=fitted_on, hypotheses=recommended)
    if s.error_ratio is not None:
        calibration = calibration.scaled(s.error_ratio)
    ckpt.config = replace(ckpt.config, uncertainty=calibration.to_json())
    save_checkpoint(s.out, ckpt)
    return CalibrateResult(Path(s.out), calibration, int(calibration.fitted_on.get("samples", 0)), {})


def _fold_runs(s: CalibrateSettings, ckpt: Any) -> tuple[list[Path], list[Any]]:
    """The fold checkpoints, checked: each a refit without one fold of one K/N, with the same models."""
    from posedeploy.assets import resolve_checkpoint
    from posedeploy.training.checkpoint import load_checkpoint

    paths = [resolve_checkpoint(f) for f in s.folds]
    runs = [load_checkpoint(p) for p in paths]
    for p, run in zip(paths, runs, strict=True):
        if run.avg_state is None:
            raise InputError(f"fold run {p} holds only a lifter: train its AVG model first (posedeploy train avg)")
        training = run.config.training
        if not (training.get("fold") and training.get("refit")):
            raise InputError(
                f"fold run {p} was not refitted without a fold (train lifter --refit --fold K/N): its folds "
                f"are not those of 'train' and 'val' together"
            )
        if (run.config.lifter, run.config.avg) != (ckpt.config.lifter, ckpt.config.avg):
            raise InputError(
                f"fold run {p} is {run.config.lifter} + {run.config.avg}; the checkpoint is "
                f"{ckpt.config.lifter} + {ckpt.config.avg}: fit on fold runs of the checkpoint's own recipe"
            )
    return paths, runs


def _sample_folds(s: CalibrateSettings, ckpt: Any, hypotheses: int) -> _Sampled:
    """Every subject of 'train' and 'val', each sampled by the fold run that never saw it (at the
    checkpoint's alpha), pooled in the order of the runs."""
    from posedeploy.data import keypoints_for, load_dataset
    from posedeploy.reference.sampler import PipelineModule
    from posedeploy.training.device import resolve_device
    from posedeploy.training.folds import assign_lifters

    paths, runs = _fold_runs(s, ckpt)
    keypoints = s.keypoints or keypoints_for(s.data, ckpt.config.keypoints)
    data = load_dataset(s.data, "train", keypoints, stride=s.stride).join(
        load_dataset(s.data, "val", keypoints, stride=s.stride)
    )
    owner = assign_lifters(data, runs, ckpt)
    device = resolve_device(s.device)
    parts, raws, errors = [], [], []
    for i, run in enumerate(runs):
        part = data.take(owner == i)
        subjects = ", ".join(str(v) for v in np.unique(part.subjects))
        logger.info(f"fold {i + 1}/{len(runs)}: sampling S={hypotheses} on {len(part):,} poses of {subjects}")
        pipeline = PipelineModule(run.build_lifter(device), run.build_avg(device), ckpt.config.alpha)
        fold_raw, fold_errors = raw_spread_and_errors(pipeline, part, hypotheses, s.seed, s.max_poses, s.draws)
        parts.append(np.flatnonzero(owner == i))
        raws.append(fold_raw)
        errors.append(fold_errors)
    source = {"split": "train+val, each subject by the fold run without it", "folds": [str(p) for p in paths]}
    return data.take(np.concatenate(parts)), np.concatenate(raws), np.concatenate(errors), source
