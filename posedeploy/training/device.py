"""The PyTorch device a command runs on, checked before any model or data is loaded."""

from __future__ import annotations

import re

from posedeploy.errors import DeviceError, InputError


def resolve_device(device: str | None) -> str:
    """``device`` (cpu, cuda or cuda:N), checked against the GPUs this PyTorch sees; None: cuda when
    there is one, else cpu."""
    import torch

    if not device:
        return "cuda" if torch.cuda.is_available() else "cpu"
    match = re.fullmatch(r"cpu|cuda(?::(\d+))?", device)
    if match is None:
        raise InputError(f"device must be cpu, cuda or cuda:N, got '{device}'")
    if device != "cpu":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"--device {device}: this PyTorch sees no CUDA GPU (torch {torch.__version__}); use --device cpu"
            )
        index = int(match.group(1) or 0)
        if index >= torch.cuda.device_count():
            raise DeviceError(f"--device {device}: there are {torch.cuda.device_count()} CUDA GPU(s)")
    return device
