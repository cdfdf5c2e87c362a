"""Loading one named backend onto an artifact's verified pipeline graph (or engine)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from posedeploy.artifacts import GRAPHS, Artifacts, pipeline_graph, plan_filename
from posedeploy.contract import INPUTS, OUTPUTS, RNG_INPUTS
from posedeploy.errors import ArtifactError, InputError
from posedeploy.runtime.backend import Backend

if TYPE_CHECKING:
    from posedeploy.runtime.onnxruntime_backend import OnnxRuntimeBackend
    from posedeploy.runtime.openvino_backend import OpenVINOBackend

AUTO = "auto"  # the fastest installed backend here, measured once (backend_choice.py)


@dataclass(frozen=True)
class LoadOptions:
    """How to load a pipeline: which graph (precision, noise source) and the backend-specific knobs."""

    precision: str = "fp32"
    noise: str = "host"  # host: the noise is an input; device: drawn in the graph
    provider: str = "auto"  # ONNX Runtime's execution provider
    threads: int | None = None  # ONNX Runtime / OpenVINO CPU threads (None: all cores)
    cuda: str = "auto"  # TensorRT's CUDA layer: cuda-python or pycuda


@dataclass(frozen=True)
class BackendKind:
    """A backend: the modules of which one makes it installed, and how it loads an artifact's pipeline."""

    modules: tuple[str, ...]
    load: Callable[[Artifacts, str, LoadOptions], Backend]  # (artifacts, GRAPHS key, options)


def _onnxruntime(artifacts: Artifacts, graph: str, options: LoadOptions) -> Backend:
    from posedeploy.runtime.onnxruntime_backend import OnnxRuntimeBackend

    loaded = OnnxRuntimeBackend(artifacts.path(graph), provider=options.provider, threads=options.threads)
    return _verified(loaded, artifacts, graph, options.noise)


def _openvino(artifacts: Artifacts, graph: str, options: LoadOptions) -> Backend:
    from posedeploy.runtime.openvino_backend import OpenVINOBackend

    loaded = OpenVINOBackend(artifacts.path(graph), precision=options.precision, threads=options.threads)
    return _verified(loaded, artifacts, graph, options.noise)


def _tensorrt(artifacts: Artifacts, graph: str, options: LoadOptions) -> Backend:
    from posedeploy.runtime.tensorrt_backend import TensorRTBackend

    return TensorRTBackend(find_plan(artifacts, graph), cuda=options.cuda)


# Every backend, in order of preference where 'auto' has no measurement to go by: a new backend is one
# module implementing Backend and one entry here.
REGISTRY: dict[str, BackendKind] = {
    "onnxruntime": BackendKind(("onnxruntime",), _onnxruntime),
    "openvino": BackendKind(("openvino",), _openvino),
    "tensorrt": BackendKind(("tensorrt", "tensorrt_rtx"), _tensorrt),
}
BACKENDS = tuple(REGISTRY)


def find_plan(artifacts: Artifacts, graph: str) -> Path:
    """The engine of ``graph`` in the artifact directory: built by posedeploy build from the
    current export (a plan from an older export is refused, not silently used)."""
    from posedeploy.engines.manifest import read_engine_manifest

    candidates = [artifacts.root / plan_filename(graph, rtx) for rtx in (False, True)]
    plans = [p for p in candidates if p.is_file()]
    if not plans:
        raise ArtifactError(
            f"{artifacts.root} has no engine for {GRAPHS[graph]}; build one here with posedeploy build "
            f"--artifacts {artifacts.root}"
            + (" --precision fp32" if not graph.endswith("fp16") else "")
            + (" --in-graph-noise" if ".rng" in graph else "")
        )
    plan = plans[0]
    manifest = read_engine_manifest(plan)
    exported = artifacts.manifest.files.get(manifest.onnx.file)
    if exported is None or exported.sha256 != manifest.onnx.sha256:
        raise ArtifactError(f"{plan.name} was built from an earlier export of {manifest.onnx.file}; rebuild it")
    return plan


def graph_for(backend: str, precision: str, noise: str = "host") -> str:
    """The GRAPHS key ``backend`` runs at ``precision``: OpenVINO lowers the fp32 graph to fp16 or
    bf16 itself; otherwise the graph of that precision."""
    lowered_by_openvino = backend == "openvino" and precision in ("fp16", "bf16")
    return pipeline_graph("fp32" if lowered_by_openvino else precision, noise)


def load_backend(artifacts: Artifacts, backend: str = "onnxruntime", options: LoadOptions | None = None) -> Backend:
    """The verified pipeline of an artifact directory, loaded on the named ``backend``."""
    if not isinstance(backend, str) or backend not in REGISTRY:
        raise InputError(f"unknown backend {backend!r}; expected {AUTO} or one of {', '.join(BACKENDS)}")
    options = options or LoadOptions()
    return REGISTRY[backend].load(artifacts, graph_for(backend, options.precision, options.noise), options)


def _verified(loaded: OnnxRuntimeBackend | OpenVINOBackend, artifacts: Artifacts, graph: str, noise: str) -> Backend:
    """``loaded``, after checking that its graph is this manifest's and has the contract's tensors."""
    meta, path = loaded.metadata, artifacts.root / GRAPHS[graph]
    if meta.get("graph") != graph or meta.get("checkpoint_sha256") != artifacts.manifest.checkpoint.sha256:
        loaded.close()
        raise ArtifactError(f"{path} was not exported with this manifest (graph or checkpoint differs); re-export")
    inputs = RNG_INPUTS if noise == "device" else INPUTS
    if [s.name for s in loaded.inputs] != list(inputs) or [s.name for s in loaded.outputs] != list(OUTPUTS):
        loaded.close()
        raise ArtifactError(f"{path} does not have the pipeline contract's inputs {inputs} and outputs {OUTPUTS}")
    return loaded
