"""What a benchmark times: one call of the pipeline on prepared inputs, per backend.

Every target gets the same keypoints and the same pre-drawn noise, so what is timed is the
pipeline itself (sigma, S noisy copies and their mirrors, the lifter, merge, aggregate), not the
random number generator.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

import numpy as np

from posedeploy.contract import draw_noise
from posedeploy.errors import InputError

TORCH_PRECISIONS = ("fp32", "fp16")
# The PyTorch targets' names: "torch" the eager baseline, "torch-compile" the same pipeline through torch.compile
TORCH_PATHS = ("torch", "torch-compile")


class Target(ABC):
    name: str
    precision: str
    device: str

    @abstractmethod
    def prepare(self, batch: int, hypotheses: int) -> None:
        """Make the inputs of a (B, S) call."""

    @abstractmethod
    def call(self) -> float:
        """Run one call on the prepared inputs; returns its wall time in seconds (device-synchronised)."""

    def device_times(self) -> dict[str, float] | None:
        """Device-side split of the last call (compute, transfers), where the target measures one."""
        return None

    def close(self) -> None:  # noqa: B027 - a hook: most targets hold nothing to release
        pass

    @property
    def label(self) -> str:
        return f"{self.name}-{self.precision}"


def inputs(batch: int, hypotheses: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(scale=0.3, size=(batch, 17, 2)).astype(np.float32), draw_noise(rng, batch, hypotheses)


class TorchTarget(Target):
    """The PyTorch reference sampler. Eager FP32 is the baseline (the computation the official code
    runs); FP16 autocast (CUDA) and ``torch.compile`` (CUDA graphs on a GPU: mode "reduce-overhead")
    are the stronger PyTorch paths that a deployed backend must also beat."""

    def __init__(self, checkpoint: str | Path, device: str = "cpu", precision: str = "fp32", compiled: bool = False):
        import torch

        from posedeploy.reference.sampler import PipelineModule
        from posedeploy.training.checkpoint import load_checkpoint

        if precision not in TORCH_PRECISIONS:
            raise InputError(f"PyTorch runs fp32 or fp16 (autocast), got '{precision}'")
        self.torch = torch
        ckpt = load_checkpoint(checkpoint)
        self.device, self.precision, self.compiled = device, precision, compiled
        self.name = TORCH_PATHS[1] if compiled else TORCH_PATHS[0]
        self.cuda = device.startswith("cuda")
        self.pipeline = PipelineModule(ckpt.build_lifter(device), ckpt.build_avg(device), ckpt.config.alpha).eval()
        self.fn: Callable[..., object] = self.pipeline
        if compiled:
            # Compiled once, as a user would: the second (B, S) recompiles with dynamic shapes, and a GPU records
            # one CUDA graph per shape; both happen in a cell's untimed warm-up. Every PyTorch path shares one
            # code object (PipelineModule.forward): room for each path's graphs, so that no cell falls back to
            # eager unnoticed when the default limit of recompiles is reached.
            config = torch._dynamo.config
            limit = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
            setattr(config, limit, max(getattr(config, limit), 64))
            self.fn = torch.compile(self.pipeline, mode="reduce-overhead" if self.cuda else None)
        self.events: dict[str, float] | None = None

    def prepare(self, batch: int, hypotheses: int) -> None:
        kp, noise = inputs(batch, hypotheses)
        self.kp = self.torch.from_numpy(kp).to(self.device)
        self.noise = self.torch.from_numpy(noise).to(self.device)

    def call(self) -> float:
        torch = self.torch
        if self.cuda:
            start_event, end_event = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            if self.compiled:
                torch.compiler.cudagraph_mark_step_begin()  # the last call's outputs are not read again
            start_event.record()
        start = time.perf_counter()
        with (
            torch.no_grad(),
            torch.autocast(self.device.split(":")[0], dtype=torch.float16, enabled=self.precision == "fp16"),
        ):
            self.fn(self.kp, self.noise)
        if self.cuda:
            end_event.record()
            torch.cuda.synchronize()
            self.events = {"compute_ms": start_event.elapsed_time(end_event)}
        return time.perf_counter() - start

    def device_times(self) -> dict[str, float] | None:
        return self.events


class BackendTarget(Target):
    """A deployed pipeline on a posedeploy runtime backend (ONNX Runtime, OpenVINO, TensorRT)."""

    def __init__(
        self,
        artifacts: str | Path,
        backend: str,
        precision: str = "fp32",
        provider: str = "auto",
        threads: int | None = None,
    ) -> None:
        from posedeploy.artifacts import read_manifest
        from posedeploy.runtime.backend_choice import open_backend
        from posedeploy.runtime.loading import LoadOptions

        options = LoadOptions(precision, provider=provider, threads=threads)
        self.backend = open_backend(read_manifest(artifacts), backend, options)
        self.backend_name = backend
        self.name = backend if backend != "onnxruntime" else f"onnxruntime-{getattr(self.backend, 'provider', 'cpu')}"
        self.precision = self.backend.computed_precision(precision)  # what ran, not only what was asked
        self.device = self.backend.device

    def prepare(self, batch: int, hypotheses: int) -> None:
        kp, noise = inputs(batch, hypotheses)
        self.feed = {"keypoints": kp, "noise": noise}

    def call(self) -> float:
        start = time.perf_counter()
        self.backend.run(self.feed)
        return time.perf_counter() - start

    def device_times(self) -> dict[str, float] | None:
        times = getattr(self.backend, "timings", None)
        return {k: v for k, v in times.items() if k.endswith("_ms")} if times else None

    def close(self) -> None:
        self.backend.close()
