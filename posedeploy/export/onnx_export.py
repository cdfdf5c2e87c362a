"""``posedeploy export``: a checkpoint -> avg.onnx, lifter.onnx, pipeline.onnx (+ pipeline.fp16.onnx),
manifest.json, and optionally a Triton model repository.

Graphs are traced with the TorchScript exporter (opset 17: what TensorRT 10.3 on Jetson and every
current ONNX Runtime read) with dynamic B and S, checked by the ONNX checker and strict shape
inference, and compared with PyTorch under ONNX Runtime before anything is moved into place.
Every file is written under a temporary name and renamed when all are complete, the manifest last,
so that an interrupted export leaves either the previous artifacts or a manifest that refuses the
mixed set (its hashes do not match).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import platform
import time
import warnings
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx
import torch
from torch import nn

from posedeploy import __version__
from posedeploy.artifacts import (
    FORMAT,
    GRAPHS,
    MANIFEST,
    CheckpointRef,
    Contract,
    ExportConfig,
    ExportManifest,
    FileEntry,
    Flops,
    Int8Calibration,
    Int8Info,
    Memory,
    TensorEntry,
)
from posedeploy.contract import INPUTS, OUTPUTS, RNG_INPUTS, draw_noise
from posedeploy.errors import ArtifactError
from posedeploy.export.fp16 import to_mixed_precision
from posedeploy.export.fused_gcn import for_inference
from posedeploy.files import atomic_path, check_writable, folder_lock, sha256_file
from posedeploy.reference.sampler import InGraphNoisePipeline, PipelineModule
from posedeploy.skeleton import JOINTS_LEFT, JOINTS_RIGHT, PARENTS
from posedeploy.training.checkpoint import Checkpoint, load_checkpoint

if TYPE_CHECKING:
    from posedeploy.data import PoseSet

logger = logging.getLogger(__name__)

OPSET = 17
# Largest |ONNX Runtime - PyTorch| accepted by the export self-check, in metres (float32 graphs).
SELF_CHECK_TOLERANCE = 1e-4


class AVGGraph(nn.Module):
    def __init__(self, avg: nn.Module):
        super().__init__()
        self.avg = avg

    def forward(self, keypoints: torch.Tensor) -> torch.Tensor:
        relative_error: torch.Tensor = self.avg(keypoints)
        return relative_error


class LifterGraph(nn.Module):
    def __init__(self, lifter: nn.Module):
        super().__init__()
        self.lifter = lifter

    def forward(self, keypoints: torch.Tensor) -> torch.Tensor:
        pose: torch.Tensor = self.lifter(keypoints)
        return pose


def _trace(
    module: nn.Module,
    args: tuple[torch.Tensor, ...],
    inputs: list[str],
    outputs: list[str],
    axes: dict[str, dict[int, str]],
) -> onnx.ModelProto:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shape-dependent Python branches
        torch.onnx.export(
            module,
            args,
            buffer,  # type: ignore[arg-type]  # torch's annotation omits the files the TorchScript exporter takes
            dynamo=False,
            opset_version=OPSET,
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=axes,
            do_constant_folding=True,
        )
    model = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(model, full_check=True)
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


OUTPUT_AXES = {"sigma": {0: "B"}, "hypotheses": {0: "B", 1: "S"}, "pose": {0: "B"}, "spread": {0: "B"}}


def _graphs(ckpt: Checkpoint, in_graph_noise: bool) -> dict[str, onnx.ModelProto]:
    # The graph computes the inference form of the graph models (same function; see fused_gcn.py).
    lifter, avg = for_inference(ckpt.build_lifter()), for_inference(ckpt.build_avg())
    pipeline = PipelineModule(lifter, avg, ckpt.config.alpha).eval()
    kp = torch.zeros(2, 17, 2)
    noise = torch.zeros(2, 3, 2, 17, 2)
    n_axis = {0: "N"}
    graphs = {
        "avg": _trace(
            AVGGraph(avg).eval(),
            (kp,),
            ["keypoints"],
            ["relative_error"],
            {"keypoints": n_axis, "relative_error": n_axis},
        ),
        "lifter": _trace(
            LifterGraph(lifter).eval(), (kp,), ["keypoints"], ["pose_3d"], {"keypoints": n_axis, "pose_3d": n_axis}
        ),
        "pipeline": _trace(
            pipeline,
            (kp, noise),
            list(INPUTS),
            list(OUTPUTS),
            {"keypoints": {0: "B"}, "noise": {0: "B", 1: "S"}, **OUTPUT_AXES},
        ),
    }
    if in_graph_noise:
        graphs["pipeline.rng"] = _trace(
            InGraphNoisePipeline(pipeline).eval(),
            (kp, torch.zeros(3)),
            list(RNG_INPUTS),
            list(OUTPUTS),
            {"keypoints": {0: "B"}, "slots": {0: "S"}, **OUTPUT_AXES},
        )
    return graphs


def _self_check(ckpt: Checkpoint, model: onnx.ModelProto, tolerance: float) -> float:
    """Largest difference to PyTorch on a small random batch under ONNX Runtime (CPU)."""
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    kp = rng.normal(scale=0.3, size=(3, 17, 2)).astype(np.float32)
    noise = draw_noise(rng, 3, 5)
    pipeline = PipelineModule(ckpt.build_lifter(), ckpt.build_avg(), ckpt.config.alpha).eval()
    with torch.no_grad():
        expected = [t.numpy() for t in pipeline(torch.from_numpy(kp), torch.from_numpy(noise))]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(list(OUTPUTS), {"keypoints": kp, "noise": noise})
    # np.max keeps a NaN where Python's max() would step over it.
    worst = float(np.max([np.abs(g - e).max() for g, e in zip(got, expected, strict=True)]))
    if not all(np.isfinite(g).all() for g in got):
        raise ArtifactError("the exported graph gives non-finite outputs on ordinary poses; not written")
    if not worst <= tolerance:
        raise ArtifactError(
            f"exported graph differs from PyTorch by {worst:.3g} m (allowed {tolerance:g}); not written"
        )
    return worst


def _flops_per_pose(model: nn.Module) -> int:
    """Multiply-add FLOPs of one pose (matrix products and convolutions, as PyTorch counts them)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(8, 17, 2))
    flops: int = counter.get_total_flops()
    return flops // 8


