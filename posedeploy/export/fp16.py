"""Mixed-precision ONNX: the models' bulk in float16, float32 where float16 loses accuracy.

The pass works on the exported float32 graph. Nodes inside the given module scopes (the lifter
and the AVG model, recognisable by ``/lifter/`` and ``/avg/`` in the exporter's node names)
compute in float16, except the operators listed in :data:`KEEP_FP32` — normalisations, softmax,
reductions, powers and roots — and each model's input layer (:data:`INPUT_LAYERS`), which stay
float32 islands. Everything outside the scopes (the
sigma and noise arithmetic, the mirror merge, the aggregation and spread) stays float32, and so
do the graph's inputs and outputs. Casts are inserted at every boundary; float initializers used
only inside float16 nodes are stored as float16 (half the weight bytes).

This is the graph a strongly typed TensorRT network builds as written (TensorRT 10.12+/11 has no
FP16 builder flag for strongly typed networks).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from posedeploy.errors import PoseDeployError

KEEP_FP32: frozenset[str] = frozenset(
    {
        "LayerNormalization",
        "BatchNormalization",
        "InstanceNormalization",
        "GroupNormalization",
        "Softmax",
        "LogSoftmax",
        "ReduceMean",
        "ReduceSum",
        "ReduceSumSquare",
        "ReduceL2",
        "ReduceMax",
        "ReduceMin",
        "ReduceProd",
        "Pow",
        "Sqrt",
        "Reciprocal",
        "Exp",
        "Log",
    }
)
# Each model's input layer, which reads the noisy 2D coordinates: in float16 they would be rounded
# to steps of 2^-11, a tenth of the noise scale, so this cheap layer (2 input channels) stays float32.
INPUT_LAYERS: tuple[str, ...] = ("/input/", "/gconv_input/", "/patch_embed/", "/avg/w1/")
_FLOAT, _HALF = TensorProto.FLOAT, TensorProto.FLOAT16


def _float_tensors(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every tensor of the graph, from ONNX shape inference."""
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    g = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in list(g.input) + list(g.output) + list(g.value_info)}
    types.update({t.name: t.data_type for t in g.initializer})
    return types


def to_mixed_precision(model: onnx.ModelProto, scopes: tuple[str, ...] = ("/lifter/", "/avg/")) -> onnx.ModelProto:
    """A copy of ``model`` computing in float16 inside ``scopes`` (see the module docstring)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    types = _float_tensors(model)
    nodes = list(graph.node)  # one Python object per node: protobuf wrappers are not stable across iterations
    half = {
        id(n)
        for n in nodes
        if any(scope in n.name for scope in scopes)
        and n.op_type not in KEEP_FP32
        and not any(layer in n.name for layer in INPUT_LAYERS)
    }
    if not half:
        raise PoseDeployError(f"no node of the graph lies in the scopes {scopes}: nothing to convert to float16")
    initializers = {t.name: t for t in graph.initializer}
    converted = _halve_initializers(initializers, nodes, half)
    # Where each float tensor lives: produced by a float16 node -> float16, otherwise float32.
    producer_half = {name: id(node) in half for node in nodes for name in node.output}

    def dtype_of(name: str) -> int | None:
        if name in converted:
            return _HALF
        t = types.get(name)
        if t not in (_FLOAT, _HALF):
            return t
        return _HALF if producer_half.get(name, False) else _FLOAT

    new_nodes = _with_casts(nodes, half, dtype_of)
    _keep_float32_outputs(graph, new_nodes, producer_half)
    nodes = [onnx.NodeProto.FromString(n.SerializeToString()) for n in new_nodes]
    del graph.node[:]
    graph.node.extend(_topological(nodes, {i.name for i in graph.input} | set(initializers)))
    del graph.value_info[:]
    onnx.checker.check_model(model, full_check=True)
    return model


def _halve_initializers(
    initializers: dict[str, onnx.TensorProto], nodes: list[onnx.NodeProto], half: set[int]
) -> set[str]:
    """Convert in place the float initializers read only by float16 nodes; their names."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in nodes:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    converted: set[str] = set()
    for name, tensor in initializers.items():
        users = consumers.get(name, [])
        if tensor.data_type == _FLOAT and users and all(id(u) in half for u in users):
            tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float16), name))
            converted.add(name)
    return converted


def _with_casts(
    nodes: list[onnx.NodeProto], half: set[int], dtype_of: Callable[[str], int | None]
) -> list[onnx.NodeProto]:
    """The nodes, each float input cast to the node's precision where it arrives in the other one."""
    new_nodes: list[onnx.NodeProto] = []
    casts: dict[tuple[str, int], str] = {}

    def cast(name: str, to: int) -> str:
        key = (name, to)
        if key not in casts:
            out = f"{name}__to_{'fp16' if to == _HALF else 'fp32'}"
            new_nodes.append(helper.make_node("Cast", [name], [out], to=to, name=f"{out}/Cast"))
            casts[key] = out
        return casts[key]

    for node in nodes:
        want = _HALF if id(node) in half else _FLOAT
        for i, name in enumerate(node.input):
            t = dtype_of(name) if name else None
            if t in (_FLOAT, _HALF) and t != want:
                node.input[i] = cast(name, want)
        if id(node) in half:
            _retype_attributes(node)
        new_nodes.append(node)
    return new_nodes


def _keep_float32_outputs(
    graph: onnx.GraphProto, new_nodes: list[onnx.NodeProto], producer_half: dict[str, bool]
) -> None:
    """Graph outputs stay float32: a float16 result is renamed and cast back under its own name."""
    for output in graph.output:
        if output.type.tensor_type.elem_type == _FLOAT and producer_half.get(output.name, False):
            internal = f"{output.name}__fp16"
            for node in new_nodes:
                for i, name in enumerate(node.output):
                    if name == output.name:
                        node.output[i] = internal
                for i, name in enumerate(node.input):
                    if name == output.name:
                        node.input[i] = internal
            new_nodes.append(helper.make_node("Cast", [internal], [output.name], to=_FLOAT, name=f"{output.name}/Cast"))


def _retype_attributes(node: onnx.NodeProto) -> None:
    """Float constants and float casts inside a float16 node become float16."""
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == _FLOAT:
            attr.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attr.t).astype(np.float16), attr.t.name))
        elif node.op_type == "Cast" and attr.name == "to" and attr.i == _FLOAT:
            attr.i = _HALF


def _topological(nodes: list[onnx.NodeProto], available: set[str]) -> list[onnx.NodeProto]:
    """Order nodes so that every input is produced before it is read (casts were appended)."""
    ready = set(available) | {""}
    pending, ordered = list(nodes), []
    while pending:
        rest = []
        for node in pending:
            if all(name in ready for name in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            raise PoseDeployError(f"float16 conversion left {len(rest)} nodes with unresolved inputs")
        pending = rest
    return ordered
