"""How a checkpoint's weights are stored on disk: f32 as trained, or int8 with one f32 scale per row.

int8 storage exists so that a large checkpoint (HTNet + GCN AVG, 16 MB in f32) fits the limit for
files kept in git; it is dequantized to f32 on load, so every model, export and engine sees plain
f32 weights. Only float tensors of at least ``MIN_ELEMENTS`` values are stored as int8 (biases,
norms and the small adjacency matrices stay f32); each row along the last axis gets its own
symmetric scale, which keeps a row with small weights from losing its precision to a large one.

Each scale keeps 17 significant bits, so ``q * scale`` is exact in f32 for |q| <= 127: quantizing
dequantized weights again returns the same integers and scales, and re-saving an int8 checkpoint
writes the same bytes.
"""

from __future__ import annotations

import torch

STORAGES = ("f32", "int8")
MIN_ELEMENTS = 1024
_SCALE_BITS = 17
_LEVELS = 127


def quantize_int8(tensor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per row along the last axis; returns (int8 values, f32 scales shaped [..., 1])."""
    weights = tensor.detach().cpu().float()
    absmax = weights.abs().amax(dim=-1, keepdim=True)
    scale = torch.where(absmax > 0, absmax / _LEVELS, torch.ones_like(absmax))
    mantissa, exponent = torch.frexp(scale)
    # Rounded up, so no row exceeds +-127; 17 bits, so q * scale (7 + 17 bits) is exact in f32.
    scale = torch.ldexp(torch.ceil(mantissa * 2**_SCALE_BITS) / 2**_SCALE_BITS, exponent)
    values = torch.round(weights / scale).clamp_(-_LEVELS, _LEVELS).to(torch.int8)
    return values, scale


def dequantize_int8(values: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return values.float() * scale


def stored_as_int8(tensor: torch.Tensor) -> bool:
    return tensor.is_floating_point() and tensor.dim() >= 2 and tensor.numel() >= MIN_ELEMENTS


def pack_state(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A state dict as stored with int8 weights: (tensors, the scales of those stored as int8)."""
    stored, scales = {}, {}
    for name, tensor in state.items():
        if stored_as_int8(tensor):
            stored[name], scales[name] = quantize_int8(tensor)
        else:
            stored[name] = tensor.detach().cpu()
    return stored, scales


def unpack_state(stored: dict[str, torch.Tensor], scales: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The f32 state dict of one packed by :func:`pack_state`; ValueError when the two do not fit together."""
    unknown = sorted(set(scales) - set(stored))
    if unknown:
        raise ValueError(f"scales for tensors it does not hold: {unknown[:3]}")
    state = {}
    for name, tensor in stored.items():
        if name not in scales:
            if tensor.dtype == torch.int8:
                raise ValueError(f"'{name}' is int8 without a scale")
            state[name] = tensor
            continue
        scale = scales[name]
        expected = (*tensor.shape[:-1], 1)
        if tensor.dtype != torch.int8 or tuple(scale.shape) != expected or not scale.is_floating_point():
            raise ValueError(
                f"'{name}' ({tensor.dtype}, {tuple(tensor.shape)}) does not fit its scale "
                f"({scale.dtype}, {tuple(scale.shape)}; expected int8 values and f32 scales {expected})"
            )
        state[name] = dequantize_int8(tensor, scale)
    return state
