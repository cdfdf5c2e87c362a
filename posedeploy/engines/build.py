"""``posedeploy build``: the exported pipeline -> a serialized TensorRT engine and its manifest.

- Strongly typed networks (the precision is the graph's: pipeline.fp16.onnx keeps its float32
  islands) wherever TensorRT offers them — 10.x (Jetson's 10.3 included), 11.x, TensorRT for RTX;
  the FP16 builder flag only on a TensorRT too old for strong typing, or on request (--typing weak,
  TensorRT < 11).
- One optimisation profile over batch B and hypotheses S; workspace limit; builder optimisation
  level; a timing cache that is loaded, extended and saved (datacenter TensorRT; TensorRT for RTX
  has none); optional version-/hardware-compatible
  engines; optional DLA core with GPU fallback (Jetson Orin).
- TensorRT for RTX builds for explicit compute capabilities, also on a machine without a GPU.
- Progress from TensorRT's progress monitor; the plan, its manifest and the timing cache are written
  atomically, so a failed or interrupted build leaves no file a later load would take for an engine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from posedeploy import __version__
from posedeploy.artifacts import Artifacts, pipeline_graph, plan_filename, read_manifest
from posedeploy.engines.flavour import TensorRT, load_tensorrt
from posedeploy.engines.machine import MachineInfo, describe_machine
from posedeploy.engines.manifest import (
    DLA,
    BuildFlags,
    CudaInfo,
    EngineManifest,
    GraphRef,
    PlanRef,
    PlatformInfo,
    Profiles,
    Target,
    TensorRTInfo,
    TimingCache,
    manifest_path,
)
from posedeploy.errors import EngineBuildError, InputError
from posedeploy.files import atomic_path, sha256_file

logger = logging.getLogger(__name__)

RTX_TARGETS = {"7.5": "SM75", "8.0": "SM80", "8.6": "SM86", "8.9": "SM89", "12.0": "SM120", "12.1": "SM121"}


@dataclass(frozen=True)
class BuildSettings:
    """``posedeploy build``: which exported graph, the optimisation profile and the builder's options."""

    artifacts: Path = Path("artifacts")
    out: Path | None = None  # default: DIR/pipeline[.rng].PRECISION[.rtx].plan
    precision: str = "fp16"
    batch: tuple[int, int, int] = (1, 16, 64)
    hypotheses: tuple[int, int, int] = (1, 200, 200)
    workspace_mb: int | None = None  # TensorRT's default: the GPU's memory
    optimization_level: int = 3
    timing_cache: Path | None = None  # default: beside the plan
    version_compatible: bool = False
    hardware_compatible: bool = False
    dla_core: int | None = None
    compute_capabilities: tuple[str, ...] = ()  # TensorRT for RTX targets, e.g. ("8.9",)
    flavour: str = "auto"
    typing: str = "auto"  # auto | strong | weak (FP16 builder flag)
    in_graph_noise: bool = False  # build pipeline.rng*.onnx: noise drawn on the device

    @property
    def graph(self) -> str:
        return pipeline_graph(self.precision, "device" if self.in_graph_noise else "host")

    def validate(self) -> None:
        if self.precision not in ENGINE_PRECISIONS:
            # pipeline.int8.onnx is laid out for ONNX Runtime and OpenVINO; its QDQ form has not
            # been built or checked under TensorRT, so no engine is made from it.
            raise InputError(f"engine precision must be one of {', '.join(ENGINE_PRECISIONS)}, got '{self.precision}'")
        self.graph  # noqa: B018 - validates the noise source with the precision
        for name, (lo, opt, hi) in (("batch", self.batch), ("hypotheses", self.hypotheses)):
            if not 1 <= lo <= opt <= hi:
                raise InputError(f"{name} profile must satisfy 1 <= min <= opt <= max, got {lo}:{opt}:{hi}")
        if self.workspace_mb is not None and self.workspace_mb < 1:
            raise InputError(f"workspace must be >= 1 MB, got {self.workspace_mb}")
        if not 0 <= self.optimization_level <= 5:
            raise InputError(f"builder optimisation level must be 0-5, got {self.optimization_level}")
        if self.dla_core is not None and (isinstance(self.dla_core, bool) or not 0 <= self.dla_core < DLA_CORES):
            raise InputError(
                f"DLA core must be 0-{DLA_CORES - 1} (Jetson Orin and Xavier have {DLA_CORES}), got {self.dla_core}"
            )
        unknown = [c for c in self.compute_capabilities if c not in RTX_TARGETS and c != "current"]
        if unknown:
            raise InputError(
                f"unknown compute capability {', '.join(unknown)}; expected current or {', '.join(RTX_TARGETS)}"
            )


