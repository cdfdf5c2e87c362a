"""A small device-memory layer for the TensorRT backend, on cuda-python or on pycuda.

Both offer the same few operations: device and pinned host buffers, a stream, asynchronous
copies, and (cuda-python only) CUDA graph capture and replay. pycuda has no stable graph API,
so with pycuda the backend enqueues every call (the documented fallback).
"""

from __future__ import annotations

import ctypes
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Protocol, cast

import numpy as np
from numpy.typing import DTypeLike

from posedeploy.errors import DeviceError, InputError, MissingDependencyError


class CudaLayer(ABC):
    name: str
    supports_graphs: bool = False

    @abstractmethod
    def malloc(self, nbytes: int) -> int: ...

    @abstractmethod
    def free(self, ptr: int) -> None: ...

    @abstractmethod
    def pinned(self, shape: tuple[int, ...], dtype: DTypeLike) -> np.ndarray:
        """A page-locked host array (fast, asynchronous copies)."""

    @abstractmethod
    def stream(self) -> int:
        """A new stream; returns its handle as an integer."""

    @abstractmethod
    def htod(self, ptr: int, host: np.ndarray, stream: int) -> None: ...

    @abstractmethod
    def dtoh(self, host: np.ndarray, ptr: int, stream: int) -> None: ...

    @abstractmethod
    def synchronize(self, stream: int) -> None: ...

    @abstractmethod
    def memory_info(self) -> tuple[int, int]:
        """(free, total) device bytes."""

    @abstractmethod
    def event(self) -> object:
        """A CUDA event for timing."""

    @abstractmethod
    def record(self, event: object, stream: int) -> None: ...

    @abstractmethod
    def elapsed_ms(self, start: object, end: object) -> float:
        """Device time between two recorded events (after the stream is synchronised)."""

    def capture(self, stream: int, enqueue: Callable[[], None]) -> object:
        """Record what ``enqueue()`` puts on ``stream`` into an executable graph."""
        raise DeviceError(f"{self.name} cannot capture CUDA graphs")

    def launch(self, graph: object, stream: int) -> None:
        raise DeviceError(f"{self.name} cannot launch CUDA graphs")

    def destroy_graph(self, graph: object) -> None:  # noqa: B027 - a layer without graphs has none to free
        pass

    def close(self) -> None:  # noqa: B027 - a hook: a layer that opened no context has none to close
        pass


class CudaPython(CudaLayer):
    """NVIDIA's cuda-python bindings (``cuda.bindings.runtime``, or ``cuda.cudart`` before 12.6)."""

    name = "cuda-python"
    supports_graphs = True

    def __init__(self, device: int = 0):
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            from cuda import cudart  # raises ImportError if cuda-python is absent
        self.rt = cudart
        self._call("cudaSetDevice", device)
        self._pinned: list[int] = []
        self._streams: list[object] = []
        self._events: list[object] = []

    def _call(self, name: str, *args: object) -> Any:  # whatever cuda-python (no type information) returns
        result = getattr(self.rt, name)(*args)
        err, rest = (result[0], result[1:]) if isinstance(result, tuple) else (result, ())
        if int(err) != 0:
            _, text = self.rt.cudaGetErrorString(err)
            raise DeviceError(f"{name} failed: {text.decode() if isinstance(text, bytes) else text}")
        return rest[0] if len(rest) == 1 else rest

    def malloc(self, nbytes: int) -> int:
        return int(self._call("cudaMalloc", max(1, nbytes)))

    def free(self, ptr: int) -> None:
        self._call("cudaFree", ptr)

    def pinned(self, shape: tuple[int, ...], dtype: DTypeLike) -> np.ndarray:
        dtype = np.dtype(dtype)
        nbytes = max(1, int(np.prod(shape)) * dtype.itemsize)
        ptr = int(self._call("cudaMallocHost", nbytes))
        self._pinned.append(ptr)
        raw = (ctypes.c_byte * nbytes).from_address(ptr)
        # numpy's stubs leave ctypes arrays out of frombuffer's buffers, though they have the buffer protocol
        flat = np.frombuffer(raw, dtype=dtype, count=int(np.prod(shape)))  # type: ignore[call-overload]
        array: np.ndarray = flat.reshape(shape)
        return array

    def stream(self) -> int:
        handle = self._call("cudaStreamCreate")
        self._streams.append(handle)
        return int(handle)

    def htod(self, ptr: int, host: np.ndarray, stream: int) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._call("cudaMemcpyAsync", ptr, host.ctypes.data, host.nbytes, kind, stream)

    def dtoh(self, host: np.ndarray, ptr: int, stream: int) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._call("cudaMemcpyAsync", host.ctypes.data, ptr, host.nbytes, kind, stream)

    def synchronize(self, stream: int) -> None:
        self._call("cudaStreamSynchronize", stream)

    def memory_info(self) -> tuple[int, int]:
        free, total = self._call("cudaMemGetInfo")
        return int(free), int(total)

    def event(self) -> object:
        handle = self._call("cudaEventCreate")
        self._events.append(handle)
        return handle

    def record(self, event: object, stream: int) -> None:
        self._call("cudaEventRecord", event, stream)

    def elapsed_ms(self, start: object, end: object) -> float:
        return float(self._call("cudaEventElapsedTime", start, end))

    def capture(self, stream: int, enqueue: Callable[[], None]) -> object:
        mode = self.rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        self._call("cudaStreamBeginCapture", stream, mode)
        try:
            enqueue()
        finally:
            graph = self._call("cudaStreamEndCapture", stream)
        executable = self._call("cudaGraphInstantiate", graph, 0)
        self._call("cudaGraphDestroy", graph)
        return executable

    def launch(self, graph: object, stream: int) -> None:
        self._call("cudaGraphLaunch", graph, stream)

    def destroy_graph(self, graph: object) -> None:
        self._call("cudaGraphExecDestroy", graph)

    def close(self) -> None:
        for ptr in self._pinned:
            self._call("cudaFreeHost", ptr)
        for handle in self._streams:
            self._call("cudaStreamDestroy", handle)
        for handle in self._events:
            self._call("cudaEventDestroy", handle)
        self._pinned, self._streams, self._events = [], [], []