def _activation_bytes_per_pose(model: nn.Module) -> int:
    """Float32 bytes of every intermediate output of one pose: an upper bound of the activation
    memory a call needs per lifted pose (runtimes reuse buffers, so they need less)."""
    total = 0

    def hook(_module: nn.Module, _inputs: tuple[object, ...], output: object) -> None:
        nonlocal total
        if isinstance(output, torch.Tensor):
            total += output.numel() * 4

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            model(torch.zeros(8, 17, 2))
    finally:
        for h in handles:
            h.remove()
    return total // 8


def _metadata(ckpt: Checkpoint, checkpoint_hash: str, graph: str, precision: str) -> dict[str, str]:
    c = ckpt.config
    return {
        "posedeploy.format": FORMAT,
        "posedeploy.version": __version__,
        "graph": graph,
        "precision": precision,
        "lifter": c.lifter,
        "avg": c.avg or "",
        "alpha": repr(c.alpha),
        "joints": ",".join(c.joints),
        "parents": ",".join(map(str, PARENTS)),
        "joints_left": ",".join(map(str, JOINTS_LEFT)),
        "joints_right": ",".join(map(str, JOINTS_RIGHT)),
        "normalisation": c.normalisation,
        "units": c.units,
        "trained_on": c.keypoints,
        "checkpoint_sha256": checkpoint_hash,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "opset": str(OPSET),
    }


def _io(model: onnx.ModelProto) -> tuple[dict[str, TensorEntry], dict[str, TensorEntry]]:
    def describe(values: Iterable[onnx.ValueInfoProto]) -> dict[str, TensorEntry]:
        return {
            v.name: TensorEntry(
                onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name,
                [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim],
            )
            for v in values
        }

    return describe(model.graph.input), describe(model.graph.output)


def export_artifacts(
    checkpoint: str | Path,
    out_dir: str | Path,
    fp16: bool = False,
    triton: bool = False,
    in_graph_noise: bool = False,
    int8_calibration: PoseSet | None = None,
) -> ExportManifest:
    """Write the artifacts of ``checkpoint`` into ``out_dir``; returns the manifest. With
    ``int8_calibration`` (a PoseSet of training poses) also pipeline.int8.onnx."""
    started = time.monotonic()
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ArtifactError(f"{out_dir} exists and is not a directory")
    check_writable(out_dir)  # before the minutes of tracing, not after
    ckpt = load_checkpoint(checkpoint)
    ckpt.build_avg()  # fails early, with its own message, for a checkpoint without an AVG model
    checkpoint_hash = sha256_file(checkpoint)
    graphs, precision, int8 = _all_graphs(ckpt, fp16, in_graph_noise, int8_calibration)
    for name, model in graphs.items():
        onnx.helper.set_model_props(model, _metadata(ckpt, checkpoint_hash, name, precision[name]))
        model.producer_name, model.producer_version = "posedeploy", __version__
    manifest = _manifest(ckpt, CheckpointRef(str(checkpoint), checkpoint_hash), int8)
    manifest = _write(out_dir, graphs, precision, manifest, triton)
    for stale in remove_stale(out_dir, manifest):
        logger.info(f"export: removed {stale} (from an earlier export, not part of this one)")
    logger.info(f"export: done in {time.monotonic() - started:.1f} s -> {out_dir}")
    return manifest


