"""The model zoo: two single-hypothesis lifters and two AVG models, built by name from a config.

Lifters map (N, 17, 2) normalised 2D to (N, 17, 3) root-relative metres; AVG models map
(N, 17, 2) to (N, 17), the expected relative error of the paired lifter at each joint.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

import torch
from torch import nn

from posedeploy.errors import CheckpointError
from posedeploy.skeleton import adjacency
from posedeploy.training.models.avg_gcn import GCNAVG, GCNAVGConfig
from posedeploy.training.models.avg_mlp import MLPAVG, MLPAVGConfig
from posedeploy.training.models.htnet import HTNet, HTNetConfig
from posedeploy.training.models.mgcn_lw import MGCNLite, MGCNLiteConfig

LIFTERS: dict[str, tuple[type[nn.Module], type]] = {
    "htnet": (HTNet, HTNetConfig),
    "mgcn_lw": (MGCNLite, MGCNLiteConfig),
}
AVGS: dict[str, tuple[type[nn.Module], type]] = {
    "gcn": (GCNAVG, GCNAVGConfig),
    "mlp": (MLPAVG, MLPAVGConfig),
}
# The AVG model PRPose pairs with each lifter.
DEFAULT_AVG: dict[str, str] = {"htnet": "gcn", "mgcn_lw": "mlp"}


def _registry(kind: str) -> dict[str, tuple[type[nn.Module], type]]:
    if kind not in ("lifter", "avg"):
        raise ValueError(f"model kind must be 'lifter' or 'avg', got {kind!r}")
    return LIFTERS if kind == "lifter" else AVGS


def default_params(kind: str, name: str) -> dict[str, Any]:
    """The default hyper-parameters of a model, as a plain dict."""
    return asdict(_lookup(kind, name)[1]())


def _lookup(kind: str, name: str) -> tuple[type[nn.Module], type]:
    registry = _registry(kind)
    if name not in registry:
        raise CheckpointError(f"unknown {kind} model '{name}'; expected one of {', '.join(registry)}")
    return registry[name]


def build_model(kind: str, name: str, params: dict[str, Any] | None = None) -> nn.Module:
    """Instantiate a lifter or AVG model by name; ``params`` override its config defaults."""
    cls, config_cls = _lookup(kind, name)
    params = dict(params or {})
    known = {f.name for f in fields(config_cls)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise CheckpointError(f"{kind} model '{name}' has no parameter(s) {', '.join(unknown)}")
    return cls(torch.from_numpy(adjacency()), config_cls(**params))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