class _PyCudaAllocation(Protocol):
    """What posedeploy uses of a pycuda ``DeviceAllocation`` (pycuda has no type information)."""

    def __int__(self) -> int: ...

    def free(self) -> None: ...


class _PyCudaStream(Protocol):
    handle: int

    def synchronize(self) -> None: ...


class _PyCudaEvent(Protocol):
    def record(self, stream: _PyCudaStream) -> None: ...

    def time_till(self, end: _PyCudaEvent) -> float: ...


class PyCuda(CudaLayer):
    """pycuda, with the device's primary context (no CUDA graphs: every call is enqueued)."""

    name = "pycuda"

    def __init__(self, device: int = 0):
        import pycuda.driver as cuda

        cuda.init()
        self.cuda = cuda
        self.context = cuda.Device(device).retain_primary_context()
        self.context.push()
        self._allocations: dict[int, _PyCudaAllocation] = {}
        self._streams: dict[int, _PyCudaStream] = {}

    def malloc(self, nbytes: int) -> int:
        try:
            allocation = self.cuda.mem_alloc(max(1, nbytes))
        except self.cuda.MemoryError as exc:
            raise DeviceError(f"device allocation of {nbytes} bytes failed: {exc}") from None
        self._allocations[int(allocation)] = allocation
        return int(allocation)

    def free(self, ptr: int) -> None:
        self._allocations.pop(ptr).free()

    def pinned(self, shape: tuple[int, ...], dtype: DTypeLike) -> np.ndarray:
        array: np.ndarray = self.cuda.pagelocked_empty(shape, dtype)
        return array

    def stream(self) -> int:
        s = self.cuda.Stream()
        self._streams[int(s.handle)] = s
        return int(s.handle)

    def htod(self, ptr: int, host: np.ndarray, stream: int) -> None:
        self.cuda.memcpy_htod_async(ptr, host, self._streams[stream])

    def dtoh(self, host: np.ndarray, ptr: int, stream: int) -> None:
        self.cuda.memcpy_dtoh_async(host, ptr, self._streams[stream])

    def synchronize(self, stream: int) -> None:
        self._streams[stream].synchronize()

    def memory_info(self) -> tuple[int, int]:
        info: tuple[int, int] = self.cuda.mem_get_info()
        return info

    def event(self) -> object:
        return self.cuda.Event()

    def record(self, event: object, stream: int) -> None:
        cast(_PyCudaEvent, event).record(self._streams[stream])

    def elapsed_ms(self, start: object, end: object) -> float:
        return float(cast(_PyCudaEvent, start).time_till(cast(_PyCudaEvent, end)))

    def close(self) -> None:
        for allocation in self._allocations.values():
            allocation.free()
        self._allocations, self._streams = {}, {}
        self.context.pop()


LAYERS = {"cuda-python": CudaPython, "pycuda": PyCuda}


def open_cuda(layer: str = "auto", device: int = 0) -> CudaLayer:
    """The requested layer, or the first that imports (cuda-python, then pycuda)."""
    if layer not in ("auto", *LAYERS):
        raise InputError(f"unknown CUDA layer '{layer}'; expected auto, {', '.join(LAYERS)}")
    errors = []
    for name in LAYERS if layer == "auto" else (layer,):
        try:
            return LAYERS[name](device)
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
    raise MissingDependencyError("cuda-python or pycuda", "trt", f"The TensorRT backend ({'; '.join(errors)})")
