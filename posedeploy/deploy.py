"""``posedeploy deploy``: one checkpoint through everything the toolkit is for, into one folder
with one report.

    DIR/artifacts/      avg.onnx, lifter.onnx, pipeline.onnx, pipeline.fp16.onnx, manifest.json
                        (+ a TensorRT engine and its manifest where a builder and a target exist)
    DIR/sequence/       a built-in motion sequence lifted by the torch-free runtime: lifted.npz,
                        a PNG per picture frame and an animated GIF
    DIR/REPORT.md       what was made, where, its hashes, parity in mm, speed, and the hardware
    DIR/report.json     the same for machines (posedeploy/deploy_report.py)

The folder is assembled under a temporary name beside DIR and renamed into place at the end, so an
interrupted or failed deploy leaves DIR as it was (absent, or an earlier deploy's result); an
earlier deploy is replaced only if DIR holds nothing else (see deploy_folder.py).
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, cast

import numpy as np

from posedeploy import __version__, metrics
from posedeploy.deploy_folder import REPORT_JSON, REPORT_MD, check_replaceable, deploy_lock, new_stage, recover, replace
from posedeploy.deploy_report import (
    BenchCell,
    BenchStep,
    DeployedCheckpoint,
    DeployedFile,
    DeployOptions,
    DeployReport,
    DeploySteps,
    EngineStep,
    ExportStep,
    ParityStep,
    SequenceStep,
    render_markdown,
)
from posedeploy.errors import InputError, MissingDependencyError, PoseDeployError
from posedeploy.files import sha256_file, write_json

if TYPE_CHECKING:
    from posedeploy.data import PoseSet
    from posedeploy.runtime import LiftResult

logger = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16")
STEP_COUNT = 5


@dataclass(frozen=True)
class DeploySettings:
    """``posedeploy deploy``: which checkpoint, into which folder, and how each step runs."""

    checkpoint: str | Path | None = None  # a file or a shipped name; None: the default
    out: Path = Path("deploy")
    options: DeployOptions = field(default_factory=DeployOptions)

    def validate(self) -> None:
        o = self.options
        if o.hypotheses is not None and not 1 <= o.hypotheses <= 10_000:
            raise InputError(f"hypotheses must be 1-10000, got {o.hypotheses}")
        if not 1 <= o.parity_samples <= 100_000:
            raise InputError(f"parity samples must be 1-100000, got {o.parity_samples}")
        if o.picture_every < 1:
            raise InputError(f"picture interval must be >= 1 frame, got {o.picture_every}")
        from posedeploy.runtime.loading import AUTO, BACKENDS

        if o.backend not in (AUTO, *BACKENDS):
            raise InputError(f"unknown backend '{o.backend}'; expected {AUTO} or one of {', '.join(BACKENDS)}")
        from posedeploy.engines.build import RTX_TARGETS

        unknown = [c for c in o.compute_capabilities if c not in RTX_TARGETS]
        if unknown:
            raise InputError(
                f"unknown compute capability {', '.join(unknown)}; TensorRT for RTX builds for {', '.join(RTX_TARGETS)}"
            )


def check_output(out: Path) -> None:
    """Refuse an output that is a file or a place this user cannot write, before any work is done."""
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a folder; deploy writes a folder")
    parent = out.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        raise InputError(f"cannot write into {parent}: {exc.strerror or exc}") from None


def _export(checkpoint: Path, artifacts: Path) -> ExportStep:
    from posedeploy.export.onnx_export import export_artifacts

    manifest = export_artifacts(checkpoint, artifacts, fp16=True)
    files = {name: DeployedFile(f.sha256, f.bytes, f.precision) for name, f in manifest.files.items()}
    return ExportStep(status="done", folder="artifacts", opset=manifest.opset, files=files)


def _engine(artifacts: Path, o: DeployOptions) -> EngineStep:
    """Build the FP16 engine where a TensorRT builder and a target exist; say why not otherwise."""
    from posedeploy.engines.build import BuildSettings, build_engine
    from posedeploy.engines.flavour import load_tensorrt
    from posedeploy.engines.machine import describe_machine

    try:
        trt = load_tensorrt()
    except MissingDependencyError:
        return EngineStep(
            status="skipped",
            reason="no TensorRT builder installed: pip install 'posedeploy[trt]' on a machine with an NVIDIA GPU, "
            "or 'posedeploy[rtx]' and --compute-capability (builds without a GPU)",
        )
    gpus = describe_machine().gpus
    if not gpus and not (trt.is_rtx and o.compute_capabilities):
        how = (
            "name the target GPU with --compute-capability, e.g. 8.9 or 12.0 (TensorRT for RTX builds without one)"
            if trt.is_rtx
            else "datacenter TensorRT builds only on the GPU it targets"
        )
        return EngineStep(
            status="skipped", reason=f"no CUDA GPU here to build for ({trt.flavour} {trt.version}): {how}"
        )
    settings = BuildSettings(
        artifacts, precision="fp16", flavour=trt.flavour, compute_capabilities=tuple(o.compute_capabilities)
    )
    manifest = build_engine(settings)
    # An engine runs only on the compute capability it was built for (an RTX target named for another GPU does not).
    runnable = bool(gpus) and gpus[0].compute_capability in manifest.target.compute_capabilities
    plan = manifest.plan
    return EngineStep(
        status="done",
        runnable_here=runnable,
        tensorrt=manifest.tensorrt,
        target=manifest.target,
        build_seconds=manifest.build_seconds,
        files={plan.file: DeployedFile(plan.sha256, plan.bytes, "fp16")},
    )


def _parity(checkpoint: Path, artifacts: Path, engine: EngineStep, o: DeployOptions) -> ParityStep:
    from posedeploy.data import evenly_spaced, load_dataset
    from posedeploy.parity import run_parity
    from posedeploy.runtime.backend_choice import installed_backends

    test = evenly_spaced(load_dataset("synthetic", "test", "gt"), o.parity_samples)
    runs = [("onnxruntime", p) for p in PRECISIONS]
    if "openvino" in installed_backends():
        runs.append(("openvino", "fp32"))
    if engine.runnable_here:
        runs.append(("tensorrt", "fp16"))
    results = []
    for backend, precision in runs:
        logger.info(
            f"deploy: parity of {backend} {precision} against PyTorch ({len(test)} poses x {o.hypotheses} hypotheses)"
        )
        results.append(
            run_parity(
                checkpoint,
                artifacts,
                test,
                hypotheses=_hypotheses(o),
                precision=precision,
                seed=o.seed,
                backend=backend,
            )
        )
    skipped = None
    if engine.status == "done" and not engine.runnable_here:
        skipped = "the TensorRT engine was built for another GPU and cannot run on this machine"
    return ParityStep(
        status="done" if all(r.passed for r in results) else "failed", runs=results, engine_not_run=skipped
    )


def _bench(checkpoint: Path, artifacts: Path, engine: EngineStep, o: DeployOptions) -> BenchStep:
    from posedeploy.artifacts import read_manifest
    from posedeploy.bench.command import make_targets
    from posedeploy.bench.harness import run_sweep
    from posedeploy.bench.report import SweepSettings
    from posedeploy.runtime.backend_choice import installed_backends

    backends = ["torch", "onnxruntime"] + [b for b in ("openvino",) if b in installed_backends()]
    backends += ["tensorrt"] if engine.runnable_here else []
    device = "cuda" if engine.runnable_here else "cpu"
    targets = make_targets(artifacts, backends, list(PRECISIONS), checkpoint, None, device)
    settings = SweepSettings(
        batches=list(o.bench_batches), hypotheses=[_hypotheses(o)], warmup=1, min_repeats=3, min_seconds=o.bench_seconds
    )
    logger.info(f"deploy: bench {', '.join(t.label for t in targets)} at B {list(o.bench_batches)}, S {o.hypotheses}")
    try:
        report = run_sweep(targets, settings, read_manifest(artifacts).manifest.flops)
    finally:
        for t in targets:
            t.close()
    cells = [
        BenchCell(
            c.label,
            c.backend,
            c.precision,
            c.device,
            c.batch,
            c.hypotheses,
            c.repeats,
            c.frames_per_s,
            c.hypotheses_per_s,
            c.speedup_vs_torch,
            c.latency_ms.p50,
            c.latency_ms.p99,
        )
        for c in report.results
    ]
    return BenchStep(status="done", settings=settings, results=cells)


def builtin_sequence(activity: str = "walking") -> tuple[PoseSet, str]:
    """The first built-in test sequence of ``activity``: (PoseSet rows, name)."""
    from posedeploy.data import load_dataset

    test = load_dataset("synthetic", "test", "gt")
    first = next(i for i, a in enumerate(test.actions) if a == activity)
    rows = np.flatnonzero(test.subjects == test.subjects[first])
    return test.take(rows), f"{test.subjects[first]}-{activity}"


def _sequence(artifacts: Path, out: Path, o: DeployOptions) -> SequenceStep:
    from posedeploy.files import atomic_path
    from posedeploy.runtime import MultiHypothesisLifter

    seq, name = builtin_sequence()
    pixels = seq.pixels()  # refused unless seq has image sizes
    assert seq.image_sizes is not None
    size = cast("tuple[float, float]", tuple(float(v) for v in seq.image_sizes[0]))  # image_sizes: (F, 2)
    with MultiHypothesisLifter(artifacts, hypotheses=o.hypotheses, seed=o.seed, backend=o.backend) as lifter:
        backend = lifter.backend.describe()
        result = lifter(pixels, image_size=size, units="mm", keep_hypotheses=True)
    truth = seq.poses_3d * 1000.0
    assert result.hypotheses is not None  # keep_hypotheses=True
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "lifted.npz") as tmp, open(tmp, "wb") as f:
        np.savez(
            f, keypoints_px=pixels, pose_mm=result.pose, spread_mm=result.spread, truth_mm=truth, frames=seq.frames
        )
    pictures, skipped = _pictures(out, name, seq, pixels, result, o)
    return SequenceStep(
        status="done",
        name=name,
        activity=str(seq.actions[0]),
        frames=len(seq),
        fps=seq.meta.get("fps"),
        image_size=list(size),
        backend=backend,
        hypotheses=o.hypotheses,
        mpjpe_mm=float(metrics.mpjpe(result.pose, truth).mean()),
        best_of_s_mpjpe_mm=float(metrics.best_of_mpjpe(result.hypotheses, truth).mean()),
        mean_spread_mm=float(result.spread.mean()),
        pictures=pictures,
        pictures_skipped=skipped,
    )


def _pictures(
    out: Path, name: str, seq: PoseSet, pixels: np.ndarray, result: LiftResult, o: DeployOptions
) -> tuple[list[str], str | None]:
    """The sequence drawn (PNGs and a GIF), or why not (no matplotlib, or not asked for)."""
    if not o.pictures:
        return [], None
    try:
        from posedeploy.visualize import save_frames

        logger.info(f"deploy: drawing {len(range(0, len(seq), o.picture_every))} pictures and a GIF of {name}")
        written = save_frames(
            out,
            name,
            seq.frames,
            pixels,
            result.pose,
            result.spread,
            result.hypotheses,
            gif=True,
            every=o.picture_every,
        )
    except MissingDependencyError as exc:
        return [], f"no pictures: {exc}"
    return [p.name for p in written], None


def _entry(path: Path) -> DeployedFile:
    return DeployedFile(sha256_file(path), path.stat().st_size)


def _listing(stage: Path) -> dict[str, DeployedFile]:
    return {str(p.relative_to(stage)): _entry(p) for p in sorted(stage.rglob("*")) if p.is_file()}


Step = TypeVar("Step", ExportStep, EngineStep, ParityStep, BenchStep, SequenceStep)


def _run_step(kind: type[Step], name: str, index: int, fn: Callable[[], Step]) -> Step:
    """Run one step, timed; an error other than bad input is the step's failure, not the deploy's."""
    logger.info(f"deploy [{index}/{STEP_COUNT}] {name}")
    started = time.monotonic()
    try:
        result = fn()
    except (PoseDeployError, OSError) as exc:
        if isinstance(exc, InputError):
            raise
        result = kind(status="failed", error=str(exc))
    result.seconds = round(time.monotonic() - started, 2)
    if result.status == "skipped":
        logger.info(f"deploy: {name} skipped: {getattr(result, 'reason', '')}")
    return result


def _hypotheses(o: DeployOptions) -> int:
    assert o.hypotheses is not None  # resolved from the checkpoint at the start of _deploy
    return o.hypotheses


def deploy(settings: DeploySettings | None = None) -> DeployReport:
    """Run every step into ``settings.out``; returns the report (also written as DIR/report.json)."""
    s = settings or DeploySettings()
    s.validate()
    out = Path(s.out)
    check_output(out)
    with deploy_lock(out):
        recover(out)  # a deploy killed while swapping folders: the earlier result back first
        check_replaceable(out)
        return _deploy(s.checkpoint, out, s.options)


def _deploy(checkpoint_name: str | Path | None, out: Path, o: DeployOptions) -> DeployReport:
    from posedeploy.assets import resolve_checkpoint
    from posedeploy.bench.harness import machine_summary
    from posedeploy.training.checkpoint import load_checkpoint

    checkpoint = resolve_checkpoint(checkpoint_name)
    ckpt = load_checkpoint(checkpoint)
    ckpt.build_avg()  # a lifter-only checkpoint is refused here, before anything is written
    if o.hypotheses is None:  # the S its calibration recommends
        calibration = ckpt.calibration()
        o = dataclasses.replace(o, hypotheses=calibration.hypotheses if calibration and calibration.hypotheses else 200)
    started = time.monotonic()
    c = ckpt.config
    report = DeployReport(
        posedeploy=__version__,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        folder=str(out.resolve()),
        checkpoint=DeployedCheckpoint(str(checkpoint), sha256_file(checkpoint), c.lifter, c.avg, c.alpha, c.keypoints),
        settings=o,
        machine=machine_summary(),
        steps=DeploySteps(),
    )
    stage = new_stage(out)
    try:
        report.steps = _steps(checkpoint, stage, o)
        report.files = _listing(stage)
        report.passed = all(step.status in ("done", "skipped") for _, step in report.steps.items())
        report.seconds = round(time.monotonic() - started, 1)
        (stage / REPORT_MD).write_text(render_markdown(report))
        # Every file this deploy wrote is listed with its hash (report.json by its name): what a later
        # deploy may replace.
        report.files[REPORT_MD] = _entry(stage / REPORT_MD)
        write_json(stage / REPORT_JSON, report.to_json())  # strict JSON, like every report
        replace(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    logger.info(f"deploy: done in {report.seconds:.0f} s -> {out / REPORT_MD}")
    return report


def _steps(checkpoint: Path, stage: Path, o: DeployOptions) -> DeploySteps:
    artifacts = stage / "artifacts"
    export = _run_step(ExportStep, "export", 1, lambda: _export(checkpoint, artifacts))
    if export.status != "done":
        raise PoseDeployError(f"export failed: {export.error}")
    engine = _run_step(EngineStep, "engine", 2, lambda: _engine(artifacts, o))
    parity = _run_step(ParityStep, "parity", 3, lambda: _parity(checkpoint, artifacts, engine, o))
    bench = _run_step(BenchStep, "bench", 4, lambda: _bench(checkpoint, artifacts, engine, o))
    sequence = _run_step(SequenceStep, "sequence", 5, lambda: _sequence(artifacts, stage / "sequence", o))
    return dataclasses.replace(
        DeploySteps(), export=export, engine=engine, parity=parity, bench=bench, sequence=sequence
    )