ENGINE_PRECISIONS = ("fp32", "fp16")
DLA_CORES = 2  # the most any Jetson module has


def parse_range(text: str, name: str) -> tuple[int, int, int]:
    """'1:16:64' -> (1, 16, 64); '200' -> (200, 200, 200)."""
    try:
        parts = [int(p) for p in text.split(":")]
    except ValueError:
        raise InputError(f"{name} range must be MIN:OPT:MAX integers, got '{text}'") from None
    if len(parts) == 1:
        parts *= 3
    if len(parts) != 3:
        raise InputError(f"{name} range must be MIN:OPT:MAX, got '{text}'")
    return tuple(parts)  # type: ignore[return-value]


class _BuildLog(Protocol):
    """The TensorRT logger :func:`_trt_logger` makes: it keeps the builder's errors."""

    def errors(self) -> list[str]: ...


def _trt_logger(trt: TensorRT) -> _BuildLog:
    # The base class is the loaded TensorRT's (a module chosen at runtime, without type information).
    class Logger(trt.module.ILogger):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.messages: list[tuple[str, str]] = []

        def log(self, severity: object, msg: str) -> None:
            level = str(severity).rsplit(".", 1)[-1]
            if level in ("INTERNAL_ERROR", "ERROR", "WARNING"):
                self.messages.append((level, msg))

        def errors(self) -> list[str]:
            return [m for level, m in self.messages if level != "WARNING"]

    return Logger()


def _progress_monitor(trt: TensorRT) -> object | None:
    """TensorRT's progress monitor, printing each build phase as it ends (None if unsupported)."""
    if not hasattr(trt.module, "IProgressMonitor"):
        return None

    # The base class is the loaded TensorRT's (a module chosen at runtime, without type information).
    class Monitor(trt.module.IProgressMonitor):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.started: dict[str, float] = {}

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            if parent_phase is None:  # top-level phases only; TensorRT nests many small ones
                self.started[phase_name] = time.monotonic()

        def step_complete(self, phase_name: str, step: int) -> bool:
            return True  # keep building

        def phase_finish(self, phase_name: str) -> None:
            if phase_name in self.started:
                logger.info(f"build: {phase_name} ({time.monotonic() - self.started.pop(phase_name):.1f} s)")

    return Monitor()


@contextlib.contextmanager
def _ticker(label: str, enabled: bool) -> Iterator[None]:
    """Elapsed-time lines every 10 s where TensorRT has no progress monitor."""
    if not enabled:
        yield
        return
    stop = threading.Event()
    start = time.monotonic()

    def tick() -> None:
        while not stop.wait(10):
            logger.info(f"{label}: {time.monotonic() - start:.0f} s")

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def parser_errors(parser: Any) -> list[str]:  # a TensorRT OnnxParser (no type information)
    out = []
    for i in range(parser.num_errors):
        e = parser.get_error(i)
        where = f"node {e.node()}"
        with contextlib.suppress(Exception):  # node name and operator exist from TensorRT 8.6
            where += f" '{e.node_name()}' ({e.node_operator()})"
        out.append(f"{where}: {e.desc()}")
    return out


