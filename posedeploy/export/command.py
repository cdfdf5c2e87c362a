"""``posedeploy export`` as a library function: which checkpoint, into which folder, which graphs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from posedeploy.artifacts import ExportManifest
from posedeploy.errors import InputError

if TYPE_CHECKING:
    from posedeploy.data import PoseSet

FORMATS = ("onnx", "triton")


@dataclass(frozen=True)
class ExportSettings:
    checkpoint: str | Path | None = None  # a file or a shipped name; None: the default
    out: Path = Path("artifacts")
    fp16: bool = False  # also pipeline.fp16.onnx
    format: str = "onnx"  # or triton: also a Triton model repository
    in_graph_noise: bool = False  # also pipeline.rng*.onnx
    int8: bool = False  # also pipeline.int8.onnx
    calibration_data: str = "auto"  # for INT8: a Human3.6M folder, 'synthetic', or auto (Human3.6M when found)
    calibration_keypoints: str | None = None  # default: what the checkpoint was trained on


def export(settings: ExportSettings) -> ExportManifest:
    """Write avg.onnx, lifter.onnx and the fused pipeline.onnx (+ FP16, INT8, Triton) with a manifest."""
    from posedeploy.assets import resolve_checkpoint
    from posedeploy.export.onnx_export import export_artifacts

    s = settings
    if s.format not in FORMATS:
        raise InputError(f"export format must be onnx or triton, got '{s.format}'")
    checkpoint = resolve_checkpoint(s.checkpoint)
    calibration = int8_calibration(checkpoint, s.calibration_data, s.calibration_keypoints) if s.int8 else None
    return export_artifacts(
        checkpoint,
        s.out,
        fp16=s.fp16,
        triton=s.format == "triton",
        in_graph_noise=s.in_graph_noise,
        int8_calibration=calibration,
    )


def int8_calibration(checkpoint: Path, data: str, keypoints: str | None) -> PoseSet:
    """Evenly spaced training-split poses (never the test subjects) to calibrate INT8 on."""
    from posedeploy.data import evenly_spaced, keypoints_for, load_dataset, resolve_data
    from posedeploy.export.int8 import CALIBRATION_POSES
    from posedeploy.training.checkpoint import load_checkpoint

    source = resolve_data(data)
    kind = keypoints or keypoints_for(source, load_checkpoint(checkpoint).config.keypoints)
    return evenly_spaced(load_dataset(source, "train", kind), CALIBRATION_POSES)
