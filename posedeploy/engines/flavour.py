"""Which TensorRT drives a build or a load, and what that TensorRT can do.

Two flavours share one API: ``tensorrt`` (datacenter GPUs and Jetson) and ``tensorrt_rtx``
(TensorRT for RTX: GeForce/RTX GPUs, strongly typed networks only, builds for explicit compute
capabilities, and builds on a machine without a GPU).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from posedeploy.engines.machine import FLAVOURS
from posedeploy.errors import InputError, MissingDependencyError

# The FP16 builder flag is deprecated from TensorRT 10.12 and gone in 11: mixed precision is built
# as a strongly typed network, whose types come from the graph.
TYPINGS = ("auto", "strong", "weak")


@dataclass(frozen=True)
class TensorRT:
    flavour: str
    module: ModuleType

    @property
    def version(self) -> str:
        version: str = self.module.__version__
        return version

    @property
    def version_tuple(self) -> tuple[int, ...]:
        return tuple(int(p) for p in self.version.split(".")[:3] if p.isdigit())

    @property
    def is_rtx(self) -> bool:
        return self.flavour == "tensorrt_rtx"

    @property
    def supports_strong_typing(self) -> bool:
        return hasattr(self.module.NetworkDefinitionCreationFlag, "STRONGLY_TYPED")

    @property
    def has_fp16_flag(self) -> bool:
        return not self.is_rtx and hasattr(self.module.BuilderFlag, "FP16")

    def strongly_typed(self, typing: str = "auto") -> bool:
        """Whether to build strongly typed (the graph's own float16/float32 types, its float32
        islands kept) or weakly typed with the FP16 flag (TensorRT picks each layer's precision).

        auto: strongly typed wherever TensorRT offers it (10.x, 11.x, RTX, Jetson's 10.3); the FP16
        flag only on a TensorRT too old to type strongly.
        """
        if typing not in TYPINGS:
            raise InputError(f"typing must be one of {', '.join(TYPINGS)}, got '{typing}'")
        if typing == "weak":
            if not self.has_fp16_flag:
                raise InputError(f"{self.flavour} {self.version} has no FP16 builder flag: build strongly typed")
            return False
        if typing == "strong" and not self.supports_strong_typing:
            raise InputError(f"{self.flavour} {self.version} cannot build strongly typed networks")
        return self.supports_strong_typing


def load_tensorrt(flavour: str = "auto") -> TensorRT:
    """Import TensorRT: ``auto`` prefers the datacenter package, then TensorRT for RTX."""
    if flavour not in ("auto", *FLAVOURS):
        raise InputError(f"unknown TensorRT flavour '{flavour}'; expected auto, {', '.join(FLAVOURS)}")
    errors = []
    for name in FLAVOURS if flavour == "auto" else (flavour,):
        try:
            return TensorRT(name, importlib.import_module(name))
        except Exception as exc:  # a missing package, or the placeholder 'tensorrt' that cannot fetch its libs
            errors.append(f"{name}: {type(exc).__name__}")
    wanted = "tensorrt or tensorrt-rtx" if flavour == "auto" else flavour.replace("_", "-")
    raise MissingDependencyError(wanted, "trt", f"Building or running TensorRT engines ({'; '.join(errors)})")
