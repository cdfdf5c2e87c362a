"""The glue of ``posedeploy bench``: choose targets, run the sweep and the stream, report."""

from __future__ import annotations

import importlib.util
import logging
import tempfile
from pathlib import Path

from posedeploy.artifacts import read_manifest
from posedeploy.bench.harness import BenchSettings, machine_summary, measure_peak_gflops, run_sweep
from posedeploy.bench.streaming import run_stream
from posedeploy.bench.targets import BackendTarget, Target, TorchTarget
from posedeploy.errors import InputError, PoseDeployError
from posedeploy.files import sha256_file

logger = logging.getLogger(__name__)

BACKENDS = ("torch", "onnxruntime", "openvino", "tensorrt")
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


def _checkpoint_for(artifacts, checkpoint: Path | None) -> Path | None:
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
    if "torch" in backends:
        if importlib.util.find_spec("torch") is None:
            logger.info("bench: torch is not installed; no PyTorch baseline")
        else:
            ckpt = _checkpoint_for(artifacts, checkpoint)
            if ckpt is None:
                logger.info(
                    "bench: the checkpoint of these artifacts was not found (pass --checkpoint); no PyTorch baseline"
                )
            else:
                targets.append(TorchTarget(ckpt, torch_device))
    for backend in (b for b in backends if b != "torch"):
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


def format_report(report: dict) -> str:
    lines = [
        f"{'backend':<24}{'B':>4}{'S':>5}{'p50 ms':>10}{'p99 ms':>10}{'frames/s':>10}{'hyp/s':>11}"
        f"{'GFLOP/s':>9}{'of peak':>8}{'x torch':>8}"
    ]
    for c in report["results"]:
        peak = f"{c['fraction_of_peak']:.0%}" if c.get("fraction_of_peak") is not None else "-"
        speed = f"{c['speedup_vs_torch']:.2f}" if c.get("speedup_vs_torch") else "-"
        gflops = f"{c['gflops']:.1f}" if c.get("gflops") is not None else "-"
        lines.append(
            f"{c['label']:<24}{c['batch']:>4}{c['hypotheses']:>5}{c['latency_ms']['p50']:>10.2f}"
            f"{c['latency_ms']['p99']:>10.2f}{c['frames_per_s']:>10.1f}{c['hypotheses_per_s']:>11.0f}"
            f"{gflops:>9}{peak:>8}{speed:>8}"
        )
    for device, peak in report["peaks"].items():
        lines.append(f"peak {device}: {peak['gflops']:.1f} GFLOP/s ({peak['method']})")
    for label, fit in report["fits"].items():
        if fit["slope_us_per_hypothesis"] is not None:
            cliffs = (
                ", ".join(f"B={c['batch']} S={c['hypotheses']} +{c['excess']:.0%}" for c in fit["cliffs"]) or "none"
            )
            lines.append(
                f"{label}: {fit['intercept_ms']:.2f} ms + {fit['slope_us_per_hypothesis']:.2f} us x B*S "
                f"(R^2 {fit['r2']:.3f}); cliffs: {cliffs}"
            )
    for s in report.get("streaming", []):
        lines.append(
            f"stream {s['backend']} at {s['fps']:g} fps, S={s['hypotheses']}: "
            f"latency p50 {s['latency_ms']['p50']:.1f} ms, "
            f"p99 {s['latency_ms']['p99']:.1f} ms, jitter {s['jitter_ms']:.1f} ms, dropped {s['dropped']}/{s['frames']}"
        )
    return "\n".join(lines)


def bench(
    artifacts: Path | None,
    backends: list[str],
    precisions: list[str],
    settings: BenchSettings,
    checkpoint: Path | None = None,
    threads: int | None = None,
    torch_device: str = "cpu",
    stream_fps: float | None = None,
    stream_frames: int = 100,
) -> dict:
    settings.validate()  # before any export or model is loaded
    if stream_fps is not None and not (0 < stream_fps <= MAX_STREAM_FPS):
        raise InputError(f"stream frame rate must be a number of frames/s in (0, {MAX_STREAM_FPS}], got {stream_fps}")
    if stream_fps is not None and not 1 <= stream_frames <= MAX_STREAM_FRAMES:
        raise InputError(f"stream frames must be 1-{MAX_STREAM_FRAMES:,}, got {stream_frames}")
    if "torch" in backends and importlib.util.find_spec("torch") is not None:
        from posedeploy.training.device import resolve_device

        resolve_device(torch_device)
    with tempfile.TemporaryDirectory(prefix="posedeploy-bench-") as scratch:
        return _bench(
            default_artifacts(artifacts, Path(scratch)),
            backends,
            precisions,
            settings,
            checkpoint,
            threads,
            torch_device,
            stream_fps,
            stream_frames,
        )


def _bench(
    artifacts_dir: Path,
    backends: list[str],
    precisions: list[str],
    settings: BenchSettings,
    checkpoint: Path | None,
    threads: int | None,
    torch_device: str,
    stream_fps: float | None,
    stream_frames: int,
) -> dict:
    manifest = read_manifest(artifacts_dir).manifest
    targets = make_targets(artifacts_dir, backends, precisions, checkpoint, threads, torch_device)
    try:
        logger.info(f"bench: {', '.join(t.label for t in targets)}; B {settings.batches}, S {settings.hypotheses}")
        peaks = {"cpu": measure_peak_gflops("cpu")}
        if any(t.device.startswith("cuda") for t in targets) and importlib.util.find_spec("torch"):
            peaks["cuda"] = measure_peak_gflops("cuda")
        report = run_sweep(targets, settings, manifest.flops, peaks)
        if stream_fps:
            report["streaming"] = [run_stream(t, stream_fps, stream_frames, max(settings.hypotheses)) for t in targets]
    finally:
        for t in targets:
            t.close()
    report["model"] = f"{manifest.config.lifter} + AVG {manifest.config.avg}"
    report["machine"] = machine_summary()
    report["artifacts"] = {"path": str(artifacts_dir), "checkpoint_sha256": manifest.checkpoint.sha256}
    return report
