"""``posedeploy predict`` and ``posedeploy eval`` as library functions: settings in, a result out."""

from __future__ import annotations

import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from posedeploy.errors import InputError
from posedeploy.reference.reports import EvalComparison, EvalReport

if TYPE_CHECKING:
    from posedeploy.training.checkpoint import Checkpoint
    from posedeploy.uncertainty import Calibration

logger = logging.getLogger(__name__)


def load_array(path: Path, what: str) -> np.ndarray:
    """A single .npy array (never run code, never an .npz), refused in one line if it is not one."""
    from posedeploy.safe_npz import load_npy

    if not Path(path).is_file():
        raise InputError(f"{what} file not found: {path}")
    if zipfile.is_zipfile(path):
        raise InputError(f"{path} holds several arrays (an .npz); {what} must be a single .npy array")
    try:
        return load_npy(path)
    except InputError as exc:
        raise InputError(f"cannot read {what}: {exc}") from None


@dataclass(frozen=True)
class PredictSettings:
    keypoints: Path  # (B, 17, 2) .npy: normalised, or pixels with image_size
    out: Path  # .npz with sigma, hypotheses, pose, spread (metres)
    image_size: tuple[float, float] | None = None
    checkpoint: str | Path | None = None  # a file or a shipped name; None: the default
    noise: Path | None = None  # (B, S, 2, 17, 2) standard normal .npy; None: drawn
    hypotheses: int = 200  # S, when the noise is drawn
    seed: int = 0
    max_poses: int | None = None  # lifter inputs per batched call (None: by device)
    device: str | None = None


@dataclass(frozen=True)
class PredictResult:
    out: Path
    poses: int
    hypotheses: int


def predict(settings: PredictSettings) -> PredictResult:
    """Run the PyTorch reference pipeline and write the contract outputs."""
    from posedeploy.assets import resolve_checkpoint
    from posedeploy.contract import normalise_keypoints
    from posedeploy.files import atomic_path, refuse_overwrite
    from posedeploy.reference.sampler import PipelineModule, run_reference
    from posedeploy.training.checkpoint import load_checkpoint
    from posedeploy.training.device import resolve_device

    s = settings
    refuse_overwrite(s.out, {"--keypoints": s.keypoints, "--noise": s.noise, "--checkpoint": s.checkpoint})
    ckpt = load_checkpoint(resolve_checkpoint(s.checkpoint))
    kp = normalise_keypoints(load_array(s.keypoints, "keypoints"), s.image_size)  # pixels taken for normalised: refused
    given = load_array(s.noise, "noise") if s.noise is not None else None
    device = resolve_device(s.device)
    pipeline = PipelineModule(ckpt.build_lifter(device), ckpt.build_avg(device), ckpt.config.alpha)
    result = run_reference(pipeline, kp, noise=given, hypotheses=s.hypotheses, seed=s.seed, max_poses=s.max_poses)
    result.check_finite()  # NaN poses are an error, not an output
    with atomic_path(s.out) as tmp, open(tmp, "wb") as f:
        np.savez(f, **result.as_dict())  # type: ignore[arg-type]  # numpy's stub: mypy matches ** to allow_pickle
    assert result.hypotheses is not None  # kept: run_reference's default
    return PredictResult(Path(s.out), len(kp), result.hypotheses.shape[1])


@dataclass(frozen=True)
class EvalSettings:
    checkpoint: str | Path | None = None  # a file or a shipped name; None: the default
    data: str = "synthetic"
    keypoints: str = "gt"
    split: str = "test"  # test (final numbers only), or val (the split every choice is made on)
    hypotheses: int = 200  # 0: the lifter alone
    noises: tuple[str, ...] = ("adaptive",)  # several: compared, with paired differences
    alphas: tuple[float, ...] | None = None  # None: the checkpoint's
    best_of: tuple[int, ...] | None = None  # the best-of-S curve, each 1..S (None: 1, 5, 10, 50, 200 up to S)
    actions: tuple[str, ...] | None = None  # Human3.6M actions (None: all 15)
    stride: int = 1
    seed: int = 0
    max_poses: int | None = None
    device: str | None = None
    # The spread's calibration: the checkpoint's (where fitted for the run's noise rule and alpha),
    # fitted for each run on the 'val' split first ('val', for another split), cross-fitted on the
    # split itself ('crossfit', for 'val': each half of its recordings calibrated on the other), or none.
    calibration: str = "checkpoint"
    draws: str = "random"  # or antithetic noise


CALIBRATIONS = ("checkpoint", "val", "crossfit", "none")


