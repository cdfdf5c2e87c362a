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

import json
from dataclasses import dataclass
from pathlib import Path

from posedeploy.errors import ArtifactError, InputError
from posedeploy.files import sha256_file

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


@dataclass
class Artifacts:
    root: Path
    manifest: dict

    @property
    def config(self) -> dict:
        return self.manifest["config"]

    @property
    def alpha(self) -> float:
        return float(self.config["alpha"])

    def path(self, graph: str) -> Path:
        """The verified file of ``graph`` (a key of :data:`GRAPHS`, or any file the manifest lists)."""
        name = GRAPHS.get(graph, graph)
        entry = self.manifest["files"].get(name)
        if entry is None:
            have = ", ".join(sorted(self.manifest["files"]))
            raise ArtifactError(
                f"{self.root} has no {name} (it holds {have}); re-export with the option that writes it"
            )
        path = self.root / name
        if not path.is_file():
            raise ArtifactError(f"{path} is listed in the manifest but missing; re-run posedeploy export")
        verify_file(path, entry, "re-run posedeploy export")
        return path


def verify_file(path: Path, entry: dict, remedy: str) -> None:
    """Refuse ``path`` unless its size and SHA-256 are those its manifest ``entry`` records."""
    if path.stat().st_size != entry.get("bytes") or sha256_file(path) != entry.get("sha256"):
        raise ArtifactError(
            f"{path} does not match its manifest (size or hash differs): it was changed, truncated or "
            f"half-written; {remedy}"
        )


def load_manifest(path: Path, fmt: str, version: int, kind: str, remedy: str) -> dict:
    """A manifest JSON of format ``fmt`` and at most ``version``; anything else is refused."""
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ArtifactError(f"{path} is not valid JSON ({type(exc).__name__}: {exc}); {remedy}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != fmt:
        raise ArtifactError(f"{path} is not a posedeploy {kind} manifest")
    found = manifest.get("format_version")
    if not isinstance(found, int) or found > version:
        raise ArtifactError(
            f"{path} has {kind} format version {found}; this posedeploy reads up to {version} "
            f"(upgrade posedeploy, or {remedy} with this version)"
        )
    return manifest


def read_manifest(root: str | Path) -> Artifacts:
    root = Path(root)
    if not root.is_dir():
        raise ArtifactError(f"artifact directory not found: {root}")
    path = root / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{root} has no {MANIFEST}: it is not a posedeploy export (run posedeploy export)")
    manifest = load_manifest(path, FORMAT, FORMAT_VERSION, "artifact", "re-run posedeploy export")
    _check_fields(path, manifest)
    return Artifacts(root, manifest)


_NUMBER = (int, float)
# What a runtime reads from the manifest, and of which type (sections in brackets are optional).
_FIELDS = {
    "checkpoint": {"sha256": str, "path": str},
    "config": {"lifter": str, "alpha": _NUMBER, "joints": list},
    "[flops]": {"lifter_per_pose": _NUMBER, "avg_per_pose": _NUMBER},
    "[memory]": {"bytes_per_lifted_pose": int},
}
_FILE_FIELDS = {"sha256": str, "bytes": int, "precision": str}


def check_fields(path: Path, manifest: dict, fields: dict, remedy: str) -> None:
    """Refuse a manifest whose fields are missing or of the wrong type (edited or damaged), here
    rather than as a KeyError wherever the field is first used. ``fields``: section -> {key: type}
    (a section in brackets is optional), or a top-level key -> type; numbers must be > 0."""

    def bad(what: str) -> ArtifactError:
        return ArtifactError(f"{path}: {what}; the manifest was edited or damaged, {remedy}")

    def check(section: dict, wanted: dict, where: str) -> None:
        for key, types in wanted.items():
            value = section.get(key)
            if (
                isinstance(value, bool)
                or not isinstance(value, types)
                or (isinstance(value, _NUMBER) and not value > 0)
            ):
                raise bad(f"'{where}{key}' is {json.dumps(value)[:40]}, not a valid value")

    for name, wanted in fields.items():
        optional, name = name.startswith("["), name.strip("[]")
        if optional and name not in manifest:
            continue
        if not isinstance(wanted, dict):
            check(manifest, {name: wanted}, "")
        elif not isinstance(manifest.get(name), dict):
            raise bad(f"its '{name}' section is missing or not a mapping")
        else:
            check(manifest[name], wanted, f"{name}.")


def _check_fields(path: Path, manifest: dict) -> None:
    remedy = "re-run posedeploy export"
    check_fields(path, manifest, _FIELDS, remedy)
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise ArtifactError(
            f"{path}: its 'files' section is missing or empty; the manifest was edited or damaged, {remedy}"
        )
    for filename, entry in files.items():
        check_fields(path, {f"files.{filename}": entry}, {f"files.{filename}": _FILE_FIELDS}, remedy)
