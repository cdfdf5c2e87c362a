"""An exponential moving average of a model's parameters, the weights that are validated and
written when training runs with ``ema``.

At a constant learning rate the graph lifters' validation error swings by several millimetres from
one epoch to the next; the average over the last few thousand steps sits between those swings.
The decay ramps up from 0 as (1 + t) / (10 + t), so the first steps do not leave the random
initialisation in the average for epochs.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class WeightAverage:
    def __init__(self, model: nn.Module, decay: float):
        self.decay, self.steps = decay, 0
        self.params = [p.detach().clone() for p in model.parameters()]

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        decay = min(self.decay, (1 + self.steps) / (10 + self.steps))
        for average, param in zip(self.params, model.parameters()):
            average.lerp_(param.detach(), 1 - decay)
        self.steps += 1

    def averaged(self, model: nn.Module) -> nn.Module:
        """A copy of ``model`` holding the averaged parameters (its buffers as they are)."""
        result = copy.deepcopy(model)
        with torch.no_grad():
            for param, average in zip(result.parameters(), self.params):
                param.copy_(average)
        return result

    def state_dict(self) -> dict:
        return {"decay": self.decay, "steps": self.steps, "params": self.params}

    def load_state_dict(self, state: dict) -> None:
        self.decay, self.steps = state["decay"], state["steps"]
        self.params = [p.clone() for p in state["params"]]