# TensorRT's builder, network, parser, builder config, timing cache and serialised plan are Any here:
# the tensorrt modules have no type information.
def _network(trt: TensorRT, builder: Any, onnx_path: Path, trt_log: _BuildLog, strongly_typed: bool) -> tuple[Any, Any]:
    flags = 0
    if strongly_typed:
        flags |= 1 << int(trt.module.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.module.OnnxParser(network, trt_log)
    if not parser.parse_from_file(str(onnx_path)):
        details = parser_errors(parser)
        raise EngineBuildError(f"the ONNX parser rejected {onnx_path.name}: " + "; ".join(details[:3]))
    return network, parser


def _configure(
    trt: TensorRT,
    builder: Any,
    network: Any,
    s: BuildSettings,
    cache_bytes: bytes | None,
    machine: MachineInfo,
    strongly_typed: bool,
) -> tuple[Any, Any, list[str], object | None]:
    m = trt.module
    config = builder.create_builder_config()
    if s.workspace_mb is not None:
        if machine.gpus:
            config.set_memory_pool_limit(m.MemoryPoolType.WORKSPACE, s.workspace_mb * 2**20)
        else:  # TensorRT for RTX would try to reserve the limit on a GPU that is not there
            logger.info("build: no GPU here, the workspace limit applies when the engine is built on one")
    config.builder_optimization_level = s.optimization_level
    if not strongly_typed and s.precision == "fp16":
        config.set_flag(m.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    (b0, b1, b2), (s0, s1, s2) = s.batch, s.hypotheses
    inputs = {network.get_input(i).name for i in range(network.num_inputs)}
    profile.set_shape("keypoints", (b0, 17, 2), (b1, 17, 2), (b2, 17, 2))
    if "noise" in inputs:
        profile.set_shape("noise", (b0, s0, 2, 17, 2), (b1, s1, 2, 17, 2), (b2, s2, 2, 17, 2))
    else:  # in-graph noise: S is the length of 'slots'
        profile.set_shape("slots", (s0,), (s1,), (s2,))
    config.add_optimization_profile(profile)
    cache = None
    if not trt.is_rtx:  # TensorRT for RTX has no timing cache (its cache calls are no-ops)
        cache = config.create_timing_cache(cache_bytes or b"")
        if not config.set_timing_cache(cache, ignore_mismatch=False):
            logger.info("build: the saved timing cache does not fit this GPU/TensorRT; starting a new one")
            cache = config.create_timing_cache(b"")
            config.set_timing_cache(cache, ignore_mismatch=True)
    if s.version_compatible:
        config.set_flag(m.BuilderFlag.VERSION_COMPATIBLE)
    if s.hardware_compatible:
        config.hardware_compatibility_level = m.HardwareCompatibilityLevel.AMPERE_PLUS
    if s.dla_core is not None:
        config.default_device_type = m.DeviceType.DLA
        config.DLA_core = s.dla_core
        config.set_flag(m.BuilderFlag.GPU_FALLBACK)
    targets = _targets(trt, s, machine)
    if trt.is_rtx:
        config.num_compute_capabilities = len(targets)
        for i, cc in enumerate(targets):
            config.set_compute_capability(
                m.ComputeCapability.CURRENT if cc == "current" else getattr(m.ComputeCapability, RTX_TARGETS[cc]), i
            )
    monitor = _progress_monitor(trt)
    if monitor is not None:
        config.progress_monitor = monitor
    return config, cache, targets, monitor


def _targets(trt: TensorRT, s: BuildSettings, machine: MachineInfo) -> list[str]:
    here = machine.gpus[0].compute_capability if machine.gpus else None
    if trt.is_rtx:
        targets = [here if c == "current" and here else c for c in (s.compute_capabilities or ["current"])]
        if "current" in targets:
            raise InputError("no GPU here to build for: name the target with --compute-capability (e.g. 8.9, 12.0)")
        return targets
    if s.compute_capabilities:
        raise InputError(
            "--compute-capability is for TensorRT for RTX; datacenter TensorRT builds for the GPU it runs on"
        )
    if here is None:
        raise EngineBuildError("TensorRT needs a CUDA GPU to build on (TensorRT for RTX can build without one)")
    return [here]


def build_engine(settings: BuildSettings | None = None) -> EngineManifest:
    """Build, check and write the engine of ``settings.artifacts``; returns its manifest."""
    s = settings or BuildSettings()
    s.validate()
    artifacts = read_manifest(s.artifacts)
    onnx_path = artifacts.path(s.graph)
    trt = load_tensorrt(s.flavour)
    machine = describe_machine()
    if s.dla_core is not None and (trt.is_rtx or not machine.l4t):
        why = "TensorRT for RTX has no DLA support" if trt.is_rtx else "this machine is not a Jetson"
        raise InputError(
            f"--dla-core {s.dla_core}: DLA cores exist only on Jetson (Xavier, Orin) with JetPack's "
            f"TensorRT, and {why}; build without --dla-core"
        )
    plan_path = Path(s.out) if s.out else Path(s.artifacts) / plan_filename(s.graph, trt.is_rtx)
    cache_path = Path(s.timing_cache) if s.timing_cache else plan_path.with_name(f"timing.{trt.flavour}.cache")
    cache_bytes = cache_path.read_bytes() if cache_path.is_file() else None
    started = time.monotonic()
    plan, cache, targets, strongly_typed = _compile(trt, onnx_path, s, cache_bytes, machine)
    seconds = time.monotonic() - started
    manifest = _engine_manifest(trt, s, machine, targets, strongly_typed, onnx_path, artifacts, seconds)
    with contextlib.ExitStack() as stack:
        manifest_tmp = stack.enter_context(atomic_path(manifest_path(plan_path)))  # renamed last
        plan_tmp = stack.enter_context(atomic_path(plan_path))
        plan_tmp.write_bytes(memoryview(plan))
        timing = None
        if cache is not None:
            cache_tmp = stack.enter_context(atomic_path(cache_path))
            cache_tmp.write_bytes(memoryview(cache.serialize()))
            timing = TimingCache(cache_path.name, sha256_file(cache_tmp), cache_bytes is not None)
        written = PlanRef(plan_path.name, sha256_file(plan_tmp), plan_tmp.stat().st_size)
        manifest = dataclasses.replace(manifest, plan=written, timing_cache=timing)
        manifest_tmp.write_text(json.dumps(manifest.to_json(), indent=2) + "\n")
    where = f"DLA core {s.dla_core} with GPU fallback" if s.dla_core is not None else "GPU"
    logger.info(f"build: {plan_path.name} ({manifest.plan.bytes / 1e6:.1f} MB, {where}) in {seconds:.1f} s")
    return manifest


def _compile(
    trt: TensorRT, onnx_path: Path, s: BuildSettings, cache_bytes: bytes | None, machine: MachineInfo
) -> tuple[Any, Any, list[str], bool]:
    """(serialised plan, timing cache, target compute capabilities, strongly typed) of ``onnx_path``."""
    trt_log = _trt_logger(trt)
    builder = trt.module.Builder(trt_log)
    if builder is None:
        raise EngineBuildError(f"{trt.flavour} could not create a builder: {'; '.join(trt_log.errors()) or 'no GPU?'}")
    strongly_typed = trt.strongly_typed(s.typing)
    network, _parser = _network(trt, builder, onnx_path, trt_log, strongly_typed)
    config, cache, targets, monitor = _configure(trt, builder, network, s, cache_bytes, machine, strongly_typed)
    logger.info(
        f"build: {onnx_path.name} with {trt.flavour} {trt.version} "
        f"({'strongly typed' if strongly_typed else 'FP16 flag'}) for compute capability {', '.join(targets)}; "
        f"B {':'.join(map(str, s.batch))}, S {':'.join(map(str, s.hypotheses))}"
    )
    with _ticker("build", enabled=monitor is None):
        plan = builder.build_serialized_network(network, config)
    if plan is None:
        text = "; ".join(trt_log.errors()[-3:]) or "no reason given"
        if any(k in text.lower() for k in ("out of memory", "insufficient memory", "cudaerrormemoryallocation")):
            raise EngineBuildError(
                f"TensorRT ran out of memory building {onnx_path.name} ({text}); lower --workspace or the largest "
                f"batch/hypotheses of the profile"
            )
        raise EngineBuildError(f"TensorRT could not build {onnx_path.name}: {text}")
    return plan, cache, targets, strongly_typed


def _engine_manifest(
    trt: TensorRT,
    s: BuildSettings,
    machine: MachineInfo,
    targets: list[str],
    strongly_typed: bool,
    onnx_path: Path,
    artifacts: Artifacts,
    seconds: float,
) -> EngineManifest:
    """The engine's manifest, its plan still to be written (an empty PlanRef until then)."""
    gpu = machine.gpus[0].name if machine.gpus else None
    return EngineManifest(
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        posedeploy=__version__,
        tensorrt=TensorRTInfo(trt.flavour, trt.version, strongly_typed),
        target=Target(list(targets), gpu=None if trt.is_rtx else gpu, built_on_gpu=gpu),
        cuda=CudaInfo(
            machine.driver_version, machine.cuda_runtime_version, getattr(trt.module, "__cuda_version__", None)
        ),
        platform=PlatformInfo(machine.arch, machine.system, machine.l4t),
        precision=s.precision,
        graph=s.graph,
        profiles=Profiles(list(s.batch), list(s.hypotheses)),
        flags=BuildFlags(
            version_compatible=s.version_compatible,
            hardware_compatibility="ampere_plus" if s.hardware_compatible else None,
            dla=DLA(s.dla_core, True) if s.dla_core is not None else None,
            workspace_mb=s.workspace_mb,
            optimization_level=s.optimization_level,
        ),
        onnx=GraphRef(onnx_path.name, sha256_file(onnx_path)),
        checkpoint_sha256=artifacts.manifest.checkpoint.sha256,
        build_seconds=round(seconds, 1),
        plan=PlanRef("", "", 1),
    )
