"""The glue of ``posedeploy bench``: choose targets, run the sweep and the stream, report."""

from __future__ import annotations

import importlib.util
import logging
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from posedeploy.artifacts import Artifacts, read_manifest
from posedeploy.bench.harness import machine_summary, measure_peak_gflops, run_sweep
from posedeploy.bench.report import ArtifactsRef, BenchReport, Stream, SweepSettings
from posedeploy.bench.streaming import run_people_stream, run_stream
from posedeploy.bench.targets import TORCH_PATHS, TORCH_PRECISIONS, BackendTarget, Target, TorchTarget
from posedeploy.errors import InputError, PoseDeployError
from posedeploy.files import sha256_file
from posedeploy.runtime.stream import MAX_PEOPLE

logger = logging.getLogger(__name__)

BACKENDS = (*TORCH_PATHS, "onnxruntime", "openvino", "tensorrt")
# torch-compile compiles per target and shape (tens of seconds on a CPU): timed when asked for by name
DEFAULT_BACKENDS = tuple(b for b in BACKENDS if b != "torch-compile")
MAX_STREAM_FPS = 10_000
MAX_STREAM_FRAMES = 1_000_000


def default_artifacts(artifacts: Path | None, scratch: Path) -> Path:
    """The given directory; else ./artifacts if it exists; else the shipped model exported into
    ``scratch`` (a temporary folder the caller removes)."""
    if artifacts is not None:
        return artifacts
    if (Path("artifacts") / "manifest.json").is_file():
        return Path("artifacts")
    from posedeploy.assets import default_checkpoint
    from posedeploy.extras import require

    require("posedeploy bench without --artifacts (it exports the shipped model first)", "torch", "onnx", "onnxruntime")
    from posedeploy.export.onnx_export import export_artifacts

    out = scratch / "artifacts"
    logger.info(f"bench: exporting the shipped model to a temporary folder ({out})")
    export_artifacts(default_checkpoint(), out, fp16=True)
    return out


def _checkpoint_for(artifacts: Artifacts, checkpoint: Path | None) -> Path | None:
    """The checkpoint of the torch baseline: given, or the one the artifacts were exported from."""
    candidates = [checkpoint] if checkpoint else [Path(artifacts.manifest.checkpoint.path)]
    if checkpoint is None:
        from posedeploy.assets import DEFAULT_CHECKPOINT

        candidates.append(DEFAULT_CHECKPOINT)
    for path in candidates:
        if path and path.is_file() and sha256_file(path) == artifacts.manifest.checkpoint.sha256:
            return path
    if checkpoint:
        raise InputError(f"{checkpoint} is not the checkpoint {artifacts.root} was exported from")
    return None


def make_targets(
    artifacts_dir: Path,
    backends: list[str],
    precisions: list[str],
    checkpoint: Path | None,
    threads: int | None,
    torch_device: str,
) -> list[Target]:
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise InputError(f"unknown backend(s) {', '.join(unknown)}; expected some of {', '.join(BACKENDS)}")
    artifacts = read_manifest(artifacts_dir)
    targets: list[Target] = []
    paths = [b for b in TORCH_PATHS if b in backends]
    if paths:
        ckpt = None
        if importlib.util.find_spec("torch") is None:
            logger.info("bench: torch is not installed; no PyTorch baseline")
        else:
            ckpt = _checkpoint_for(artifacts, checkpoint)
            if ckpt is None:
                logger.info(
                    "bench: the checkpoint of these artifacts was not found (pass --checkpoint); no PyTorch baseline"
                )
        if ckpt is not None:
            targets += _torch_targets(ckpt, paths, precisions, torch_device)
    for backend in (b for b in backends if b not in TORCH_PATHS):
        for precision in precisions:
            try:
                target = BackendTarget(artifacts_dir, backend, precision, threads=threads)
            except PoseDeployError as exc:
                logger.info(f"bench: skipping {backend} {precision}: {exc}")
                continue
            if target.precision != precision:  # OpenVINO's fp16/bf16 on a CPU without them: fp32 again
                logger.info(f"bench: skipping {backend} {precision}: it computes in {target.precision} on this machine")
                target.close()
                continue
            targets.append(target)
    return targets


def _torch_targets(checkpoint: Path, paths: list[str], precisions: list[str], device: str) -> list[Target]:
    """Eager FP32 (the baseline, always first), then each asked-for PyTorch path and precision that
    this device runs: FP16 autocast is a GPU path (a CPU without FP16 arithmetic emulates it)."""
    cuda = device.startswith("cuda")
    wanted = [("torch", "fp32")] + [
        (path, p) for path in paths for p in precisions if (path, p) != ("torch", "fp32") and p in TORCH_PRECISIONS
    ]
    targets: list[Target] = []
    for path, precision in wanted:
        if precision == "fp16" and not cuda:
            logger.info(f"bench: skipping {path} fp16: FP16 autocast is timed on a GPU (--device cuda)")
            continue
        targets.append(TorchTarget(checkpoint, device, precision, compiled=path == "torch-compile"))
    return targets


