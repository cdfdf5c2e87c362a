"""The default checkpoint shipped in the package: present, small, described, and as good as its card says."""

import json
import re
import subprocess
import sys

import pytest

from posedeploy.assets import DEFAULT_CHECKPOINT, MODEL_CARD
from posedeploy.files import sha256_file
from posedeploy.training.checkpoint import load_checkpoint


def card_value(row_start: str) -> float:
    """The MPJPE of the model-card table row that starts with ``row_start``."""
    for line in MODEL_CARD.read_text().splitlines():
        if line.startswith(f"| {row_start}"):
            return float(line.split("|")[2])
    raise AssertionError(f"no row '{row_start}' in {MODEL_CARD}")


def test_default_checkpoint_is_shipped_small_and_described():
    assert DEFAULT_CHECKPOINT.is_file() and DEFAULT_CHECKPOINT.stat().st_size < 5_000_000
    ckpt = load_checkpoint(DEFAULT_CHECKPOINT)
    assert (ckpt.config.lifter, ckpt.config.avg) == ("mgcn_lw", "mlp")
    assert ckpt.config.keypoints.startswith("h36m/")
    card = MODEL_CARD.read_text()
    assert sha256_file(DEFAULT_CHECKPOINT) in card, "the model card must name the shipped file's hash"
    assert 0 < card_value("best of 200, adaptive") < card_value("lifter alone") < 200


def test_export_defaults_to_the_shipped_checkpoint(tmp_path):
    result = subprocess.run([sys.executable, "-m", "posedeploy.cli", "export", "--out", tmp_path / "a"],
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["checkpoint"]["sha256"] == sha256_file(DEFAULT_CHECKPOINT)


@pytest.mark.data
def test_shipped_model_matches_its_card_on_h36m(h36m_root, tmp_path):
    """The lifter alone on every 20th test frame lands within 2 mm of the card's all-frames figure."""
    ckpt = load_checkpoint(DEFAULT_CHECKPOINT)
    keypoints = ckpt.config.keypoints.split("/")[1]
    result = subprocess.run([sys.executable, "-m", "posedeploy.cli", "eval", "--data", h36m_root, "--keypoints",
                             keypoints, "--hypotheses", "0", "--stride", "20", "--json", tmp_path / "r.json"],
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr
    measured = json.loads((tmp_path / "r.json").read_text())["means"]["single"]["mpjpe"]
    assert measured == pytest.approx(card_value("lifter alone"), abs=2.0)
    assert re.search(r"mean\s+\d+", result.stdout)


def test_shipped_checkpoints_are_taken_by_name(tmp_path, monkeypatch):
    from posedeploy.assets import DEFAULT_CHECKPOINT, SHIPPED, resolve_checkpoint
    from posedeploy.errors import CheckpointError

    assert resolve_checkpoint(None) == DEFAULT_CHECKPOINT == resolve_checkpoint("mgcn_lw")
    assert resolve_checkpoint(tmp_path / "mine.pt") == tmp_path / "mine.pt"  # a path stays a path
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mgcn_lw").write_bytes(b"")
    assert str(resolve_checkpoint("mgcn_lw")) == "mgcn_lw"  # a file of that name wins over the shipped one
    if not (DEFAULT_CHECKPOINT.parent / SHIPPED["htnet"]).is_file():
        with pytest.raises(CheckpointError, match="shipped 'htnet' checkpoint is not in this installation"):
            resolve_checkpoint("htnet")
