"""Checkpoints for tests that must not depend on training: seeded random weights."""

from __future__ import annotations

from pathlib import Path

import torch

from posedeploy.training.checkpoint import Checkpoint, PipelineConfig, save_checkpoint
from posedeploy.training.models import build_model


def random_checkpoint(path: Path, lifter: str = "mgcn_lw", seed: int = 0, with_avg: bool = True) -> Path:
    torch.manual_seed(seed)
    config = PipelineConfig.for_lifter(lifter, keypoints="synthetic/gt")
    lifter_state = build_model("lifter", lifter).state_dict()
    if not with_avg:
        return save_checkpoint(path, Checkpoint(config, lifter_state))
    config = config.with_avg()
    avg = build_model("avg", config.avg)
    with torch.no_grad():  # AVG outputs around 1-2, so that the clamp and the adaptivity both matter
        last = avg.w2 if hasattr(avg, "w2") else avg.gcn.gconv_output
        last.bias.add_(1.5)
    return save_checkpoint(path, Checkpoint(config, lifter_state, avg.state_dict()))
