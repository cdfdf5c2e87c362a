"""scripts/ship_checkpoint.py: the model card says how the shipped model was fitted (held-out S8, or a
refit on S1-S8) and holds the numbers of the evaluation reports it was given."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

import posedeploy.assets
from posedeploy.training.checkpoint import Checkpoint, PipelineConfig, load_checkpoint, save_checkpoint
from posedeploy.training.models import build_model
from tests.test_cli import run_cli


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """Two checkpoints (an untrained MGCN-lw + MLP, recorded as held-out-selected or refitted) and the
    eval reports ship_checkpoint reads, measured on the synthetic data."""
    root = tmp_path_factory.mktemp("ship")
    torch.manual_seed(0)
    config = PipelineConfig.for_lifter("mgcn_lw", keypoints="synthetic/gt").with_avg()
    weights = build_model("lifter", "mgcn_lw").state_dict(), build_model("avg", "mlp").state_dict()
    avg = {"pseudo_label_mean_m": 0.05, "pseudo_labels": {"from": "the lifter on its own training data"}, "epoch": 3}
    for name, refit in (("selected", False), ("refit", True)):
        extra = {"refit": True} if refit else {}
        config.training = {"stage": "lifter", "epoch": 7, "mpjpe_mm": 63.5, **extra, "avg": {**avg, **extra}}
        save_checkpoint(root / f"{name}.pt", Checkpoint(config, *weights))
    evaluate = ("eval", "--checkpoint", "selected.pt", "--data", "synthetic", "--stride", "40")
    for args in (
        ("--hypotheses", "0", "--json", "single.json"),
        ("--noise", "adaptive,uniform,alpha", "--alpha", "0.01", "--json", "s200.json"),
    ):
        result = run_cli(*evaluate, *args, cwd=root)
        assert result.returncode == 0, result.stderr
    (root / "commands.txt").write_text("posedeploy train lifter --the-commands-run\n")
    return root


def ship(root: Path, checkpoint: str, monkeypatch) -> str:
    assets = root / f"assets_{checkpoint}"
    assets.mkdir()
    monkeypatch.setattr(posedeploy.assets, "ASSETS", assets)
    spec = importlib.util.spec_from_file_location(
        "ship_checkpoint", Path(__file__).parents[1] / "scripts" / "ship_checkpoint.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "ship_checkpoint.py",
            "--name",
            "htnet",
            "--checkpoint",
            str(root / checkpoint),
            "--alpha",
            "0.01",
            "--single",
            str(root / "single.json"),
            "--noise",
            str(root / "s200.json"),
            "--keypoints",
            "gt",
            "--train-commands",
            str(root / "commands.txt"),
        ],
    )
    script.main()
    assert load_checkpoint(assets / "htnet_gcn_h36m.pt").config.alpha == 0.01
    return (assets / "MODEL_CARD_htnet.md").read_text()


def test_a_model_card_says_the_epoch_was_chosen_on_the_held_out_subject(reports, monkeypatch):
    card = ship(reports, "selected.pt", monkeypatch)
    assert "Trained on subjects S1 S5 S6 S7 (all four cameras" in card and "S8" not in card.split("Trained on")[1][:40]
    assert "best epoch on S8 kept (epoch 7, S8 MPJPE 63.50 mm)" in card and "refit" not in card
    assert "posedeploy train lifter --the-commands-run" in card
    assert "dataset of 4 subjects" in card


def test_a_refitted_model_card_says_s8_was_trained_on_and_its_error_is_in_sample(reports, monkeypatch):
    card = ship(reports, "refit.pt", monkeypatch)
    assert "Trained on subjects S1 S5 S6 S7 S8 (all four cameras, all actions; a refit)" in card
    assert "the last epoch kept (a refit: epoch 7; its S8 MPJPE, 63.50 mm, is in-sample)" in card
    assert "MSE loss, the last epoch kept." in card and "best epoch on S8" not in card
    assert "dataset of 5 subjects" in card
