"""A Triton Inference Server model repository for the exported pipeline.

    triton/posedeploy_pipeline/       ONNX Runtime, float32 graph (CUDA on GPU instances, else CPU)
    triton/posedeploy_pipeline_fp16/  ONNX Runtime, mixed-precision graph              (with --fp16)
    triton/posedeploy_pipeline_trt/   ONNX Runtime with the TensorRT accelerator in FP16: Triton builds
                                      the engine for its own GPU when it loads the model

Requests carry one or more frames (the batch axis B, dynamically batched by Triton) and their
noise (B, S, 2, 17, 2); requests with the same S are batched together.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import onnx

from posedeploy.artifacts import FileEntry, TritonModel
from posedeploy.files import atomic_path
from posedeploy.records import to_json

MAX_BATCH = 64
_TYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16"}


def _tensor(name: str, dtype: str, dims: list[int | str]) -> str:
    shape = ", ".join("-1" if isinstance(d, str) else str(d) for d in dims[1:])  # drop the batch axis
    return f'  {{ name: "{name}", data_type: {_TYPES[dtype]}, dims: [ {shape} ] }}'


def model_config(name: str, io: dict[str, dict[str, dict[str, Any]]], accelerator: str | None = None) -> str:
    """config.pbtxt of one ONNX Runtime model with dynamic batching."""
    inputs = ",\n".join(_tensor(n, v["dtype"], v["shape"]) for n, v in io["inputs"].items())
    outputs = ",\n".join(_tensor(n, v["dtype"], v["shape"]) for n, v in io["outputs"].items())
    lines = [
        f'name: "{name}"',
        'platform: "onnxruntime_onnx"',
        f"max_batch_size: {MAX_BATCH}",
        f"input [\n{inputs}\n]",
        f"output [\n{outputs}\n]",
        "dynamic_batching {\n  preferred_batch_size: [ 16, 64 ]\n  max_queue_delay_microseconds: 2000\n}",
        "instance_group [ { count: 1, kind: KIND_AUTO } ]",
    ]
    if accelerator == "tensorrt":
        lines.append(
            "optimization { execution_accelerators { gpu_execution_accelerator: [ {\n"
            '  name: "tensorrt"\n'
            '  parameters { key: "precision_mode" value: "FP16" }\n'
            '  parameters { key: "max_workspace_size_bytes" value: "1073741824" }\n'
            "} ] } }"
        )
    return "\n".join(lines) + "\n"


def write_model_repository(
    stack: contextlib.ExitStack, root: Path, graphs: dict[str, onnx.ModelProto], files: dict[str, FileEntry]
) -> dict[str, TritonModel]:
    """Write the repository through ``stack`` (atomic files, renamed with the rest of the export)."""
    models = {"posedeploy_pipeline": ("pipeline.onnx", None), "posedeploy_pipeline_trt": ("pipeline.onnx", "tensorrt")}
    if "pipeline.fp16" in graphs:
        models["posedeploy_pipeline_fp16"] = ("pipeline.fp16.onnx", None)
    written = {}
    for model, (filename, accelerator) in models.items():
        io = {"inputs": to_json(files[filename].inputs), "outputs": to_json(files[filename].outputs)}
        config = stack.enter_context(atomic_path(root / model / "config.pbtxt"))
        config.write_text(model_config(model, io, accelerator))
        graph = stack.enter_context(atomic_path(root / model / "1" / "model.onnx"))
        graph.write_bytes(graphs[filename.removesuffix(".onnx")].SerializeToString())
        written[model] = TritonModel(filename, accelerator or "none")
    return written