def run_eval(settings: EvalSettings) -> EvalReport | EvalComparison:
    """Per-action MPJPE / P-MPJPE / PCK / AUC of one run; several noise rules or alphas: each, and
    their paired differences with bootstrap standard errors."""
    from posedeploy.assets import resolve_checkpoint
    from posedeploy.data import load_dataset
    from posedeploy.reference.evaluation import best_of_curve, evaluate
    from posedeploy.reference.noise_comparison import comparison_report
    from posedeploy.training.checkpoint import load_checkpoint
    from posedeploy.training.device import resolve_device

    s = settings
    ckpt = load_checkpoint(resolve_checkpoint(s.checkpoint))
    if s.split == "val" and ckpt.config.training.get("refit"):
        logger.warning(
            f"{s.checkpoint or 'the default checkpoint'}'s lifter was refitted with 'val' among its training data: "
            f"these 'val' numbers are in-sample, fit to choose nothing"
        )
    alphas = _check_runs(s.noises, s.alphas or (ckpt.config.alpha,))
    _check_uncertainty_options(s)
    best_of_curve(s.best_of, s.hypotheses)  # before minutes of data loading
    data = load_dataset(s.data, s.split, s.keypoints, actions=list(s.actions) if s.actions else None, stride=s.stride)
    runs = [(n, a) for a in alphas for n in s.noises] if s.hypotheses > 0 else [(s.noises[0], alphas[0])]
    device = resolve_device(s.device)
    reports = []
    for noise, alpha in runs:
        calibration, source = _calibration_for(s, ckpt, noise, alpha, device)
        report = evaluate(
            ckpt,
            data,
            hypotheses=s.hypotheses,
            noise=noise,
            seed=s.seed,
            device=device,
            max_poses=s.max_poses,
            alpha=alpha,
            best_of=s.best_of,
            calibration=calibration,
            calibration_source=source,
            draws=s.draws,
        )
        report.settings.checkpoint = str(s.checkpoint) if s.checkpoint else "default"
        report.settings.split = s.split
        reports.append(report)
    return reports[0] if len(reports) == 1 else comparison_report(reports, data)


def _calibration_for(
    s: EvalSettings, ckpt: Checkpoint, noise: str, alpha: float, device: str
) -> tuple[Calibration | str | None, str]:
    """The calibration a run is judged with, and where it came from."""
    from posedeploy.data import load_dataset
    from posedeploy.reference.calibrate import raw_spread_and_errors
    from posedeploy.reference.noise_comparison import recordings
    from posedeploy.reference.sampler import PipelineModule
    from posedeploy.uncertainty import AUTO, fit_form

    if s.hypotheses < 2 or s.calibration == "none":
        return None, "none"
    if s.calibration == "crossfit":
        return "crossfit", "cross-fit"
    if s.calibration == "checkpoint":
        shipped = ckpt.calibration()
        if shipped is None:
            return None, "none"
        at = shipped.fitted_on
        if (at.get("noise"), at.get("alpha")) != (noise, alpha):
            logger.info(
                f"the checkpoint's calibration was fitted for {at.get('noise')} noise at alpha {at.get('alpha')}: "
                f"{noise} noise at alpha {alpha:g} is judged uncalibrated (or pass --calibration val)"
            )
            return None, "none"
        return shipped, "checkpoint"
    if s.split == "val":
        raise InputError("--calibration val fits on the 'val' split: evaluate another split with it")
    val = load_dataset(s.data, "val", s.keypoints, stride=s.stride)
    avg = ckpt.build_avg(device) if noise != "alpha" else None
    pipeline = PipelineModule(ckpt.build_lifter(device), avg, alpha, noise_mode=noise)
    logger.info(f"fitting the calibration for {noise} noise at alpha {alpha:g} on {len(val):,} 'val' poses")
    raw, errors = raw_spread_and_errors(pipeline, val, s.hypotheses, s.seed, s.max_poses, s.draws)
    fitted_on = {"data": val.source, "split": "val", "samples": len(val), "noise": noise, "alpha": alpha}
    calibration, _ = fit_form(raw, errors, recordings(val), AUTO, fitted_on | {"hypotheses": s.hypotheses})
    return calibration, "val split"


def _check_uncertainty_options(s: EvalSettings) -> None:
    from posedeploy.contract import DRAWS

    if s.calibration not in CALIBRATIONS:
        raise InputError(f"calibration must be one of {', '.join(CALIBRATIONS)}, got '{s.calibration}'")
    if s.draws not in DRAWS:
        raise InputError(f"draws must be one of {', '.join(DRAWS)}, got '{s.draws}'")
    if s.calibration == "val" and s.split == "val":
        raise InputError("--calibration val fits on the 'val' split: evaluate another split with it, or use crossfit")
    if s.calibration == "crossfit" and s.split != "val":
        raise InputError("--calibration crossfit judges the 'val' split on itself; for another split use val")


def _check_runs(noises: tuple[str, ...], alphas: tuple[float, ...]) -> list[float]:
    """The alphas to sweep, after checking them and the noise rules (each named once, a bounded sweep)."""
    from posedeploy.reference.evaluation import MAX_ALPHAS, check_alpha
    from posedeploy.reference.sampler import NOISE_MODES

    unknown = [n for n in noises if n not in NOISE_MODES]
    if unknown or not noises or len(set(noises)) != len(noises):
        given = ",".join(noises)
        raise InputError(f"noise must be some of {', '.join(NOISE_MODES)}, each once, got '{given[:80]}'")
    checked = [check_alpha(a) for a in alphas]
    if len(set(checked)) != len(checked) or len(checked) > MAX_ALPHAS:
        raise InputError(
            f"alpha must list at most {MAX_ALPHAS} different values, got {len(checked)} ({len(set(checked))} different)"
        )
    return checked