@dataclass(frozen=True)
class BenchSettings:
    """``posedeploy bench``: what to time (backends, precisions, the (B, S) sweep) on which export."""

    artifacts: Path | None = None  # None: ./artifacts, else the shipped model exported for the run
    backends: tuple[str, ...] = DEFAULT_BACKENDS
    precisions: tuple[str, ...] = ("fp32",)
    sweep: SweepSettings = field(default_factory=SweepSettings)
    checkpoint: Path | None = None  # of the PyTorch baseline (default: the one the artifacts came from)
    threads: int | None = None
    torch_device: str = "cpu"
    stream_fps: float | None = None
    stream_frames: int = 100
    with_recommended: bool = True  # also time the S the artifacts' calibration recommends (S users run)
    streaming: bool = False  # also time PoseStream (tracking, lifting, smoothing) fed people live
    streaming_fps: tuple[float, ...] = (30.0, 60.0)
    streaming_people: tuple[int, ...] = (1, 4, 16)

    def validate(self) -> None:
        self.sweep.validate()
        if self.stream_fps is not None and not (0 < self.stream_fps <= MAX_STREAM_FPS):
            raise InputError(
                f"stream frame rate must be a number of frames/s in (0, {MAX_STREAM_FPS}], got {self.stream_fps}"
            )
        if (self.stream_fps is not None or self.streaming) and not 1 <= self.stream_frames <= MAX_STREAM_FRAMES:
            raise InputError(f"stream frames must be 1-{MAX_STREAM_FRAMES:,}, got {self.stream_frames}")
        if self.streaming and not all(0 < f <= MAX_STREAM_FPS for f in self.streaming_fps):
            raise InputError(f"stream frame rates must be in (0, {MAX_STREAM_FPS}], got {self.streaming_fps}")
        if self.streaming and not all(1 <= n <= MAX_PEOPLE for n in self.streaming_people):
            raise InputError(f"people per streamed frame must be 1-{MAX_PEOPLE}, got {self.streaming_people}")
        unknown = [b for b in self.backends if b not in BACKENDS]
        if unknown:
            raise InputError(f"unknown backend(s) {', '.join(unknown)}; expected some of {', '.join(BACKENDS)}")
        if any(b in TORCH_PATHS for b in self.backends) and importlib.util.find_spec("torch") is not None:
            from posedeploy.training.device import resolve_device

            resolve_device(self.torch_device)


def bench(settings: BenchSettings) -> BenchReport:
    """Time every backend on every (B, S) of the sweep (and a stream of single frames, if asked)."""
    settings.validate()  # before any export or model is loaded
    with tempfile.TemporaryDirectory(prefix="posedeploy-bench-") as scratch:
        return _bench(default_artifacts(settings.artifacts, Path(scratch)), settings)


def _people_streams(
    artifacts_dir: Path, targets: list[Target], s: BenchSettings, recommended: int | None
) -> list[Stream]:
    """PoseStream on every deployed backend, at each frame rate and number of people, at the S users run."""
    hypotheses = recommended or max(s.sweep.hypotheses)
    out = []
    for t in (t for t in targets if isinstance(t, BackendTarget)):
        for fps in s.streaming_fps:
            for people in s.streaming_people:
                who = f"{people} {'person' if people == 1 else 'people'}"
                logger.info(f"bench: PoseStream on {t.label}, {who} at {fps:g} frames/s")
                out.append(run_people_stream(t, artifacts_dir, fps, people, s.stream_frames, hypotheses))
    return out


def _bench(artifacts_dir: Path, s: BenchSettings) -> BenchReport:
    manifest = read_manifest(artifacts_dir).manifest
    recommended = manifest.config.uncertainty.hypotheses if manifest.config.uncertainty else None
    if s.with_recommended and recommended and recommended not in s.sweep.hypotheses:
        s = replace(s, sweep=replace(s.sweep, hypotheses=sorted({*s.sweep.hypotheses, recommended})))
    targets = make_targets(artifacts_dir, list(s.backends), list(s.precisions), s.checkpoint, s.threads, s.torch_device)
    try:
        logger.info(f"bench: {', '.join(t.label for t in targets)}; B {s.sweep.batches}, S {s.sweep.hypotheses}")
        peaks = {"cpu": measure_peak_gflops("cpu")}
        if any(t.device.startswith("cuda") for t in targets) and importlib.util.find_spec("torch"):
            peaks["cuda"] = measure_peak_gflops("cuda")
        report = run_sweep(targets, s.sweep, manifest.flops, peaks)
        if s.stream_fps:
            report.streaming = [run_stream(t, s.stream_fps, s.stream_frames, max(s.sweep.hypotheses)) for t in targets]
        if s.streaming:
            report.streaming = (report.streaming or []) + _people_streams(artifacts_dir, targets, s, recommended)
    finally:
        for t in targets:
            t.close()
    report.model = f"{manifest.config.lifter} + AVG {manifest.config.avg}"
    report.machine = machine_summary()
    report.artifacts = ArtifactsRef(str(artifacts_dir), manifest.checkpoint.sha256)
    return report
