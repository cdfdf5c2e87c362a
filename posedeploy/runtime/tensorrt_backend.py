"""TensorRT backend: a serialized engine run from numpy through a small CUDA layer.

- The engine's manifest is checked against this machine before TensorRT sees the plan.
- Named I/O tensors; device buffers and pinned host buffers sized for the profile's largest
  shapes, allocated once and reused, so their addresses never change.
- ``set_input_shape`` + ``execute_async_v3`` on the backend's own stream; per (B, S) shape the
  enqueue is captured once into a CUDA graph and replayed afterwards (cuda-python). If capture
  fails, or the layer is pycuda, every call is enqueued normally.
- Requests larger than the profile are refused here with the limits; MultiHypothesisLifter splits
  work to fit ``limits`` beforehand.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from posedeploy.engines.flavour import load_tensorrt
from posedeploy.engines.machine import describe_machine
from posedeploy.engines.manifest import check_fits, read_engine_manifest
from posedeploy.errors import ArtifactError, DeviceError, InputError
from posedeploy.runtime.backend import Backend, TensorSpec
from posedeploy.runtime.cuda_memory import open_cuda

logger = logging.getLogger(__name__)

_NUMPY = {"FLOAT": np.float32, "HALF": np.float16, "INT32": np.int32, "INT64": np.int64}


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self, plan: str | Path, cuda: str = "auto", device: int = 0, cuda_graphs: bool = True):
        super().__init__()
        plan = Path(plan)
        self.source = plan.name
        self.manifest = read_engine_manifest(plan)
        check_fits(plan, self.manifest, describe_machine(), device)
        self.trt = load_tensorrt(self.manifest.tensorrt.flavour)
        self.cuda = open_cuda(cuda, device)
        self._device = device
        self._buffers: dict[str, int] = {}
        self._graphs: dict[tuple[tuple[int, ...], ...], object] = {}
        self.cuda_graphs = cuda_graphs and self.cuda.supports_graphs
        self.timings: dict[str, float] = {}
        m = self.trt.module
        self._runtime = m.Runtime(m.Logger(m.Logger.WARNING))
        self.engine = self._runtime.deserialize_cuda_engine(plan.read_bytes())
        if self.engine is None:
            self.cuda.close()
            raise ArtifactError(f"TensorRT could not deserialize {plan} although its manifest fits; rebuild it")
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise DeviceError(f"TensorRT could not create an execution context for {plan} (out of device memory?)")
        self.stream = self.cuda.stream()
        # Events around the copies and the compute: bench reports transfer time apart from compute.
        self._events = [self.cuda.event() for _ in range(4)]
        self._specs_in, self._specs_out, self._profile = [], [], {}
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            dtype = _NUMPY[str(self.engine.get_tensor_dtype(name)).rsplit(".", 1)[-1]]
            if self.engine.get_tensor_mode(name) == m.TensorIOMode.INPUT:
                lo, _, hi = self.engine.get_tensor_profile_shape(name, 0)
                self._profile[name] = (tuple(lo), tuple(hi))
                self._specs_in.append(TensorSpec(name, np.dtype(dtype).name, tuple(self.engine.get_tensor_shape(name))))
            else:
                self._specs_out.append(
                    TensorSpec(name, np.dtype(dtype).name, tuple(self.engine.get_tensor_shape(name)))
                )
        self._inputs, self._outputs = tuple(self._specs_in), tuple(self._specs_out)
        self._allocate()

    def _allocate(self) -> None:
        """Device and pinned host buffers for the profile's largest shapes."""
        for spec in self._specs_in:
            self.context.set_input_shape(spec.name, self._profile[spec.name][1])
        self._host = {}
        for spec in self._specs_in + self._specs_out:
            shape = tuple(self.context.get_tensor_shape(spec.name))
            nbytes = int(np.prod(shape)) * np.dtype(spec.dtype).itemsize
            self._buffers[spec.name] = self.cuda.malloc(nbytes)
            self._host[spec.name] = self.cuda.pinned((int(np.prod(shape)),), spec.dtype)
            self.context.set_tensor_address(spec.name, self._buffers[spec.name])

    @property
    def device(self) -> str:
        return f"cuda:{self._device}"

    @property
    def precision(self) -> str:
        return self.manifest.precision

    @property
    def limits(self) -> dict[str, tuple[int, int]]:
        """Smallest and largest B and S of the engine's profile."""
        (b_lo, b_hi) = (p[0] for p in self._profile["keypoints"])
        if "noise" in self._profile:
            lo, hi = self._profile["noise"]
            return {"batch": (b_lo, b_hi), "hypotheses": (lo[1], hi[1])}
        lo, hi = self._profile["slots"]  # in-graph noise
        return {"batch": (b_lo, b_hi), "hypotheses": (lo[0], hi[0])}

    def _check_profile(self, feed: Mapping[str, np.ndarray]) -> None:
        for spec in self._specs_in:
            shape, (lo, hi) = np.shape(feed[spec.name]), self._profile[spec.name]
            if len(shape) != len(lo) or any(not a <= d <= b for d, a, b in zip(shape, lo, hi, strict=True)):
                raise InputError(
                    f"input '{spec.name}' of shape {shape} is outside the engine profile {lo}..{hi}; "
                    f"split the request or rebuild with a larger --batch/--hypotheses"
                )

    def _enqueue(self) -> None:
        if not self.context.execute_async_v3(self.stream):
            raise DeviceError("TensorRT execute_async_v3 failed")

    def _launch(self, key: tuple[tuple[int, ...], ...]) -> None:
        if not self.cuda_graphs:
            self._enqueue()
            return
        graph = self._graphs.get(key)
        if graph is None:
            self._enqueue()  # TensorRT sets up shape-dependent state on the first run of a shape
            try:
                graph = self.cuda.capture(self.stream, self._enqueue)
            except DeviceError as exc:
                logger.warning(f"tensorrt: CUDA graph capture failed ({exc}); enqueueing every call instead")
                self.cuda_graphs = False
                self.cuda.synchronize(self.stream)
                return
            self._graphs[key] = graph
        self.cuda.launch(graph, self.stream)

    def _execute(self, feed: dict[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
        # One execution context, one stream, one set of buffers: calls take turns (the base's lock).
        self._check_profile(feed)
        start = time.perf_counter()
        e = self._events
        self.cuda.record(e[0], self.stream)
        for spec in self._specs_in:
            array = np.ascontiguousarray(feed[spec.name], dtype=spec.dtype)
            self.context.set_input_shape(spec.name, array.shape)
            host = self._host[spec.name][: array.size]
            host[:] = array.ravel()
            self.cuda.htod(self._buffers[spec.name], host, self.stream)
        self.cuda.record(e[1], self.stream)
        self._launch(tuple(np.shape(feed[s.name]) for s in self._specs_in))
        self.cuda.record(e[2], self.stream)
        results = {}
        for name in names:
            shape = tuple(self.context.get_tensor_shape(name))
            host = self._host[name][: int(np.prod(shape))]
            self.cuda.dtoh(host, self._buffers[name], self.stream)
            results[name] = host
        self.cuda.record(e[3], self.stream)
        self.cuda.synchronize(self.stream)
        self.timings = {
            "wall_ms": (time.perf_counter() - start) * 1e3,
            "h2d_ms": self.cuda.elapsed_ms(e[0], e[1]),
            "compute_ms": self.cuda.elapsed_ms(e[1], e[2]),
            "d2h_ms": self.cuda.elapsed_ms(e[2], e[3]),
        }
        return {n: results[n].reshape(tuple(self.context.get_tensor_shape(n))).copy() for n in names}

    def _release(self) -> None:
        for graph in self._graphs.values():
            self.cuda.destroy_graph(graph)
        for ptr in self._buffers.values():
            self.cuda.free(ptr)
        self._graphs, self._buffers = {}, {}
        self.context = None
        self.engine = None
        self.cuda.close()
