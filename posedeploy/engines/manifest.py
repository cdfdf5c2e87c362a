"""The manifest written next to every engine plan, and the check that a plan fits this machine.

TensorRT engines are specific to a GPU architecture and a TensorRT version (unless built
version- or hardware-compatible). Loading one built elsewhere fails deep inside TensorRT; here it
fails first, saying what differs and how to rebuild.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from posedeploy.artifacts import verify_file
from posedeploy.engines.machine import MachineInfo
from posedeploy.errors import ArtifactError
from posedeploy.records import OPTIONAL, POSITIVE, Record, read_record

FORMAT = "posedeploy.engine"
FORMAT_VERSION = 1


def manifest_path(plan: str | Path) -> Path:
    plan = Path(plan)
    return plan.with_name(plan.name + ".json")


@dataclass(frozen=True)
class TensorRTInfo:
    flavour: str  # tensorrt (datacenter, Jetson) or tensorrt_rtx
    version: str
    strongly_typed: bool | None = field(default=None, metadata=OPTIONAL)


@dataclass(frozen=True)
class Target:
    compute_capabilities: list[str]
    gpu: str | None = None
    built_on_gpu: str | None = None


@dataclass(frozen=True)
class CudaInfo:
    driver: Any = None
    runtime: Any = None
    tensorrt_cuda: Any = None


@dataclass(frozen=True)
class PlatformInfo:
    arch: str
    system: str | None = None
    l4t: str | None = None


@dataclass(frozen=True)
class Profiles:
    batch: list[int]  # MIN, OPT, MAX
    hypotheses: list[int]


@dataclass(frozen=True)
class DLA:
    core: int
    gpu_fallback: bool


@dataclass(frozen=True)
class BuildFlags:
    version_compatible: bool = False
    hardware_compatibility: str | None = None  # ampere_plus, or None: this GPU's architecture only
    dla: DLA | None = None
    workspace_mb: int | None = None
    optimization_level: int | None = None


@dataclass(frozen=True)
class GraphRef:
    file: str
    sha256: str


@dataclass(frozen=True)
class PlanRef:
    file: str
    sha256: str
    bytes: int = field(metadata=POSITIVE)


@dataclass(frozen=True)
class TimingCache:
    file: str
    sha256: str
    reused: bool


@dataclass(frozen=True, kw_only=True)
class EngineManifest(Record):
    """PLAN.plan.json beside every engine PLAN.plan: what built it, for which GPUs, from which graph, and its hash."""

    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    created: str | None = field(default=None, metadata=OPTIONAL)
    posedeploy: str | None = field(default=None, metadata=OPTIONAL)
    tensorrt: TensorRTInfo
    target: Target
    cuda: CudaInfo | None = field(default=None, metadata=OPTIONAL)
    platform: PlatformInfo
    precision: str
    graph: str | None = field(default=None, metadata=OPTIONAL)
    profiles: Profiles | None = field(default=None, metadata=OPTIONAL)
    flags: BuildFlags
    onnx: GraphRef
    checkpoint_sha256: str | None = field(default=None, metadata=OPTIONAL)
    build_seconds: float | None = field(default=None, metadata=OPTIONAL)
    plan: PlanRef
    timing_cache: TimingCache | None = None


def read_engine_manifest(plan: str | Path) -> EngineManifest:
    plan = Path(plan)
    if not plan.is_file():
        raise ArtifactError(f"engine not found: {plan}")
    path = manifest_path(plan)
    if not path.is_file():
        raise ArtifactError(f"{plan} has no manifest ({path.name}): build engines with posedeploy build")
    manifest = read_record(path, EngineManifest, FORMAT, FORMAT_VERSION, "engine", ArtifactError, "rebuild the engine")
    verify_file(plan, manifest.plan.sha256, manifest.plan.bytes, "rebuild the engine")
    return manifest


def _release(version: str) -> tuple[int, ...]:
    """(major, minor, patch) of a version string; () when it is not one (an edited manifest)."""
    try:
        return tuple(int(part) for part in version.split(".")[:3])
    except ValueError:
        return ()


def _cc(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor or 0)


def mismatches(manifest: EngineManifest, machine: MachineInfo, device: int = 0) -> list[str]:
    """Why an engine built as ``manifest`` describes cannot run here (empty: it can)."""
    problems = []
    trt = manifest.tensorrt
    installed = machine.tensorrt.get(trt.flavour)
    if installed is None:
        problems.append(f"it needs {trt.flavour} {trt.version}, which is not installed")
    elif installed != trt.version:
        same_major = installed.split(".")[0] == trt.version.split(".")[0]
        newer = _release(installed) >= _release(trt.version)
        if not (manifest.flags.version_compatible and same_major and newer):
            problems.append(f"it was built with {trt.flavour} {trt.version}, this machine has {installed}")
    if manifest.platform.arch != machine.arch:
        problems.append(f"it was built for {manifest.platform.arch}, this machine is {machine.arch}")
    if not machine.gpus or device >= len(machine.gpus):
        problems.append("this machine has no CUDA GPU visible" + ("" if not machine.gpus else f" with index {device}"))
    else:
        here = machine.gpus[device].compute_capability
        targets = manifest.target.compute_capabilities
        level = manifest.flags.hardware_compatibility
        fits = here in targets or (level == "ampere_plus" and _cc(here) >= (8, 0))
        if not fits:
            problems.append(
                f"it was built for compute capability {', '.join(targets)} "
                f"({manifest.target.gpu or 'no GPU named'}), this GPU ({machine.gpus[device].name}) is {here}"
            )
    return problems


def check_fits(plan: str | Path, manifest: EngineManifest, machine: MachineInfo, device: int = 0) -> None:
    problems = mismatches(manifest, machine, device)
    if problems:
        raise ArtifactError(
            f"engine {Path(plan).name} cannot run here: {'; '.join(problems)}. Engines are not portable across GPUs "
            f"or TensorRT versions: rebuild it on this machine with posedeploy build --artifacts {Path(plan).parent}"
        )
