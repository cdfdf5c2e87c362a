"""The artifact directory that ``posedeploy export`` writes and every runtime reads (no torch, no onnx).

    DIR/manifest.json      what made the graphs, from what, with which versions, and each file's hash
    DIR/avg.onnx           AVG model:  keypoints (N, 17, 2) -> relative_error (N, 17)
    DIR/lifter.onnx        lifter:     keypoints (N, 17, 2) -> pose_3d (N, 17, 3)
    DIR/pipeline.onnx      the whole contract (see posedeploy.contract), float32
    DIR/pipeline.fp16.onnx the same, mixed precision (with --fp16)
    DIR/pipeline.int8.onnx the same, the lifter's matrix products in INT8 (with --int8)
    DIR/pipeline.rng*.onnx the pipeline with in-graph noise (with --in-graph-noise)

A runtime refuses a directory whose manifest is missing, of another format or of a newer version,
or whose files do not have the size and hash the manifest records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from posedeploy.errors import ArtifactError, InputError
from posedeploy.files import sha256_file
from posedeploy.records import OPTIONAL, POSITIVE, Record, read_record
from posedeploy.uncertainty import Calibration

FORMAT = "posedeploy.artifacts"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
GRAPHS = {
    "avg": "avg.onnx",
    "lifter": "lifter.onnx",
    "pipeline": "pipeline.onnx",
    "pipeline.fp16": "pipeline.fp16.onnx",
    "pipeline.int8": "pipeline.int8.onnx",  # the lifter's matrix products in INT8 (export --int8)
    # The same pipeline drawing its noise on the device (RandomNormalLike) from a 'slots' input of
    # length S, for production runs without a host round-trip; not for parity (no fixed draws).
    "pipeline.rng": "pipeline.rng.onnx",
    "pipeline.rng.fp16": "pipeline.rng.fp16.onnx",
}


PRECISIONS = ("fp32", "fp16", "int8")
NOISE_SOURCES = ("host", "device")


def pipeline_graph(precision: str = "fp32", noise: str = "host") -> str:
    """The GRAPHS key of the pipeline in ``precision`` with host (input) or device (in-graph) noise."""
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, got '{precision}'")
    if noise not in NOISE_SOURCES:
        raise InputError(f"noise source must be one of {', '.join(NOISE_SOURCES)}, got '{noise}'")
    if precision == "int8" and noise == "device":
        raise InputError("the INT8 pipeline takes its noise as an input; use --noise-source host")
    return "pipeline" + (".rng" if noise == "device" else "") + ("" if precision == "fp32" else f".{precision}")


def plan_filename(graph: str, rtx: bool = False) -> str:
    """Engine file of a pipeline graph: pipeline[.rng].fp16[.rtx].plan (the precision always named)."""
    base = graph if graph.endswith(".fp16") else f"{graph}.fp32"
    return f"{base}{'.rtx' if rtx else ''}.plan"


@dataclass(frozen=True)
class TensorEntry:
    dtype: str
    shape: list[int | str]  # a number for a fixed axis, a name (B, S) for a dynamic one


@dataclass(frozen=True)
class FileEntry:
    """One file of the export: its size and hash (checked before any runtime reads it), precision and I/O."""

    sha256: str
    bytes: int = field(metadata=POSITIVE)
    precision: str
    inputs: dict[str, TensorEntry] | None = field(default=None, metadata=OPTIONAL)
    outputs: dict[str, TensorEntry] | None = field(default=None, metadata=OPTIONAL)


@dataclass(frozen=True)
class CheckpointRef:
    path: str
    sha256: str


@dataclass(frozen=True)
class ExportConfig:
    """What the graphs compute: the models, alpha, the joints and the coordinate conventions."""

    lifter: str
    alpha: float = field(metadata=POSITIVE)
    joints: list[str]
    avg: str | None = None
    parents: list[int] | None = field(default=None, metadata=OPTIONAL)
    joints_left: list[int] | None = field(default=None, metadata=OPTIONAL)
    joints_right: list[int] | None = field(default=None, metadata=OPTIONAL)
    normalisation: str | None = field(default=None, metadata=OPTIONAL)
    units: str | None = field(default=None, metadata=OPTIONAL)
    trained_on: str | None = field(default=None, metadata=OPTIONAL)
    # The spread's calibration (posedeploy calibrate), which the runtime applies; None: the raw spread.
    uncertainty: Calibration | None = field(default=None, metadata=OPTIONAL)


@dataclass(frozen=True)
class Contract:
    inputs: list[str]
    outputs: list[str]


@dataclass(frozen=True)
class Flops:
    """Matrix-product FLOPs of one pose: a (B, S) call costs B * (2 * avg + 2 * S * lifter)."""

    lifter_per_pose: int = field(metadata=POSITIVE)
    avg_per_pose: int = field(metadata=POSITIVE)


@dataclass(frozen=True)
class Memory:
    """What MultiHypothesisLifter sizes its calls by under a memory budget."""

    bytes_per_lifted_pose: int = field(metadata=POSITIVE)


@dataclass(frozen=True)
class Int8Calibration:
    data: str
    poses: int


@dataclass(frozen=True)
class Int8Info:
    calibration: Int8Calibration
    method: str


@dataclass(frozen=True)
class TritonModel:
    source: str
    accelerator: str


@dataclass(frozen=True, kw_only=True)
class ExportManifest(Record):
    """DIR/manifest.json: what made the graphs, from what, with which versions, and each file's hash."""

    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    created: str | None = field(default=None, metadata=OPTIONAL)
    posedeploy: str | None = field(default=None, metadata=OPTIONAL)
    versions: dict[str, str] | None = field(default=None, metadata=OPTIONAL)
    opset: int | None = field(default=None, metadata=OPTIONAL)
    checkpoint: CheckpointRef
    config: ExportConfig
    contract: Contract | None = field(default=None, metadata=OPTIONAL)
    flops: Flops | None = field(default=None, metadata=OPTIONAL)
    memory: Memory | None = field(default=None, metadata=OPTIONAL)
    files: dict[str, FileEntry]
    int8: Int8Info | None = field(default=None, metadata=OPTIONAL)
    triton: dict[str, TritonModel] | None = field(default=None, metadata=OPTIONAL)


