"""The manifest written next to every engine plan, and the check that a plan fits this machine.

TensorRT engines are specific to a GPU architecture and a TensorRT version (unless built
version- or hardware-compatible). Loading one built elsewhere fails deep inside TensorRT; here it
fails first, saying what differs and how to rebuild.
"""

from __future__ import annotations

from pathlib import Path

from posedeploy.artifacts import check_fields, load_manifest, verify_file
from posedeploy.engines.machine import MachineInfo
from posedeploy.errors import ArtifactError

FORMAT = "posedeploy.engine"
FORMAT_VERSION = 1


def manifest_path(plan: str | Path) -> Path:
    plan = Path(plan)
    return plan.with_name(plan.name + ".json")


def read_engine_manifest(plan: str | Path) -> dict:
    plan = Path(plan)
    if not plan.is_file():
        raise ArtifactError(f"engine not found: {plan}")
    path = manifest_path(plan)
    if not path.is_file():
        raise ArtifactError(f"{plan} has no manifest ({path.name}): build engines with posedeploy build")
    manifest = load_manifest(path, FORMAT, FORMAT_VERSION, "engine", "rebuild the engine")
    check_fields(path, manifest, _FIELDS, "rebuild the engine")
    verify_file(plan, manifest["plan"], "rebuild the engine")
    return manifest


# What loading and checking an engine reads from its manifest, and of which type.
_FIELDS = {
    "tensorrt": {"flavour": str, "version": str},
    "target": {"compute_capabilities": list},
    "platform": {"arch": str},
    "flags": {},
    "precision": str,
    "onnx": {"file": str, "sha256": str},
    "plan": {"file": str, "sha256": str, "bytes": int},
}


def _release(version: str) -> tuple[int, ...]:
    """(major, minor, patch) of a version string; () when it is not one (an edited manifest)."""
    try:
        return tuple(int(part) for part in version.split(".")[:3])
    except ValueError:
        return ()


def _cc(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor or 0)


def mismatches(manifest: dict, machine: MachineInfo, device: int = 0) -> list[str]:
    """Why an engine built as ``manifest`` describes cannot run here (empty: it can)."""
    problems = []
    trt = manifest["tensorrt"]
    installed = machine.tensorrt.get(trt["flavour"])
    if installed is None:
        problems.append(f"it needs {trt['flavour']} {trt['version']}, which is not installed")
    elif installed != trt["version"]:
        same_major = installed.split(".")[0] == trt["version"].split(".")[0]
        newer = _release(installed) >= _release(trt["version"])
        if not (manifest["flags"].get("version_compatible") and same_major and newer):
            problems.append(f"it was built with {trt['flavour']} {trt['version']}, this machine has {installed}")
    if manifest["platform"]["arch"] != machine.arch:
        problems.append(f"it was built for {manifest['platform']['arch']}, this machine is {machine.arch}")
    if not machine.gpus or device >= len(machine.gpus):
        problems.append("this machine has no CUDA GPU visible" + ("" if not machine.gpus else f" with index {device}"))
    else:
        here = machine.gpus[device].compute_capability
        targets = manifest["target"]["compute_capabilities"]
        level = manifest["flags"].get("hardware_compatibility")
        fits = here in targets or (level == "ampere_plus" and _cc(here) >= (8, 0))
        if not fits:
            problems.append(
                f"it was built for compute capability {', '.join(targets)} "
                f"({manifest['target'].get('gpu') or 'no GPU named'}), this GPU ({machine.gpus[device].name}) is {here}"
            )
    return problems


def check_fits(plan: str | Path, manifest: dict, machine: MachineInfo, device: int = 0) -> None:
    problems = mismatches(manifest, machine, device)
    if problems:
        raise ArtifactError(
            f"engine {Path(plan).name} cannot run here: {'; '.join(problems)}. Engines are not portable across GPUs "
            f"or TensorRT versions: rebuild it on this machine with posedeploy build --artifacts {Path(plan).parent}"
        )
