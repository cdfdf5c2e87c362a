"""``posedeploy deploy``: one checkpoint through everything the toolkit is for, into one folder
with one report.

    DIR/artifacts/      avg.onnx, lifter.onnx, pipeline.onnx, pipeline.fp16.onnx, manifest.json
                        (+ a TensorRT engine and its manifest where a builder and a target exist)
    DIR/sequence/       a built-in motion sequence lifted by the torch-free runtime: lifted.npz,
                        a PNG per picture frame and an animated GIF
    DIR/REPORT.md       what was made, where, its hashes, parity in mm, speed, and the hardware
    DIR/report.json     the same for machines

The folder is assembled under a temporary name beside DIR and renamed into place at the end, so an
interrupted or failed deploy leaves DIR as it was (absent, or an earlier deploy's result); an
earlier deploy is replaced only if DIR holds nothing else (see deploy_folder.py).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from posedeploy import __version__, metrics
from posedeploy.deploy_folder import (
    FORMAT,
    REPORT_JSON,
    REPORT_MD,
    check_replaceable,
    deploy_lock,
    new_stage,
    recover,
    replace,
)
from posedeploy.errors import InputError, MissingDependencyError, PoseDeployError
from posedeploy.files import sha256_file, write_json
from posedeploy.records import to_json

logger = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: REPORT.md listed in 'files' with its hash
PRECISIONS = ("fp32", "fp16")
STEPS = ("export", "engine", "parity", "bench", "sequence")


@dataclass
class DeploySettings:
    hypotheses: int = 200
    parity_samples: int = 64  # built-in test poses, evenly spaced
    bench_batches: list[int] = field(default_factory=lambda: [1, 16])
    bench_seconds: float = 0.6  # per cell, all targets interleaved
    compute_capabilities: list[str] = field(default_factory=list)  # TensorRT for RTX targets
    picture_every: int = 2  # every N-th frame of the sequence becomes a picture
    pictures: bool = True
    seed: int = 0
    backend: str = "auto"  # of the lifted sequence: auto (the fastest here, measured) or one of runtime BACKENDS

    def validate(self) -> None:
        if not 1 <= self.hypotheses <= 10_000:
            raise InputError(f"hypotheses must be 1-10000, got {self.hypotheses}")
        if not 1 <= self.parity_samples <= 100_000:
            raise InputError(f"parity samples must be 1-100000, got {self.parity_samples}")
        if self.picture_every < 1:
            raise InputError(f"picture interval must be >= 1 frame, got {self.picture_every}")
        from posedeploy.runtime.loading import AUTO, BACKENDS

        if self.backend not in (AUTO, *BACKENDS):
            raise InputError(f"unknown backend '{self.backend}'; expected {AUTO} or one of {', '.join(BACKENDS)}")
        from posedeploy.engines.build import RTX_TARGETS

        unknown = [c for c in self.compute_capabilities if c not in RTX_TARGETS]
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


def _export(checkpoint: Path, artifacts: Path) -> dict:
    from posedeploy.export.onnx_export import export_artifacts

    manifest = export_artifacts(checkpoint, artifacts, fp16=True)
    return {
        "status": "done",
        "folder": "artifacts",
        "opset": manifest.opset,
        "files": {
            name: {"sha256": f.sha256, "bytes": f.bytes, "precision": f.precision} for name, f in manifest.files.items()
        },
    }


def _engine(artifacts: Path, s: DeploySettings) -> dict:
    """Build the FP16 engine where a TensorRT builder and a target exist; say why not otherwise."""
    from posedeploy.engines.build import BuildSettings, build_engine
    from posedeploy.engines.flavour import load_tensorrt
    from posedeploy.engines.machine import describe_machine

    try:
        trt = load_tensorrt()
    except MissingDependencyError:
        return {
            "status": "skipped",
            "reason": "no TensorRT builder installed: pip install 'posedeploy[trt]' on a "
            "machine with an NVIDIA GPU, or 'posedeploy[rtx]' and --compute-capability (builds without a GPU)",
        }
    gpus = describe_machine().gpus
    if not gpus and not (trt.is_rtx and s.compute_capabilities):
        how = (
            "name the target GPU with --compute-capability, e.g. 8.9 or 12.0 (TensorRT for RTX builds without one)"
            if trt.is_rtx
            else "datacenter TensorRT builds only on the GPU it targets"
        )
        return {"status": "skipped", "reason": f"no CUDA GPU here to build for ({trt.flavour} {trt.version}): {how}"}
    manifest = build_engine(
        BuildSettings(
            artifacts, precision="fp16", flavour=trt.flavour, compute_capabilities=tuple(s.compute_capabilities)
        )
    )
    # An engine runs only on the compute capability it was built for (an RTX target named for another GPU does not).
    runnable = bool(gpus) and gpus[0].compute_capability in manifest.target.compute_capabilities
    plan = manifest.plan
    return {
        "status": "done",
        "runnable_here": runnable,
        "tensorrt": to_json(manifest.tensorrt),
        "target": to_json(manifest.target),
        "build_seconds": manifest.build_seconds,
        "files": {plan.file: {"sha256": plan.sha256, "bytes": plan.bytes, "precision": "fp16"}},
    }


def _parity(checkpoint: Path, artifacts: Path, engine: dict, s: DeploySettings) -> dict:
    from posedeploy.data import evenly_spaced, load_dataset
    from posedeploy.parity import run_parity
    from posedeploy.runtime.backend_choice import installed_backends

    test = evenly_spaced(load_dataset("synthetic", "test", "gt"), s.parity_samples)
    runs = [("onnxruntime", p) for p in PRECISIONS]
    if "openvino" in installed_backends():
        runs.append(("openvino", "fp32"))
    if engine.get("runnable_here"):
        runs.append(("tensorrt", "fp16"))
    results = []
    for backend, precision in runs:
        logger.info(
            f"deploy: parity of {backend} {precision} against PyTorch ({len(test)} poses x {s.hypotheses} hypotheses)"
        )
        report = run_parity(
            checkpoint, artifacts, test, hypotheses=s.hypotheses, precision=precision, seed=s.seed, backend=backend
        )
        results.append(report.as_dict())
    skipped = None
    if engine.get("status") == "done" and not engine.get("runnable_here"):
        skipped = "the TensorRT engine was built for another GPU and cannot run on this machine"
    return {
        "status": "done" if all(r["passed"] for r in results) else "failed",
        "runs": results,
        "engine_not_run": skipped,
    }


def _bench(checkpoint: Path, artifacts: Path, engine: dict, s: DeploySettings) -> dict:
    from posedeploy.artifacts import read_manifest
    from posedeploy.bench.command import make_targets
    from posedeploy.bench.harness import BenchSettings, run_sweep
    from posedeploy.runtime.backend_choice import installed_backends

    backends = ["torch", "onnxruntime"] + [b for b in ("openvino",) if b in installed_backends()]
    backends += ["tensorrt"] if engine.get("runnable_here") else []
    device = "cuda" if engine.get("runnable_here") else "cpu"
    targets = make_targets(artifacts, backends, list(PRECISIONS), checkpoint, None, device)
    settings = BenchSettings(
        batches=list(s.bench_batches), hypotheses=[s.hypotheses], warmup=1, min_repeats=3, min_seconds=s.bench_seconds
    )
    logger.info(f"deploy: bench {', '.join(t.label for t in targets)} at B {s.bench_batches}, S {s.hypotheses}")
    try:
        report = run_sweep(targets, settings, read_manifest(artifacts).manifest.flops)
    finally:
        for t in targets:
            t.close()
    cells = [
        {
            k: c[k]
            for k in (
                "label",
                "backend",
                "precision",
                "device",
                "batch",
                "hypotheses",
                "repeats",
                "frames_per_s",
                "hypotheses_per_s",
                "speedup_vs_torch",
            )
        }
        | {"p50_ms": c["latency_ms"]["p50"], "p99_ms": c["latency_ms"]["p99"]}
        for c in report["results"]
    ]
    return {"status": "done", "settings": report["settings"], "results": cells}


def builtin_sequence(activity: str = "walking"):
    """The first built-in test sequence of ``activity``: (PoseSet rows, name)."""
    from posedeploy.data import load_dataset

    test = load_dataset("synthetic", "test", "gt")
    first = next(i for i, a in enumerate(test.actions) if a == activity)
    rows = np.flatnonzero(test.subjects == test.subjects[first])
    return test.take(rows), f"{test.subjects[first]}-{activity}"


def _sequence(artifacts: Path, out: Path, s: DeploySettings) -> dict:
    from posedeploy.files import atomic_path
    from posedeploy.runtime import MultiHypothesisLifter

    seq, name = builtin_sequence()
    pixels, size = seq.pixels(), tuple(float(v) for v in seq.image_sizes[0])
    with MultiHypothesisLifter(artifacts, hypotheses=s.hypotheses, seed=s.seed, backend=s.backend) as lifter:
        backend = lifter.backend.describe()
        result = lifter(pixels, image_size=size, units="mm", keep_hypotheses=True)
    truth = seq.poses_3d * 1000.0
    scores = {
        "mpjpe_mm": float(metrics.mpjpe(result.pose, truth).mean()),
        "best_of_s_mpjpe_mm": float(metrics.best_of_mpjpe(result.hypotheses, truth).mean()),
        "mean_spread_mm": float(result.spread.mean()),
    }
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "lifted.npz") as tmp, open(tmp, "wb") as f:
        np.savez(
            f, keypoints_px=pixels, pose_mm=result.pose, spread_mm=result.spread, truth_mm=truth, frames=seq.frames
        )
    pictures: list[str] = []
    skipped = None
    if s.pictures:
        try:
            from posedeploy.visualize import save_frames

            logger.info(f"deploy: drawing {len(range(0, len(seq), s.picture_every))} pictures and a GIF of {name}")
            written = save_frames(
                out,
                name,
                seq.frames,
                pixels,
                result.pose,
                result.spread,
                result.hypotheses,
                gif=True,
                every=s.picture_every,
            )
            pictures = [p.name for p in written]
        except MissingDependencyError as exc:
            skipped = f"no pictures: {exc}"
    return {
        "status": "done",
        "name": name,
        "activity": str(seq.actions[0]),
        "frames": len(seq),
        "fps": seq.meta.get("fps"),
        "image_size": list(size),
        "backend": backend,
        "hypotheses": s.hypotheses,
        **scores,
        "pictures": pictures,
        "pictures_skipped": skipped,
    }


def _entry(path: Path) -> dict:
    return {"sha256": sha256_file(path), "bytes": path.stat().st_size}


def _listing(stage: Path) -> dict[str, dict]:
    return {str(p.relative_to(stage)): _entry(p) for p in sorted(stage.rglob("*")) if p.is_file()}


def _run_step(report: dict, name: str, index: int, fn) -> dict:
    logger.info(f"deploy [{index}/{len(STEPS)}] {name}")
    started = time.monotonic()
    try:
        result = fn()
    except (PoseDeployError, OSError) as exc:
        if isinstance(exc, InputError):
            raise
        result = {"status": "failed", "error": str(exc)}
    result["seconds"] = round(time.monotonic() - started, 2)
    report["steps"][name] = result
    if result["status"] == "skipped":
        logger.info(f"deploy: {name} skipped: {result['reason']}")
    return result


def deploy(checkpoint: Path | None, out: Path, settings: DeploySettings | None = None) -> dict:
    """Run every step into ``out``; returns the report (also written as DIR/report.json)."""
    s = settings or DeploySettings()
    s.validate()
    out = Path(out)
    check_output(out)
    with deploy_lock(out):
        recover(out)  # a deploy killed while swapping folders: the earlier result back first
        check_replaceable(out)
        return _deploy(checkpoint, out, s)


def _deploy(checkpoint: Path | None, out: Path, s: DeploySettings) -> dict:
    from posedeploy.assets import resolve_checkpoint
    from posedeploy.bench.harness import machine_summary
    from posedeploy.training.checkpoint import load_checkpoint

    checkpoint = resolve_checkpoint(checkpoint)
    ckpt = load_checkpoint(checkpoint)
    ckpt.build_avg()  # a lifter-only checkpoint is refused here, before anything is written
    started = time.monotonic()
    report: dict = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "posedeploy": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "folder": str(out.resolve()),
        "checkpoint": {
            "path": str(checkpoint),
            "sha256": sha256_file(checkpoint),
            "lifter": ckpt.config.lifter,
            "avg": ckpt.config.avg,
            "alpha": ckpt.config.alpha,
            "trained_on": ckpt.config.keypoints,
        },
        "settings": asdict(s),
        "machine": machine_summary(),
        "steps": {},
    }
    stage = new_stage(out)
    try:
        artifacts = stage / "artifacts"
        export = _run_step(report, "export", 1, lambda: _export(checkpoint, artifacts))
        if export["status"] != "done":
            raise PoseDeployError(f"export failed: {export.get('error')}")
        engine = _run_step(report, "engine", 2, lambda: _engine(artifacts, s))
        _run_step(report, "parity", 3, lambda: _parity(checkpoint, artifacts, engine, s))
        _run_step(report, "bench", 4, lambda: _bench(checkpoint, artifacts, engine, s))
        _run_step(report, "sequence", 5, lambda: _sequence(artifacts, stage / "sequence", s))
        report["files"] = _listing(stage)
        report["passed"] = all(step["status"] in ("done", "skipped") for step in report["steps"].values())
        report["seconds"] = round(time.monotonic() - started, 1)
        from posedeploy.deploy_report import render_markdown

        (stage / REPORT_MD).write_text(render_markdown(report))
        # Every file this deploy wrote is listed with its hash (report.json by its name): what a later
        # deploy may replace.
        report["files"][REPORT_MD] = _entry(stage / REPORT_MD)
        write_json(stage / REPORT_JSON, report)  # strict JSON, like every report
        replace(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    logger.info(f"deploy: done in {report['seconds']:.0f} s -> {out / REPORT_MD}")
    return report