def _all_graphs(
    ckpt: Checkpoint, fp16: bool, in_graph_noise: bool, int8_calibration: PoseSet | None
) -> tuple[dict[str, onnx.ModelProto], dict[str, str], Int8Info | None]:
    """Every graph of the export by GRAPHS key, the precision of each, and how INT8 was calibrated."""
    logger.info(f"export: tracing {ckpt.config.lifter} + AVG '{ckpt.config.avg}' (opset {OPSET}, dynamic B and S)")
    graphs = _graphs(ckpt, in_graph_noise)
    worst = _self_check(ckpt, graphs["pipeline"], SELF_CHECK_TOLERANCE)
    logger.info(f"export: pipeline.onnx matches PyTorch within {worst:.2g} m under ONNX Runtime")
    precision = {name: "fp32" for name in graphs}
    if fp16:
        for name in [n for n in graphs if n.startswith("pipeline")]:
            graphs[f"{name}.fp16"] = to_mixed_precision(graphs[name])
            precision[f"{name}.fp16"] = "fp16-mixed"
        logger.info(
            "export: pipeline.fp16.onnx: lifter and AVG in float16, normalisation/softmax/reductions and "
            "the sigma, noise and aggregation arithmetic in float32"
        )
    int8 = None
    if int8_calibration is not None:
        from posedeploy.export.int8 import METHOD, quantise_pipeline

        graphs["pipeline.int8"], poses = quantise_pipeline(graphs["pipeline"], int8_calibration.keypoints)
        precision["pipeline.int8"] = "int8"
        int8 = Int8Info(Int8Calibration(int8_calibration.source, poses), METHOD)
    return graphs, precision, int8


def _manifest(ckpt: Checkpoint, checkpoint: CheckpointRef, int8: Int8Info | None) -> ExportManifest:
    """The manifest of an export of ``ckpt``, its files still to be added."""
    c = ckpt.config
    config = ExportConfig(
        lifter=c.lifter,
        avg=c.avg,
        alpha=c.alpha,
        joints=list(c.joints),
        parents=list(PARENTS),
        joints_left=list(JOINTS_LEFT),
        joints_right=list(JOINTS_RIGHT),
        normalisation=c.normalisation,
        units=c.units,
        trained_on=c.keypoints,
        uncertainty=ckpt.calibration(),
    )
    return ExportManifest(
        checkpoint=checkpoint,
        config=config,
        files={},
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        posedeploy=__version__,
        versions={"torch": torch.__version__, "onnx": onnx.__version__, "python": platform.python_version()},
        opset=OPSET,
        contract=Contract(list(INPUTS), list(OUTPUTS)),
        flops=Flops(_flops_per_pose(ckpt.build_lifter()), _flops_per_pose(ckpt.build_avg())),
        # the lifter's activations, and each lifted pose's input and output, both views
        memory=Memory(_activation_bytes_per_pose(ckpt.build_lifter()) + (17 * 2 + 17 * 3) * 4 * 2),
        int8=int8,
    )


def _write(
    out_dir: Path, graphs: dict[str, onnx.ModelProto], precision: dict[str, str], manifest: ExportManifest, triton: bool
) -> ExportManifest:
    """Every graph, the Triton repository if asked, and the manifest (renamed into place last)."""
    files: dict[str, FileEntry] = {}
    with folder_lock(out_dir, "export"), contextlib.ExitStack() as stack:
        # Entered first, renamed last (ExitStack unwinds in reverse): the manifest lands after the graphs.
        manifest_tmp = stack.enter_context(atomic_path(out_dir / MANIFEST))
        for name, model in graphs.items():
            filename = GRAPHS[name]
            tmp = stack.enter_context(atomic_path(out_dir / filename))
            onnx.save(model, tmp)
            inputs, outputs = _io(model)
            files[filename] = FileEntry(sha256_file(tmp), tmp.stat().st_size, precision[name], inputs, outputs)
            logger.info(f"export: {filename} ({tmp.stat().st_size / 1e6:.1f} MB)")
        repository = None
        if triton:
            from posedeploy.export.triton import write_model_repository

            repository = write_model_repository(stack, out_dir / "triton", graphs, files)
            logger.info(f"export: Triton model repository in {out_dir / 'triton'}")
        manifest = dataclasses.replace(manifest, files=files, triton=repository)
        manifest_tmp.write_text(json.dumps(manifest.to_json(), indent=2) + "\n")
    return manifest


def remove_stale(out_dir: Path, manifest: ExportManifest) -> list[str]:
    """Delete what an earlier export into ``out_dir`` left that this one did not write: graphs it
    no longer has, a Triton repository it did not lay out, engines built from other graphs."""
    import shutil

    removed = []
    hashes = {entry.sha256 for entry in manifest.files.values()}
    for name in GRAPHS.values():
        if name not in manifest.files and (out_dir / name).is_file():
            (out_dir / name).unlink()
            removed.append(name)
    if manifest.triton is None and (out_dir / "triton").is_dir():
        shutil.rmtree(out_dir / "triton")
        removed.append("triton/")
    for plan_manifest in out_dir.glob("*.plan.json"):
        try:
            built_from = json.loads(plan_manifest.read_text())["onnx"]["sha256"]
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            built_from = None
        if built_from not in hashes:
            plan = plan_manifest.with_name(plan_manifest.name.removesuffix(".json"))
            for path in (plan, plan_manifest):
                if path.exists():
                    path.unlink()
                    removed.append(path.name)
    return removed
