"""Files shipped inside the package: the checkpoints and their model cards.

Wherever a command takes ``--checkpoint``, a shipped checkpoint can be named instead of a path:
``mgcn_lw`` (the default: MGCN-lw + MLP AVG, fast) or ``htnet`` (HTNet + GCN AVG, weights stored as
int8 to fit the repository's limit for tracked files; loaded as f32).
"""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent
SHIPPED = {"mgcn_lw": "mgcn_lw_mlp_h36m.pt", "htnet": "htnet_gcn_h36m.pt"}
DEFAULT = "mgcn_lw"
DEFAULT_CHECKPOINT = ASSETS / SHIPPED[DEFAULT]
MODEL_CARD = ASSETS / "MODEL_CARD.md"


def model_card(name: str) -> Path:
    """The model card of a shipped checkpoint: MODEL_CARD.md for the default, MODEL_CARD_<name>.md otherwise."""
    return MODEL_CARD if name == DEFAULT else ASSETS / f"MODEL_CARD_{name}.md"


def default_checkpoint() -> Path:
    return resolve_checkpoint(None)


def resolve_checkpoint(checkpoint: str | Path | None) -> Path:
    """A checkpoint path as given, the shipped checkpoint of a name in :data:`SHIPPED`, or the default."""
    from posedeploy.errors import CheckpointError

    if checkpoint is not None and (Path(checkpoint).exists() or str(checkpoint) not in SHIPPED):
        return Path(checkpoint)
    name = DEFAULT if checkpoint is None else str(checkpoint)
    path = ASSETS / SHIPPED[name]
    if not path.is_file():
        raise CheckpointError(
            f"the shipped '{name}' checkpoint is not in this installation ({path}); {model_card(name).name} says how "
            f"to train and install it. Or pass a checkpoint file, or one of the shipped: "
            f"{', '.join(n for n in SHIPPED if (ASSETS / SHIPPED[n]).is_file())}"
        )
    return path
