"""Files shipped inside the package: the default checkpoint and its model card."""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent
DEFAULT_CHECKPOINT = ASSETS / "mgcn_lw_mlp_h36m.pt"
MODEL_CARD = ASSETS / "MODEL_CARD.md"


def default_checkpoint() -> Path:
    from posedeploy.errors import CheckpointError

    if not DEFAULT_CHECKPOINT.is_file():
        raise CheckpointError(f"the shipped default checkpoint is missing ({DEFAULT_CHECKPOINT}); pass --checkpoint")
    return DEFAULT_CHECKPOINT