@dataclass(frozen=True)
class Artifacts:
    """An export read from its folder: the folder and its checked manifest."""

    root: Path
    manifest: ExportManifest

    @property
    def config(self) -> ExportConfig:
        return self.manifest.config

    @property
    def alpha(self) -> float:
        return float(self.config.alpha)

    def path(self, graph: str) -> Path:
        """The verified file of ``graph`` (a key of :data:`GRAPHS`, or any file the manifest lists)."""
        name = GRAPHS.get(graph, graph)
        entry = self.manifest.files.get(name)
        if entry is None:
            have = ", ".join(sorted(self.manifest.files))
            raise ArtifactError(
                f"{self.root} has no {name} (it holds {have}); re-export with the option that writes it"
            )
        path = self.root / name
        if not path.is_file():
            raise ArtifactError(f"{path} is listed in the manifest but missing; re-run posedeploy export")
        verify_file(path, entry.sha256, entry.bytes, "re-run posedeploy export")
        return path


def verify_file(path: Path, sha256: str, size: int, remedy: str) -> None:
    """Refuse ``path`` unless its size and SHA-256 are those its manifest records."""
    if path.stat().st_size != size or sha256_file(path) != sha256:
        raise ArtifactError(
            f"{path} does not match its manifest (size or hash differs): it was changed, truncated or "
            f"half-written; {remedy}"
        )


def read_manifest(root: str | Path) -> Artifacts:
    root = Path(root)
    if not root.is_dir():
        raise ArtifactError(f"artifact directory not found: {root}")
    path = root / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{root} has no {MANIFEST}: it is not a posedeploy export (run posedeploy export)")
    manifest = read_record(
        path, ExportManifest, FORMAT, FORMAT_VERSION, "artifact", ArtifactError, "re-run posedeploy export"
    )
    if not manifest.files:
        raise ArtifactError(f"{path}: 'files' is empty; the manifest was edited or damaged, re-run posedeploy export")
    return Artifacts(root, manifest)
