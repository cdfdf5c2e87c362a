"""OpenVINO backend: the exported ONNX pipeline compiled by OpenVINO for the CPU.

OpenVINO reads the ONNX file itself (no ``onnx`` package). Its CPU plugin may compute in bf16 or f16
by default on CPUs that have them, which moved poses by up to 14 mm in our measurements, so the
inference precision is always set explicitly: f32 unless bf16 or f16 is asked for.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any, cast

import numpy as np

from posedeploy.errors import ArtifactError, InputError, MissingDependencyError
from posedeploy.runtime.backend import Backend, TensorSpec

# posedeploy's precision names -> OpenVINO's inference precision hint. fp16 and bf16 read the fp32
# graph and let OpenVINO lower it (the mixed-fp16 ONNX is laid out for GPUs); int8 reads the INT8
# graph, whose quantised nodes OpenVINO runs in INT8 and the rest in f32.
INFERENCE_PRECISIONS = {"fp32": "f32", "fp16": "f16", "bf16": "bf16", "int8": "f32"}
PERFORMANCE_HINTS = ("latency", "throughput")


def _ov() -> ModuleType:
    try:
        import openvino
    except ImportError:
        raise MissingDependencyError("openvino", "openvino", "The OpenVINO backend") from None
    return cast(ModuleType, openvino)  # no type information: mypy sees Any


def openvino_version() -> str | None:
    try:
        version: str = _ov().get_version()
        return version
    except MissingDependencyError:
        return None


def _spec(port: Any) -> TensorSpec:  # an openvino Output (openvino has no type information)
    shape = tuple(
        d.get_length() if d.is_static else name for d, name in zip(port.get_partial_shape(), "BSVJC", strict=False)
    )
    return TensorSpec(port.get_any_name(), port.get_element_type().to_dtype().name, shape)


class OpenVINOBackend(Backend):
    name = "openvino"

    def __init__(self, path: str | Path, precision: str = "fp32", threads: int | None = None, hint: str = "latency"):
        super().__init__()
        ov = _ov()
        path = Path(path)
        if not path.is_file():
            raise ArtifactError(f"ONNX file not found: {path}")
        if not isinstance(precision, str) or precision not in INFERENCE_PRECISIONS:
            raise InputError(f"OpenVINO precision must be one of {', '.join(INFERENCE_PRECISIONS)}, got '{precision}'")
        if not isinstance(hint, str) or hint not in PERFORMANCE_HINTS:
            raise InputError(f"OpenVINO performance hint must be one of {', '.join(PERFORMANCE_HINTS)}, got '{hint}'")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise InputError(f"threads must be a whole number >= 1, got {threads!r}")
        core = ov.Core()
        try:
            model = core.read_model(str(path))
        except Exception as exc:  # OpenVINO raises untyped errors for bad files
            raise ArtifactError(f"OpenVINO cannot read {path}: {_last_line(exc)}") from None
        config: dict[str, str | int] = {
            "INFERENCE_PRECISION_HINT": INFERENCE_PRECISIONS[precision],
            "PERFORMANCE_HINT": hint.upper(),
        }
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        try:
            self._compiled = core.compile_model(model, "CPU", config)
        except Exception as exc:
            raise ArtifactError(f"OpenVINO cannot compile {path} for the CPU: {_last_line(exc)}") from None
        self.path, self.hint, self.threads, self.asked, self.source = path, hint, threads, precision, path.name
        framework = model.get_rt_info()["framework"] if model.has_rt_info("framework") else {}
        self.metadata: dict[str, str] = {key: value.astype(str) for key, value in framework.items()}
        # A CPU without bf16/f16 arithmetic computes in f32 whatever was asked: report what it does.
        # By OpenVINO's own type name: numpy has no bfloat16, so Type.bf16.to_dtype() says float16.
        computed = self._compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        self._precision: str = {"f32": "fp32", "f16": "fp16", "bf16": "bf16"}.get(computed, computed)
        if precision == "int8":
            self._precision = "int8"
        self._inputs = tuple(_spec(p) for p in model.inputs)
        self._outputs = tuple(_spec(p) for p in model.outputs)
        self._request = self._compiled.create_infer_request()  # one, whose output tensors each call reuses

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return self._inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return self._outputs

    @property
    def device(self) -> str:
        return "cpu"

    @property
    def precision(self) -> str:
        """The precision OpenVINO computes in (fp32 where the CPU cannot do what was asked)."""
        return self._precision

    def computed_precision(self, asked: str) -> str:
        return self._precision

    def _execute(self, feed: dict[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
        results = self._request.infer(feed)
        by_name = {port.get_any_name(): value for port, value in results.items()}
        return {name: np.array(by_name[name], copy=True) for name in names}

    def _release(self) -> None:
        self._request = self._compiled = None

    def describe(self) -> str:
        threads = f", {self.threads} threads" if self.threads else ""
        fallback = f"; {self.asked} asked, not supported by this CPU" if self.asked != self.precision else ""
        return f"openvino on cpu ({self.precision}{fallback}, {self.hint}{threads})"


def _last_line(exc: Exception) -> str:
    """OpenVINO's messages start with C++ source locations and end with what went wrong."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1][:300] if lines else type(exc).__name__
