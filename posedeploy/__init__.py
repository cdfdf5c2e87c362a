"""posedeploy: multi-hypothesis 3D human pose lifting with adaptive noise sampling (PRPose),
from PyTorch training to torch-free deployment.

The public API, importable from here (each loads its module on first use, so ``import posedeploy``
costs nothing and needs neither torch nor onnx):

- :class:`MultiHypothesisLifter`, :class:`LiftResult`: lift 2D keypoints with an exported artifact,
  on ONNX Runtime, OpenVINO or TensorRT (numpy and one runtime; no torch).
- :func:`export_checkpoint`, :class:`ExportSettings`: a checkpoint to ONNX graphs and their manifest
  (torch, onnx); ``posedeploy export`` on the command line. (Not ``export``: that name is the
  ``posedeploy.export`` package.)
- :func:`load_checkpoint`: a posedeploy checkpoint, checked (torch).
- :func:`read_manifest`: an export's checked manifest.
- :class:`PoseDeployError`: the one family of errors, each with a one-line message.
"""

import importlib
import logging
from typing import Any

__version__ = "0.1.0"

from posedeploy.errors import PoseDeployError

# The library logs what it does (progress, choices, warnings) and prints nothing itself: the command
# line shows it on stderr; a program using the API sees it only if it configures logging.
logging.getLogger(__name__).addHandler(logging.NullHandler())

# public name -> (module, attribute)
_PUBLIC = {
    "MultiHypothesisLifter": ("posedeploy.runtime.lifter", "MultiHypothesisLifter"),
    "LiftResult": ("posedeploy.runtime.lifter", "LiftResult"),
    "PoseStream": ("posedeploy.runtime.stream", "PoseStream"),
    "export_checkpoint": ("posedeploy.export.command", "export"),
    "ExportSettings": ("posedeploy.export.command", "ExportSettings"),
    "load_checkpoint": ("posedeploy.training.checkpoint", "load_checkpoint"),
    "read_manifest": ("posedeploy.artifacts", "read_manifest"),
}

__all__ = ["PoseDeployError", "__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        module, attribute = _PUBLIC[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'posedeploy' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
