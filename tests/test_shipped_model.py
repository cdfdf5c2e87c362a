"""The checkpoints shipped in the package: present, small, described, and as good as their cards say."""

import json
import re
import subprocess
import sys

import pytest

from posedeploy.assets import ASSETS, DEFAULT_CHECKPOINT, SHIPPED, model_card
from posedeploy.files import sha256_file
from posedeploy.training.checkpoint import load_checkpoint

# name -> (lifter, AVG model, how its weights are stored)
EXPECTED = {"mgcn_lw": ("mgcn_lw", "mlp", "f32"), "htnet": ("htnet", "gcn", "int8")}
MAX_TRACKED_BYTES = 5 * 2**20  # the limit for files kept in git


def shipped(name: str):
    return ASSETS / SHIPPED[name]


def card_value(name: str, row_start: str) -> float:
    """The MPJPE of the model-card table row that starts with ``row_start``."""
    card = model_card(name)
    for line in card.read_text().splitlines():
        if line.startswith(f"| {row_start}"):
            return float(line.split("|")[2])
    raise AssertionError(f"no row '{row_start}' in {card}")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shipped_checkpoint_is_small_and_described(name):
    assert set(EXPECTED) == set(SHIPPED)
    path = shipped(name)
    lifter, avg, weights = EXPECTED[name]
    assert path.is_file() and path.stat().st_size <= MAX_TRACKED_BYTES
    ckpt = load_checkpoint(path)
    assert (ckpt.config.lifter, ckpt.config.avg, ckpt.weights) == (lifter, avg, weights)
    assert ckpt.config.keypoints.startswith("h36m/")
    card = model_card(name).read_text()
    assert sha256_file(path) in card, "the model card must name the shipped file's hash"
    assert 0 < card_value(name, "best of 200, adaptive") < card_value(name, "lifter alone") < 200


def test_export_defaults_to_the_shipped_checkpoint(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "posedeploy.cli", "export", "--out", tmp_path / "a"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["checkpoint"]["sha256"] == sha256_file(DEFAULT_CHECKPOINT)


@pytest.mark.data
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shipped_model_matches_its_card_on_h36m(name, h36m_root, tmp_path):
    """The lifter alone on every 20th test frame, the checkpoint taken by name, lands within 2 mm of the card."""
    ckpt = load_checkpoint(shipped(name))
    keypoints = ckpt.config.keypoints.split("/")[1]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "posedeploy.cli",
            "eval",
            "--checkpoint",
            name,
            "--data",
            h36m_root,
            "--keypoints",
            keypoints,
            "--hypotheses",
            "0",
            "--stride",
            "20",
            "--json",
            tmp_path / "r.json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    measured = json.loads((tmp_path / "r.json").read_text())["means"]["single"]["mpjpe"]
    assert measured == pytest.approx(card_value(name, "lifter alone"), abs=2.0)
    assert re.search(r"mean\s+\d+", result.stdout)


def test_shipped_checkpoints_are_taken_by_name(tmp_path, monkeypatch):
    from posedeploy.assets import DEFAULT_CHECKPOINT, SHIPPED, resolve_checkpoint
    from posedeploy.errors import CheckpointError

    assert resolve_checkpoint(None) == DEFAULT_CHECKPOINT == resolve_checkpoint("mgcn_lw")
    assert resolve_checkpoint("htnet") == ASSETS / "htnet_gcn_h36m.pt"
    assert resolve_checkpoint(tmp_path / "mine.pt") == tmp_path / "mine.pt"  # a path stays a path
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mgcn_lw").write_bytes(b"")
    assert str(resolve_checkpoint("mgcn_lw")) == "mgcn_lw"  # a file of that name wins over the shipped one
    monkeypatch.setitem(SHIPPED, "htnet", "deleted_by_a_packager.pt")
    with pytest.raises(CheckpointError, match="shipped 'htnet' checkpoint is not in this installation"):
        resolve_checkpoint("htnet")
