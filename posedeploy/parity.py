"""Accuracy parity: a deployed artifact against the PyTorch reference, on the same inputs.

Golden-noise mode feeds both the same noise and compares them element by element: the largest
and mean absolute difference of every output, and what users care about — how far the deployed
hypotheses are from the reference ones (the mean hypothesis error, which the tolerance applies
to), and how much MPJPE, best-of-S and the aggregated pose move, in millimetres.

Free-noise mode lets each side draw its own noise (different seeds, as a backend with its own
generator would) and compares the distributions: the per-joint mean of the hypotheses must agree
within three standard errors of a mean of S draws, and the per-joint spread within 15 %, each
plus the precision's tolerance (what float16 rounding alone may move).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from posedeploy import metrics
from posedeploy.artifacts import GRAPHS, Artifacts, read_manifest
from posedeploy.contract import check_hypotheses, check_request, draw_noise
from posedeploy.data import PoseSet
from posedeploy.errors import ArtifactError, InputError
from posedeploy.files import sha256_file
from posedeploy.records import Record

if TYPE_CHECKING:
    from posedeploy.reference.sampler import PipelineModule, SamplerResult
    from posedeploy.runtime.lifter import LiftResult
    from posedeploy.uncertainty import Calibration

DEFAULT_TOLERANCE_MM = {"fp32": 0.01, "fp16": 0.5, "int8": 1.0}
# What the tolerance bounds. INT8 moves single hypotheses by centimetres while leaving the
# best-of-S result (what the hypotheses are for) within a millimetre, so it is held to that.
CRITERION = {"int8": "delta best-of-S MPJPE (mm)"}
GOLDEN_CRITERION = "mean hypothesis error (mm)"
FREE_MEAN_SIGMAS = 3.0  # free noise: allowed mean shift, in standard errors of a mean of S draws
RADIUS_LEVEL = 0.9  # the calibrated radius golden parity compares
FREE_SPREAD_RATIO = 0.15  # free noise: allowed relative spread difference


@dataclass(frozen=True)
class OutputDifference:
    max_abs: float
    mean_abs: float
    unit: str


@dataclass
class ParityReport(Record):
    mode: str
    artifact: str
    precision: str
    backend: str
    data: str
    samples: int
    hypotheses: int
    tolerance_mm: float
    outputs: dict[str, OutputDifference] = field(default_factory=dict)  # golden noise: each output's difference
    task: dict[str, float] = field(default_factory=dict)  # task-level deltas, mm
    criterion: str = ""  # the task entry held to the tolerance
    passed: bool = False

    def format(self) -> str:
        lines = [
            f"parity ({self.mode} noise): {self.artifact} [{self.precision}] on {self.backend} vs PyTorch reference",
            f"data: {self.data}, {self.samples} poses x {self.hypotheses} hypotheses",
        ]
        if self.outputs:
            lines.append(f"{'output':<12}{'max |diff|':>14}{'mean |diff|':>14}  unit")
            for name, v in self.outputs.items():
                lines.append(f"{name:<12}{v.max_abs:>14.3g}{v.mean_abs:>14.3g}  {v.unit}")
        for name, value in self.task.items():
            lines.append(f"{name:<40}{value:>10.3g}")
        verdict = "PASS" if self.passed else "FAIL"
        what = self.criterion if self.mode == "golden" else "mean shift vs sampling error, spread ratio"
        lines.append(f"{verdict}: tolerance {self.tolerance_mm} mm on {what}")
        return "\n".join(lines)


def source_checkpoint(artifacts: Artifacts) -> Path:
    """The checkpoint an artifact was exported from: the file its manifest names, or a shipped one with its hash."""
    from posedeploy.assets import ASSETS, SHIPPED

    recorded = artifacts.manifest.checkpoint
    for path in [Path(recorded.path), *(ASSETS / name for name in SHIPPED.values())]:
        if path.is_file() and sha256_file(path) == recorded.sha256:
            return path
    raise ArtifactError(
        f"{artifacts.root} was exported from {recorded.path} (sha256 {recorded.sha256[:12]}...), which is not "
        "here any more: pass that checkpoint with --checkpoint"
    )


def _tolerance(precision: str, given: float | None) -> float:
    tolerance = DEFAULT_TOLERANCE_MM.get(precision, 0.5) if given is None else given
    if not tolerance >= 0:
        raise InputError(f"tolerance must be >= 0 mm, got {tolerance}")
    return tolerance


def _checkpoint_of(artifacts: Artifacts, checkpoint: str | Path | None) -> Path:
    """The checkpoint to compare ``artifacts`` with: the one given (checked to be theirs), or theirs."""
    if checkpoint is None:
        return source_checkpoint(artifacts)  # found by its hash: nothing left to check
    _check_same_checkpoint(Path(checkpoint), artifacts)
    return Path(checkpoint)


def _check_same_checkpoint(checkpoint: Path, artifacts: Artifacts) -> None:
    recorded = artifacts.manifest.checkpoint.sha256
    if sha256_file(checkpoint) != recorded:
        raise ArtifactError(
            f"{artifacts.root} was exported from another checkpoint than {checkpoint} "
            f"(manifest sha256 {recorded[:12]}...); compare an artifact with its own checkpoint"
        )


def _references(checkpoint: Path, device: str) -> tuple[PipelineModule, Calibration | None]:
    """The reference pipeline of the checkpoint, and the calibration of its spread."""
    from posedeploy.reference.sampler import PipelineModule
    from posedeploy.training.checkpoint import load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    pipeline = PipelineModule(ckpt.build_lifter(device), ckpt.build_avg(device), ckpt.config.alpha)
    return pipeline, ckpt.calibration()


def run_parity(
    checkpoint: str | Path | None,
    artifacts_dir: str | Path,
    data: PoseSet,
    hypotheses: int = 200,
    precision: str = "fp32",
    seed: int = 0,
    provider: str = "auto",
    free_noise: bool = False,
    tolerance_mm: float | None = None,
    device: str = "cpu",
    backend: str = "onnxruntime",
    noise_source: str = "host",
) -> ParityReport:
    from posedeploy.reference.sampler import run_reference
    from posedeploy.runtime.lifter import MultiHypothesisLifter
    from posedeploy.runtime.loading import graph_for

    # Both sides keep all hypotheses, and golden noise is drawn whole: refused before allocating.
    check_request(len(data), check_hypotheses(hypotheses), keep_hypotheses=True, noise_per_call=not free_noise)
    artifacts = read_manifest(artifacts_dir)
    checkpoint = _checkpoint_of(artifacts, checkpoint)
    tolerance_mm = _tolerance(precision, tolerance_mm)
    free_noise = free_noise or noise_source == "device"  # in-graph draws cannot be matched element by element
    reference, calibration = _references(checkpoint, device)
    kp, target = data.keypoints, data.poses_3d
    with MultiHypothesisLifter(
        artifacts_dir,
        precision=precision,
        provider=provider,
        hypotheses=hypotheses,
        backend=backend,
        noise=noise_source,
    ) as lifter:
        if lifter.calibration != calibration:
            raise ArtifactError(
                f"{artifacts.root}'s manifest carries another uncertainty calibration than {checkpoint}: "
                f"re-run posedeploy export"
            )
        report = ParityReport(
            mode="free" if free_noise else "golden",
            artifact=GRAPHS[graph_for(lifter.backend.name, precision, noise_source)],
            precision=lifter.backend.computed_precision(precision),
            backend=lifter.backend.describe(),
            data=data.source,
            samples=len(data),
            hypotheses=hypotheses,
            tolerance_mm=tolerance_mm,
        )
        if free_noise:
            ref = run_reference(reference, kp, hypotheses=hypotheses, seed=seed).calibrated(calibration)
            # Its own draws: another seed on the host; the device's generator cannot be seeded.
            dep = lifter(kp, hypotheses=hypotheses, seed=seed + 1 if noise_source == "host" else None, units="m")
            _free(report, ref, dep, hypotheses)
        else:
            noise = draw_noise(np.random.default_rng(seed), len(kp), hypotheses)
            ref = run_reference(reference, kp, noise=noise).calibrated(calibration)
            _golden(report, ref, lifter(kp, noise=noise, units="m"), target)
    return report


@dataclass(frozen=True)
class ParitySettings:
    """``posedeploy parity``: which artifact, on which backend and precision, against which reference data."""

    artifacts: Path = Path("artifacts")
    checkpoint: str | Path | None = None  # a file or a shipped name; None: the one the manifest names
    precision: str = "fp32"
    backend: str = "onnxruntime"
    provider: str = "auto"
    noise_source: str = "host"  # or device: in-graph noise, compared as distributions
    data: str = "auto"  # a Human3.6M folder, 'synthetic', or auto (Human3.6M when found)
    keypoints: str = "gt"
    samples: int = 256  # test poses, evenly spaced over the test split
    hypotheses: int = 200
    seed: int = 0
    free_noise: bool = False
    tolerance_mm: float | None = None  # default: DEFAULT_TOLERANCE_MM of the precision


def parity(settings: ParitySettings) -> ParityReport:
    """Compare a deployed artifact with the PyTorch reference on evenly spaced test poses."""
    from posedeploy.assets import resolve_checkpoint
    from posedeploy.data import evenly_spaced, load_dataset, resolve_data

    s = settings
    test = evenly_spaced(load_dataset(resolve_data(s.data), "test", s.keypoints), s.samples)
    return run_parity(
        None if s.checkpoint is None else resolve_checkpoint(s.checkpoint),
        s.artifacts,
        test,
        hypotheses=s.hypotheses,
        precision=s.precision,
        seed=s.seed,
        provider=s.provider,
        free_noise=s.free_noise,
        tolerance_mm=s.tolerance_mm,
        backend=s.backend,
        noise_source=s.noise_source,
    )


def _golden(report: ParityReport, ref: SamplerResult, dep: LiftResult, target: np.ndarray) -> None:
    for name, unit, scale in (
        ("sigma", "normalised", 1.0),
        ("hypotheses", "mm", 1e3),
        ("pose", "mm", 1e3),
        ("spread", "mm", 1e3),
    ):
        diff = np.abs(getattr(dep, name) - getattr(ref, name)) * scale
        report.outputs[name] = OutputDifference(float(diff.max()), float(diff.mean()), unit)
    if dep.calibration is not None:  # the calibrated radii, as each side computes them
        diff = np.abs(dep.radius(RADIUS_LEVEL) - dep.calibration.radius(ref.spread, RADIUS_LEVEL)) * 1e3
        report.outputs[f"radius({RADIUS_LEVEL:g})"] = OutputDifference(float(diff.max()), float(diff.mean()), "mm")
    assert dep.hypotheses is not None and ref.hypotheses is not None  # both kept: the default
    hyp_error = float(np.linalg.norm(dep.hypotheses - ref.hypotheses, axis=-1).mean() * 1e3)
    mpjpe: Callable[[np.ndarray], float] = lambda h: float(metrics.mpjpe(h, target[:, None]).mean() * 1e3)  # noqa: E731
    best: Callable[[np.ndarray], float] = lambda h: float(metrics.best_of_mpjpe(h, target).mean() * 1e3)  # noqa: E731
    report.task = {
        "mean hypothesis error (mm)": hyp_error,
        "delta MPJPE of hypotheses (mm)": abs(mpjpe(dep.hypotheses) - mpjpe(ref.hypotheses)),
        "delta best-of-S MPJPE (mm)": abs(best(dep.hypotheses) - best(ref.hypotheses)),
        "delta aggregated-pose MPJPE (mm)": abs(
            float(metrics.mpjpe(dep.pose, target).mean() - metrics.mpjpe(ref.pose, target).mean()) * 1e3
        ),
    }
    report.criterion = CRITERION.get(report.precision, GOLDEN_CRITERION)
    report.passed = report.task[report.criterion] <= report.tolerance_mm


def _free(report: ParityReport, ref: SamplerResult, dep: LiftResult, hypotheses: int) -> None:
    shift = np.linalg.norm(dep.pose - ref.pose, axis=-1) * 1e3  # per joint, mm
    spread = (dep.spread + ref.spread) / 2 * 1e3
    # Each side's mean of S draws has a standard error of spread / sqrt(S) per joint.
    standard_error = spread * np.sqrt(2.0 / hypotheses)
    joints = slice(1, None)  # the root is 0 on both sides
    spread_diff = float(np.abs(dep.spread[:, joints] - ref.spread[:, joints]).mean() * 1e3)
    ref_spread = float(ref.spread[:, joints].mean() * 1e3)
    report.task = {
        "mean shift of per-joint mean (mm)": float(shift[:, joints].mean()),
        "sampling standard error (mm)": float(standard_error[:, joints].mean()),
        "mean spread, reference (mm)": ref_spread,
        "mean spread difference (mm)": spread_diff,
        "relative spread difference": spread_diff / max(ref_spread, 1e-9),
    }
    # Both checks allow the precision's own tolerance on top of what sampling explains.
    report.passed = bool(
        shift[:, joints].mean() <= FREE_MEAN_SIGMAS * standard_error[:, joints].mean() + report.tolerance_mm
        and spread_diff <= FREE_SPREAD_RATIO * ref_spread + report.tolerance_mm
    )
