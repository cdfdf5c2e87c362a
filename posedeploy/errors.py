"""The one error family of posedeploy.

Every problem a user can cause (bad input, a missing or foreign file, an impossible request) is
raised as a subclass of :class:`PoseDeployError` whose message says what was wrong and what was
expected. The CLI prints that message on one line and exits non-zero; anything else is a bug.
"""

from __future__ import annotations


class PoseDeployError(Exception):
    """Base class: a user-facing problem with a one-line explanation."""


class InputError(PoseDeployError, ValueError):
    """An array or argument has the wrong shape, dtype or values."""


class DataError(PoseDeployError):
    """A data file is missing, unreadable, or does not hold what its format promises."""


class CheckpointError(PoseDeployError):
    """A checkpoint is missing, corrupted, or belongs to another model."""


class TrainingError(PoseDeployError):
    """Training cannot go on: the loss or the validation metric stopped being a finite number."""


class ArtifactError(PoseDeployError):
    """An exported artifact (ONNX graph, engine, manifest) is missing, corrupted, stale or foreign."""


class WriteError(PoseDeployError, OSError):
    """An output cannot be written (a full or read-only disk, a directory in the way, no permission)."""


class EngineBuildError(PoseDeployError):
    """TensorRT could not parse or build the network."""


class DeviceError(PoseDeployError):
    """A CUDA call failed (no device, out of memory, a driver error)."""


class MissingDependencyError(PoseDeployError, ImportError):
    """An optional dependency is needed for this command but is not installed."""

    def __init__(self, package: str | list[str], extra: str, purpose: str, also: str = ""):
        packages = [package] if isinstance(package, str) else list(package)
        names = " and ".join(f"'{p}'" for p in packages)
        super().__init__(
            f"{purpose} needs the {names} package{'s' if len(packages) > 1 else ''}, which "
            f"{'are' if len(packages) > 1 else 'is'} not installed; install "
            f"{'them' if len(packages) > 1 else 'it'} with: pip install 'posedeploy[{extra}]'"
            + (f" {also}" if also else "")
        )
        self.package = packages[0]
        self.extra = extra


class DependencyConflictError(PoseDeployError, ImportError):
    """Two installed packages conflict (e.g. onnxruntime and onnxruntime-gpu)."""
