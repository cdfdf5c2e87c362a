"""ONNX Runtime backend: CPU, CUDA or TensorRT execution provider, chosen by name or automatically.

``onnxruntime`` (CPU) and ``onnxruntime-gpu`` install the same Python module; whichever is
installed is used, and a provider it lacks is reported with what to install.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from posedeploy.errors import ArtifactError, InputError, MissingDependencyError
from posedeploy.runtime.backend import Backend, TensorSpec

PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
_NUMPY = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int64)": "int64", "tensor(int32)": "int32"}


def _ort():
    try:
        import onnxruntime
    except ImportError:
        raise MissingDependencyError("onnxruntime", "cpu", "The ONNX Runtime backend") from None
    return onnxruntime


def available_providers() -> list[str]:
    """Short names of the execution providers this onnxruntime build offers."""
    offered = set(_ort().get_available_providers())
    return [short for short, full in PROVIDERS.items() if full in offered]


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, path: str | Path, provider: str = "auto", threads: int | None = None,
                 precision: str | None = None):  # fmt: skip
        ort = _ort()
        path = Path(path)
        if not path.is_file():
            raise ArtifactError(f"ONNX file not found: {path}")
        offered = available_providers()
        if provider == "auto":
            chosen = ["cuda", "cpu"] if "cuda" in offered else ["cpu"]
        elif provider in PROVIDERS:
            if provider not in offered:
                extra = "gpu" if provider in ("cuda", "tensorrt") else "cpu"
                raise MissingDependencyError(
                    "onnxruntime-gpu" if extra == "gpu" else "onnxruntime", extra,
                    f"The ONNX Runtime '{provider}' execution provider (this build offers {', '.join(offered)})",
                )  # fmt: skip
            chosen = [provider] + (["cuda"] if provider == "tensorrt" else []) + ["cpu"]
        else:
            raise InputError(f"unknown ONNX Runtime provider '{provider}'; expected auto or one of {', '.join(PROVIDERS)}")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        try:
            self._session = ort.InferenceSession(str(path), options, providers=[PROVIDERS[p] for p in dict.fromkeys(chosen)])
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            raise ArtifactError(f"ONNX Runtime cannot load {path}: {first}") from None
        self.path = path
        self._provider = self._session.get_providers()[0]
        meta = self._session.get_modelmeta().custom_metadata_map
        self.metadata = dict(meta)
        self._precision = precision or meta.get("precision", "fp32")
        self._inputs = tuple(TensorSpec(i.name, _NUMPY.get(i.type, i.type), tuple(i.shape)) for i in self._session.get_inputs())
        self._outputs = tuple(TensorSpec(o.name, _NUMPY.get(o.type, o.type), tuple(o.shape)) for o in self._session.get_outputs())

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return self._inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return self._outputs

    @property
    def device(self) -> str:
        return "cpu" if self._provider == PROVIDERS["cpu"] else "cuda:0"

    @property
    def provider(self) -> str:
        return next(short for short, full in PROVIDERS.items() if full == self._provider)

    @property
    def precision(self) -> str:
        return self._precision

    def _check(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = {spec.name for spec in self._inputs}
        if set(feed) != names:
            raise InputError(f"{self.path.name} takes inputs {sorted(names)}, got {sorted(feed)}")
        checked = {}
        for spec in self._inputs:
            array = np.ascontiguousarray(feed[spec.name], dtype=spec.dtype)
            if array.ndim != len(spec.shape) or any(
                isinstance(want, int) and want != got for want, got in zip(spec.shape, array.shape)
            ):
                raise InputError(f"input '{spec.name}' must have shape {spec.shape}, got {array.shape}")
            checked[spec.name] = array
        return checked

    def run(self, feed: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        if self._session is None:
            raise InputError("this backend is closed")
        names = list(outputs) if outputs else [o.name for o in self._outputs]
        values = self._session.run(names, self._check(feed))
        return dict(zip(names, values))

    def close(self) -> None:
        self._session = None
