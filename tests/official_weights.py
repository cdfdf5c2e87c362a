"""Deterministic random weights under the official PRPose parameter names.

Shared by scripts/official_parity.py (which runs the official model definitions on them to make
tests/fixtures/official_outputs.npz) and by the tests (which import the same weights with
posedeploy and must reproduce those outputs).
"""

from __future__ import annotations

import torch


def random_official_state(keys: list[str], shapes: list[list[int]], seed: int) -> dict[str, torch.Tensor]:
    """Weights of a plausible scale for every key: norm scales near 1, positive running variances,
    matrices scaled by 1/sqrt(fan-in), small biases and adjacency corrections."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in zip(keys, shapes, strict=True):
        module = key.rsplit(".", 1)[0]
        is_norm = "norm" in module.lower() or module.endswith(".bn")
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(100, dtype=torch.long)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=gen) + 0.5
        elif is_norm and key.endswith("weight"):
            state[key] = 1 + 0.1 * torch.randn(shape, generator=gen)
        elif len(shape) >= 2:
            fan_in = shape[-2] if len(shape) == 3 and key.endswith(".W") else shape[-1]
            state[key] = torch.randn(shape, generator=gen) / max(1, fan_in) ** 0.5
        else:
            state[key] = 0.1 * torch.randn(shape, generator=gen)
    return state
