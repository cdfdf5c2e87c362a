"""``posedeploy doctor``: what this machine can run, and what to install for the rest."""

from __future__ import annotations

import importlib
import importlib.util
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from posedeploy.engines.machine import describe_machine
from posedeploy.records import Record

# Distribution name -> module it installs.
MODULES = {
    "numpy": "numpy",
    "torch": "torch",
    "onnx": "onnx",
    "onnxruntime": "onnxruntime",
    "openvino": "openvino",
    "tensorrt": "tensorrt",
    "tensorrt-rtx": "tensorrt_rtx",
    "cuda-python": "cuda",
    "pycuda": "pycuda",
    "matplotlib": "matplotlib",
}


def _version(module: str) -> str | None:
    if importlib.util.find_spec(module) is None:
        return None
    try:
        return getattr(importlib.import_module(module), "__version__", "installed")
    except Exception as exc:  # installed but broken (e.g. a placeholder wheel)
        return f"broken ({type(exc).__name__})"


@dataclass
class Diagnosis(Record):
    """What ``posedeploy doctor`` found (``--json``): the machine, the packages, what it can run, advice."""

    platform: str
    l4t: str | None
    gpus: list[dict[str, Any]]
    driver: Any
    cuda_runtime: Any
    packages: dict[str, str | None]  # distribution -> version, None (not installed) or 'broken (...)'
    onnxruntime_distributions: list[str] = field(default_factory=list)
    onnxruntime_providers: list[str] = field(default_factory=list)
    torch_cuda: bool | None = None
    can: dict[str, bool] = field(default_factory=dict)
    advice: list[str] = field(default_factory=list)


def diagnose() -> Diagnosis:
    """What this machine can run (CPU/GPU, CUDA, TensorRT, ONNX Runtime, PyTorch) and what to install."""
    machine = describe_machine()
    report: dict[str, Any] = {
        "platform": f"{platform.system()} {platform.machine()}, Python {platform.python_version()}",
        "l4t": machine.l4t,
        "gpus": [g.__dict__ for g in machine.gpus],
        "driver": machine.driver_version,
        "cuda_runtime": machine.cuda_runtime_version,
        "packages": {name: _version(module) for name, module in MODULES.items()},
    }
    from posedeploy.runtime.onnxruntime_backend import installed_ort_distributions

    report["onnxruntime_distributions"] = installed_ort_distributions()
    providers: list[str] = []
    ort_version = report["packages"]["onnxruntime"]
    if ort_version and not str(ort_version).startswith("broken") and len(report["onnxruntime_distributions"]) == 1:
        import onnxruntime

        try:
            providers = list(onnxruntime.get_available_providers())
        except Exception as exc:  # noqa: BLE001 - a broken install fails here with any error type
            report["packages"]["onnxruntime"] = f"broken ({type(exc).__name__} listing its providers)"
    report["onnxruntime_providers"] = providers
    torch_cuda = None
    if report["packages"]["torch"] and not str(report["packages"]["torch"]).startswith("broken"):
        import torch

        torch_cuda = torch.cuda.is_available()
    report["torch_cuda"] = torch_cuda
    report["can"], report["advice"] = _capabilities(report)
    return Diagnosis(**report)


def _capabilities(r: dict[str, Any]) -> tuple[dict[str, bool], list[str]]:
    p, gpu = r["packages"], bool(r["gpus"])
    ok: Callable[[str], bool] = lambda m: bool(p.get(m)) and not str(p[m]).startswith("broken")  # noqa: E731
    can = {
        "train and evaluate (PyTorch)": ok("torch"),
        "export ONNX": ok("torch") and ok("onnx"),
        "run on CPU (ONNX Runtime)": "CPUExecutionProvider" in r["onnxruntime_providers"],
        "run on CPU (OpenVINO)": ok("openvino"),
        "run on GPU (ONNX Runtime CUDA)": gpu and "CUDAExecutionProvider" in r["onnxruntime_providers"],
        "build TensorRT engines": (ok("tensorrt") and gpu) or ok("tensorrt-rtx"),
        "run TensorRT engines": gpu and (ok("tensorrt") or ok("tensorrt-rtx")) and (ok("cuda-python") or ok("pycuda")),
        "plot": ok("matplotlib"),
    }
    advice = []
    if len(r["onnxruntime_distributions"]) > 1:
        advice.append(
            "onnxruntime and onnxruntime-gpu are both installed and clash: pip uninstall -y onnxruntime "
            "onnxruntime-gpu, then pip install 'posedeploy[cpu]' or 'posedeploy[gpu]'"
        )
    if not ok("torch"):
        advice.append("training, evaluation and export need PyTorch: pip install 'posedeploy[train]' (or [export])")
    elif not ok("onnx"):
        advice.append("export needs onnx: pip install 'posedeploy[export]'")
    if str(p.get("onnxruntime")).startswith("broken"):
        advice.append("onnxruntime is installed but broken: pip install --force-reinstall 'posedeploy[cpu]' (or [gpu])")
    elif not r["onnxruntime_providers"]:
        advice.append("the runtime needs ONNX Runtime: pip install 'posedeploy[cpu]' (or [gpu] on an NVIDIA GPU)")
    if gpu and "CUDAExecutionProvider" not in r["onnxruntime_providers"]:
        advice.append("this machine has a GPU: pip install 'posedeploy[gpu]' for ONNX Runtime on CUDA")
    if gpu and not (ok("tensorrt") or ok("tensorrt-rtx")):
        advice.append(
            "for TensorRT engines: pip install 'posedeploy[trt]' (datacenter GPUs), 'posedeploy[rtx]' "
            "(GeForce/RTX) or JetPack's python3-libnvinfer (Jetson)"
        )
    if (ok("tensorrt") or ok("tensorrt-rtx")) and not (ok("cuda-python") or ok("pycuda")):
        advice.append("running engines needs cuda-python (or pycuda): pip install cuda-python")
    if not gpu:
        advice.append(
            "no CUDA GPU visible: GPU backends are unavailable here (TensorRT for RTX can still build "
            "engines for a named --compute-capability)"
        )
    if str(p.get("tensorrt")).startswith("broken"):
        advice.append(
            "the 'tensorrt' package is installed but does not import (its libraries could not be "
            "downloaded?): reinstall it where the NVIDIA package index is reachable"
        )
    return can, advice


def format_diagnosis(diagnosis: Diagnosis) -> str:
    r = diagnosis.to_json()
    lines = [f"platform      {r['platform']}" + (f", Jetson {r['l4t']}" if r["l4t"] else "")]
    if r["gpus"]:
        for g in r["gpus"]:
            lines.append(
                f"gpu           {g['name']} (compute capability {g['compute_capability']}, {g['memory_mb']} MB)"
            )
        lines.append(f"cuda          driver {r['driver']}, runtime {r['cuda_runtime']}")
    else:
        lines.append("gpu           none visible")
    for name, version in r["packages"].items():
        lines.append(f"{name:<14}{version or 'not installed'}")
    lines.append(f"onnxruntime providers: {', '.join(r['onnxruntime_providers']) or 'none'}")
    if r["torch_cuda"] is not None:
        lines.append(f"torch CUDA    {'available' if r['torch_cuda'] else 'not available'}")
    lines.append("")
    for what, yes in r["can"].items():
        lines.append(f"  [{'x' if yes else ' '}] {what}")
    if r["advice"]:
        lines.append("")
        lines += [f"- {a}" for a in r["advice"]]
    return "\n".join(lines)
