"""What each command needs beyond the core install (numpy, typer), checked before any work.

The core package and the runtime install without PyTorch (``pip install "posedeploy[cpu]"`` on a
device); a command that needs more says so in one line, naming the extra that installs it.
"""

from __future__ import annotations

import importlib.util

from posedeploy.errors import MissingDependencyError

# module -> the extra that installs it (in pyproject.toml)
EXTRA_OF = {"torch": "train", "onnx": "export", "onnxruntime": "cpu", "matplotlib": "plot"}
RUNTIMES = ("onnxruntime", "openvino", "tensorrt", "tensorrt_rtx")


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken parent package, or a module without a spec
        return False


def require(purpose: str, *modules: str) -> None:
    """Refuse ``purpose`` (e.g. "posedeploy eval") unless every one of ``modules`` is installed."""
    missing = [m for m in modules if not installed(m)]
    if missing:
        extras = sorted({EXTRA_OF[m] for m in missing})
        # export's extra brings torch too: name the smallest set of extras that covers what is missing
        if "export" in extras and "train" in extras:
            extras.remove("train")
        raise MissingDependencyError(missing, ",".join(extras), purpose)


def require_runtime(purpose: str) -> None:
    """Refuse ``purpose`` unless some inference runtime (ONNX Runtime, OpenVINO, TensorRT) is installed."""
    if not any(installed(m) for m in RUNTIMES):
        raise MissingDependencyError(["onnxruntime"], "cpu", purpose, also="or 'posedeploy[openvino]', [gpu], [trt]")
