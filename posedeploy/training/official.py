"""Import the official PRPose checkpoints (github.com/xzhouzeng/PRPose, ``ckpt/``).

They are bare state dicts with the parameter names of the official model definitions:
``shhpe_model_{htnet,mgcn_lw}.pth`` for the lifter, ``avg_model_{htnet,mgcn_lw}.pth`` for the AVG
model trained against it. The graph models here wrap the official layer stacks in a ``gcn``
module and HTNet's modules carry clearer names; the rules below translate one naming to the other,
and every tensor must then fit by name and shape.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from posedeploy.errors import CheckpointError
from posedeploy.training.checkpoint import Checkpoint, PipelineConfig, _load_state, safe_torch_load
from posedeploy.training.models import DEFAULT_AVG, build_model

# (pattern, replacement) applied in order to every official HTNet key.
_HTNET_RULES: tuple[tuple[str, str], ...] = (
    (r"^Hiremixer\.blocks\.", "blocks."),
    (r"^Hiremixer\.Temporal_norm\.", "norm."),
    (r"\.lgc\.", ".ljc."),
    (r"\.ipc\.norm_conv1_mlp\.", ".ipc.pool3.norm_mlp."),
    (r"\.ipc\.norm_conv2_mlp\.", ".ipc.pool2.norm_mlp."),
    (r"\.ipc\.norm_conv1\.", ".ipc.pool3.norm."),
    (r"\.ipc\.norm_conv2\.", ".ipc.pool2.norm."),
    (r"\.ipc\.conv1\.", ".ipc.pool3.conv."),
    (r"\.ipc\.conv2\.", ".ipc.pool2.conv."),
    (r"\.ipc\.mlp_down_1\.", ".ipc.pool3.mlp."),
    (r"\.ipc\.mlp_down_2\.", ".ipc.pool2.mlp."),
)
_GCN_RULES: tuple[tuple[str, str], ...] = ((r"^", "gcn."),)

RULES: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    ("lifter", "htnet"): _HTNET_RULES,
    ("lifter", "mgcn_lw"): _GCN_RULES,
    ("avg", "gcn"): _GCN_RULES,
    ("avg", "mlp"): (),
}


def rename_official(state: dict[str, torch.Tensor], kind: str, name: str) -> dict[str, torch.Tensor]:
    """Official parameter names -> posedeploy names for one model."""
    rules = RULES[(kind, name)]
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        key = key.removeprefix("module.")  # saved from DataParallel
        for pattern, replacement in rules:
            key = re.sub(pattern, replacement, key)
        out[key] = value
    return out


def read_official_state(path: str | Path) -> dict[str, torch.Tensor]:
    state = safe_torch_load(path, "official checkpoint")
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} is not a state dict of tensors")
    return state


def convert_official(state: dict[str, torch.Tensor], kind: str, name: str, source: str) -> dict[str, torch.Tensor]:
    """Rename and validate one official state dict; raises CheckpointError if it is another model's."""
    converted = rename_official(state, kind, name)
    model = build_model(kind, name)
    try:
        _load_state(model, converted, f"{kind} '{name}'")
    except CheckpointError as exc:
        raise CheckpointError(f"{source} is not an official {name} {kind} checkpoint: {exc}") from None
    return {k: v.clone() for k, v in model.state_dict().items()}


def import_official(
    lifter: str, lifter_weights: str | Path, avg_weights: str | Path | None, alpha: float, keypoints: str = "h36m/cpn"
) -> Checkpoint:
    """Build a posedeploy checkpoint from the official lifter (and AVG) weights."""
    if lifter not in DEFAULT_AVG:
        raise CheckpointError(f"unknown lifter '{lifter}'; expected one of {', '.join(DEFAULT_AVG)}")
    if not (math.isfinite(alpha) and alpha > 0):
        raise CheckpointError(f"alpha must be a finite number > 0, got {alpha}")
    lifter_state = convert_official(read_official_state(lifter_weights), "lifter", lifter, str(lifter_weights))
    config = PipelineConfig.for_lifter(lifter, keypoints=keypoints, alpha=alpha)
    avg_state = None
    if avg_weights is not None:
        config = config.with_avg()
        assert config.avg is not None  # with_avg() names one
        avg_state = convert_official(read_official_state(avg_weights), "avg", config.avg, str(avg_weights))
    config.training = {"imported_from": "official PRPose checkpoints"}
    meta = {"lifter_weights": Path(lifter_weights).name, "avg_weights": Path(avg_weights).name if avg_weights else None}
    return Checkpoint(config, lifter_state, avg_state, meta)


@dataclass(frozen=True)
class ImportSettings:
    """``posedeploy import-checkpoint``: the official files, and the posedeploy checkpoint to write."""

    lifter: str  # htnet or mgcn_lw
    lifter_weights: Path  # e.g. ckpt/shhpe_model_htnet.pth
    out: Path
    avg_weights: Path | None = None  # e.g. ckpt/avg_model_htnet.pth
    alpha: float = 0.005  # PRPose's Human3.6M setting


@dataclass(frozen=True)
class ImportResult:
    out: Path
    lifter: str
    avg: str | None
    alpha: float

    def describe(self) -> str:
        return (
            f"wrote {self.out}: {self.lifter}" + (f" + AVG '{self.avg}'" if self.avg else "") + f", alpha {self.alpha}"
        )


def import_checkpoint(settings: ImportSettings) -> ImportResult:
    """Convert the official PRPose checkpoints into a posedeploy checkpoint."""
    from posedeploy.files import refuse_overwrite
    from posedeploy.training.checkpoint import save_checkpoint

    s = settings
    refuse_overwrite(s.out, {"--lifter-weights": s.lifter_weights, "--avg-weights": s.avg_weights})
    ckpt = import_official(s.lifter, s.lifter_weights, s.avg_weights, s.alpha)
    save_checkpoint(s.out, ckpt)
    return ImportResult(Path(s.out), s.lifter, ckpt.config.avg if ckpt.has_avg else None, s.alpha)
