"""The official PRPose checkpoints convert to posedeploy and compute what the official code computes.

tests/fixtures/official_outputs.npz holds the outputs of the official model definitions
(scripts/official_parity.py) on the deterministic weights of official_weights.py.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from official_weights import random_official_state

from posedeploy.errors import CheckpointError
from posedeploy.skeleton import adjacency
from posedeploy.training.checkpoint import load_checkpoint
from posedeploy.training.official import convert_official, import_official

FIXTURE = np.load(Path(__file__).parent / "fixtures" / "official_outputs.npz")
SEEDS = {"htnet": 11, "mgcn_lw": 12, "avg_gcn": 13, "avg_mlp": 14}
MODELS = {
    "htnet": ("lifter", "htnet"),
    "mgcn_lw": ("lifter", "mgcn_lw"),
    "avg_gcn": ("avg", "gcn"),
    "avg_mlp": ("avg", "mlp"),
}


def official_state(key: str) -> dict:
    keys = [str(k) for k in FIXTURE[f"{key}/keys"]]
    shapes = [[int(v) for v in s.split(",")] if s else [] for s in FIXTURE[f"{key}/shapes"]]
    return random_official_state(keys, shapes, SEEDS[key])


def test_adjacency_matches_the_official_construction():
    np.testing.assert_array_equal(adjacency(), FIXTURE["adjacency"])


@pytest.mark.parametrize("key", list(MODELS))
def test_converted_weights_reproduce_official_outputs(key):
    from posedeploy.training.models import build_model

    kind, name = MODELS[key]
    model = build_model(kind, name)
    model.load_state_dict(convert_official(official_state(key), kind, name, key))
    with torch.no_grad():
        out = model.eval()(torch.from_numpy(FIXTURE["input"])).numpy()
    reference = FIXTURE[f"{key}/output"]
    np.testing.assert_allclose(out, reference, rtol=1e-5, atol=1e-6 * np.abs(reference).max())


def test_import_checkpoint_cli_round_trip(tmp_path):
    from typer.testing import CliRunner

    from posedeploy.cli import app

    torch.save(official_state("htnet"), tmp_path / "shhpe_model_htnet.pth")
    torch.save({f"module.{k}": v for k, v in official_state("avg_gcn").items()}, tmp_path / "avg_model_htnet.pth")
    result = CliRunner().invoke(
        app,
        [
            "import-checkpoint",
            "--lifter",
            "htnet",
            "--lifter-weights",
            str(tmp_path / "shhpe_model_htnet.pth"),
            "--avg-weights",
            str(tmp_path / "avg_model_htnet.pth"),
            "--out",
            str(tmp_path / "htnet.pt"),
        ],
    )
    assert result.exit_code == 0, result.output
    ckpt = load_checkpoint(tmp_path / "htnet.pt")
    assert ckpt.config.lifter == "htnet" and ckpt.config.avg == "gcn" and ckpt.config.alpha == 0.005
    x = torch.from_numpy(FIXTURE["input"])
    with torch.no_grad():
        np.testing.assert_allclose(ckpt.build_lifter()(x).numpy(), FIXTURE["htnet/output"], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(ckpt.build_avg()(x).numpy(), FIXTURE["avg_gcn/output"], rtol=1e-5, atol=1e-5)


def test_weights_of_another_model_are_refused(tmp_path):
    torch.save(official_state("mgcn_lw"), tmp_path / "shhpe_model_mgcn_lw.pth")
    with pytest.raises(CheckpointError, match="is not an official htnet lifter checkpoint"):
        import_official("htnet", tmp_path / "shhpe_model_mgcn_lw.pth", None, 0.005)
    torch.save(official_state("avg_gcn"), tmp_path / "avg_gcn.pth")
    with pytest.raises(CheckpointError, match="is not an official mlp avg checkpoint"):
        import_official("mgcn_lw", tmp_path / "shhpe_model_mgcn_lw.pth", tmp_path / "avg_gcn.pth", 0.005)


def test_bad_official_files(tmp_path, malicious_pickle):
    with pytest.raises(CheckpointError, match="not found"):
        import_official("htnet", tmp_path / "missing.pth", None, 0.005)
    (tmp_path / "broken.pth").write_bytes(b"\x80\x02garbage")
    with pytest.raises(CheckpointError, match="cannot read|refusing"):
        import_official("htnet", tmp_path / "broken.pth", None, 0.005)
    with pytest.raises(CheckpointError, match="refusing to load"):
        import_official("htnet", malicious_pickle, None, 0.005)
    with pytest.raises(CheckpointError, match="alpha"):
        import_official("htnet", tmp_path / "broken.pth", None, 0.0)
