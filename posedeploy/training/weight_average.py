"""An exponential moving average of a model's parameters, the weights that are validated and
written when training runs with ``ema``.

At a constant learning rate the graph lifters' validation error swings by several millimetres from
one epoch to the next; the average over the last few thousand steps sits between those swings.
The decay at step t is min(decay, (1 + t) / (10 + t)): 0.1 at the first step, rising, so that the
random initialisation does not linger in the average for epochs; a decay d is reached after about
d / (1 - d) steps (5,000 for 0.9998).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from posedeploy.errors import CheckpointError


class WeightAverage:
    def __init__(self, model: nn.Module, decay: float):
        self.decay, self.steps = decay, 0
        self.params = [p.detach().clone() for p in model.parameters()]

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        decay = min(self.decay, (1 + self.steps) / (10 + self.steps))
        for average, param in zip(self.params, model.parameters(), strict=True):
            average.lerp_(param.detach(), 1 - decay)
        self.steps += 1

    def averaged(self, model: nn.Module) -> nn.Module:
        """A copy of ``model`` holding the averaged parameters (its buffers as they are)."""
        result = copy.deepcopy(model)
        with torch.no_grad():
            for param, average in zip(result.parameters(), self.params, strict=True):
                param.copy_(average)
        return result

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "steps": self.steps, "params": self.params}

    def load_state_dict(self, state: object, model: nn.Module) -> None:
        """Restore a saved average (read onto the CPU) next to ``model``'s parameters, wherever they are."""
        params = list(model.parameters())
        saved = state.get("params") if isinstance(state, dict) else None
        if not isinstance(saved, list) or [tuple(p.shape) for p in saved] != [tuple(p.shape) for p in params]:
            raise CheckpointError("the training state's weight average does not match this model's parameters")
        assert isinstance(state, dict)  # saved, a list, came from it
        self.decay, self.steps = state["decay"], state["steps"]
        self.params = [p.to(device=q.device, dtype=q.dtype, copy=True) for p, q in zip(saved, params, strict=True)]
