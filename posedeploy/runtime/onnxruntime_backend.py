"""ONNX Runtime backend: CPU, CUDA or TensorRT execution provider, chosen by name or automatically;
on CUDA with I/O binding and CUDA graphs.

``onnxruntime`` (CPU) and ``onnxruntime-gpu`` install the same Python module; whichever is
installed is used, and a provider it lacks is reported with what to install.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import numpy as np

from posedeploy.errors import ArtifactError, DependencyConflictError, InputError, MissingDependencyError
from posedeploy.runtime.backend import Backend, TensorSpec, first_line

logger = logging.getLogger(__name__)

PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
_NUMPY = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int64)": "int64", "tensor(int32)": "int32"}


ORT_DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu")


def installed_ort_distributions() -> list[str]:
    from importlib import metadata

    found = []
    for name in ORT_DISTRIBUTIONS:
        try:
            metadata.version(name)
            found.append(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def _ort() -> ModuleType:
    both = installed_ort_distributions()
    if len(both) > 1:
        # Both write the same 'onnxruntime' module: whichever installed last wins, half-overwritten.
        raise DependencyConflictError(
            "both onnxruntime and onnxruntime-gpu are installed and overwrite each other's files; run "
            "pip uninstall -y onnxruntime onnxruntime-gpu, then install one: posedeploy[cpu] or posedeploy[gpu]"
        )
    try:
        import onnxruntime
    except ImportError:
        raise MissingDependencyError("onnxruntime", "cpu", "The ONNX Runtime backend") from None
    return cast(ModuleType, onnxruntime)  # no type information: mypy sees Any


def available_providers() -> list[str]:
    """Short names of the execution providers this onnxruntime build offers."""
    offered = set(_ort().get_available_providers())
    return [short for short, full in PROVIDERS.items() if full in offered]


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(
        self,
        path: str | Path,
        provider: str = "auto",
        threads: int | None = None,
        precision: str | None = None,
        cuda_graph: bool = True,
    ):
        super().__init__()
        ort = _ort()
        path = Path(path)
        if not path.is_file():
            raise ArtifactError(f"ONNX file not found: {path}")
        offered = available_providers()
        if provider == "auto":
            chosen = ["cuda", "cpu"] if "cuda" in offered else ["cpu"]
        elif isinstance(provider, str) and provider in PROVIDERS:
            if provider not in offered:
                extra = "gpu" if provider in ("cuda", "tensorrt") else "cpu"
                raise MissingDependencyError(
                    "onnxruntime-gpu" if extra == "gpu" else "onnxruntime",
                    extra,
                    f"The ONNX Runtime '{provider}' execution provider (this build offers {', '.join(offered)})",
                )
            chosen = [provider] + (["cuda"] if provider == "tensorrt" else []) + ["cpu"]
        else:
            raise InputError(
                f"unknown ONNX Runtime provider {provider!r}; expected auto or one of {', '.join(PROVIDERS)}"
            )
        self._ort, self.path, self._threads, self.source = ort, path, threads, path.name
        self._chosen = list(dict.fromkeys(chosen))
        # On CUDA, inputs and outputs live in device buffers bound once per (B, S) shape (I/O
        # binding), and each shape's run is captured and replayed as a CUDA graph.
        self.cuda_graph = cuda_graph and self._chosen[0] == "cuda"
        self._session = self._open(self.cuda_graph)
        # per input shapes: IOBinding, input and output OrtValues, RunOptions (onnxruntime has no type information)
        self._bound: dict[tuple[tuple[int, ...], ...], tuple[Any, dict[str, Any], dict[str, Any], Any]] = {}
        self._provider = self._session.get_providers()[0]
        meta = self._session.get_modelmeta().custom_metadata_map
        self.metadata: dict[str, str] = dict(meta)
        self._precision = precision or meta.get("precision", "fp32")
        self._inputs = tuple(
            TensorSpec(i.name, _NUMPY.get(i.type, i.type), tuple(i.shape)) for i in self._session.get_inputs()
        )
        self._outputs = tuple(
            TensorSpec(o.name, _NUMPY.get(o.type, o.type), tuple(o.shape)) for o in self._session.get_outputs()
        )

    def _open(self, cuda_graph: bool) -> Any:  # an onnxruntime InferenceSession (no type information)
        ort = self._ort
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self._threads:
            options.intra_op_num_threads = self._threads
        providers = [
            (PROVIDERS[p], {"enable_cuda_graph": "1"}) if p == "cuda" and cuda_graph else PROVIDERS[p]
            for p in self._chosen
        ]
        try:
            return ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
            raise ArtifactError(f"ONNX Runtime cannot load {self.path}: {first_line(exc)}") from None

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

    def _output_shape(self, spec: TensorSpec, feed: Mapping[str, np.ndarray]) -> tuple[int, ...]:
        """Resolve an output's named dimensions (B, S, ...) from the inputs that carry them."""
        sizes = {}
        for i in self._inputs:
            for dim, size in zip(i.shape, feed[i.name].shape, strict=False):
                if isinstance(dim, str):
                    sizes[dim] = size
        if any(isinstance(d, str) and d not in sizes for d in spec.shape):
            raise InputError(f"cannot size output '{spec.name}' {spec.shape} from the inputs")
        return tuple(sizes[d] if isinstance(d, str) else d for d in spec.shape)

    def _run_bound(self, feed: Mapping[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
        ort = self._ort
        key = tuple(feed[i.name].shape for i in self._inputs)
        if key not in self._bound:
            binding = self._session.io_binding()
            ins = {
                i.name: ort.OrtValue.ortvalue_from_shape_and_type(feed[i.name].shape, np.dtype(i.dtype), "cuda", 0)
                for i in self._inputs
            }
            outs = {
                o.name: ort.OrtValue.ortvalue_from_shape_and_type(
                    self._output_shape(o, feed), np.dtype(o.dtype), "cuda", 0
                )
                for o in self._outputs
            }
            for name, value in ins.items():
                binding.bind_ortvalue_input(name, value)
            for name, value in outs.items():
                binding.bind_ortvalue_output(name, value)
            options = ort.RunOptions()
            if self.cuda_graph:
                options.add_run_config_entry("gpu_graph_id", str(len(self._bound) + 1))
            self._bound[key] = (binding, ins, outs, options)
        binding, ins, outs, options = self._bound[key]
        for name, value in ins.items():
            value.update_inplace(feed[name])  # host -> the same device buffer every time
        self._session.run_with_iobinding(binding, options)
        return {name: outs[name].numpy() for name in names}

    @property
    def concurrent_calls(self) -> bool:
        # InferenceSession.run is thread-safe on the CPU; on CUDA, calls share the bound buffers.
        return self.device == "cpu"

    def _execute(self, feed: dict[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
        if self.device == "cpu":
            return dict(zip(names, self._session.run(names, feed), strict=True))
        return self._run_cuda(feed, names)

    def _run_cuda(self, feed: Mapping[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
        try:
            return self._run_bound(feed, names)
        except Exception as exc:
            if not self.cuda_graph:
                raise
            # Some graphs cannot be captured (a node left on the CPU, say): run them uncaptured.

            logger.warning(
                f"onnxruntime: CUDA graph capture failed ({str(exc).splitlines()[0][:200]}); running without it"
            )
            self.cuda_graph, self._bound = False, {}
            self._session = self._open(False)
            return self._run_bound(feed, names)

    def _release(self) -> None:
        self._session, self._bound = None, {}
