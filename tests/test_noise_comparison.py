"""Noise baselines in eval: uniform / alpha rules, alpha sweeps, best-of-S curves, paired differences."""

import json

import numpy as np
import pytest

from posedeploy.data import load_dataset
from posedeploy.data.poseset import PoseSet
from posedeploy.reference.evaluation import evaluate
from posedeploy.reference.noise_comparison import paired_difference
from posedeploy.training.checkpoint import load_checkpoint
from tests.helpers import random_checkpoint
from tests.test_cli import assert_one_line_error, run_cli


def _toy(n_clusters: int = 12, per: int = 10) -> PoseSet:
    n = n_clusters * per
    zeros = np.zeros((n, 17, 3), np.float32)
    return PoseSet(
        keypoints=zeros[..., :2],
        poses_3d=zeros,
        actions=np.array(["a", "b"] * (n // 2)),
        subjects=np.repeat([f"s{i}" for i in range(n_clusters)], per),
        cameras=np.full(n, "c"),
        frames=np.arange(n),
    )


def test_paired_difference_is_the_mean_over_actions_with_a_cluster_bootstrap():
    data = _toy()
    b = np.random.default_rng(0).normal(50, 5, len(data))
    same = paired_difference(b + 2.0, b, data)
    assert same["mean_mm"] == pytest.approx(2.0) and same["se_mm"] == pytest.approx(0.0, abs=1e-9)
    # A per-sequence offset: the standard error sees sequences, not frames.
    per_sequence = np.random.default_rng(1).normal(0, 1, 12)
    d = paired_difference(b + np.repeat(per_sequence, 10), b, data)
    # Each action's mean is a mean of 12 sequence offsets; the two actions are resampled apart.
    expected = per_sequence.std() / np.sqrt(12) / np.sqrt(2)
    assert d["se_mm"] == pytest.approx(expected, rel=0.15) and d["sequences"] == 24  # 12 subjects x 2 actions


def test_best_of_s_curve_falls_with_s_and_runs_share_their_noise(tmp_path):
    ckpt = load_checkpoint(random_checkpoint(tmp_path / "c.pt"))
    data = load_dataset("synthetic", "val", "gt", synthetic_size=40)
    a = evaluate(ckpt, data, hypotheses=8, noise="adaptive", best_of=(1, 2, 4), show_progress=False)
    curve = list(a.extra.best_of_s_mpjpe.values())
    assert list(a.extra.best_of_s_mpjpe) == ["1", "2", "4", "8"]
    assert all(x >= y for x, y in zip(curve, curve[1:], strict=False))
    again = evaluate(ckpt, data, hypotheses=8, noise="adaptive", best_of=(1, 2, 4), show_progress=False)
    np.testing.assert_array_equal(a.per_sample["best"], again.per_sample["best"])
    q = a.extra.sigma
    assert -1 <= q.error_r_overall <= 1 and 0 <= q.clamped_fraction <= 1
    plain = evaluate(ckpt, data, hypotheses=8, noise="alpha", alpha=0.02, show_progress=False)
    assert plain.settings.alpha == 0.02 and plain.extra.mean_sigma == pytest.approx(0.02)


def test_eval_sweeps_noise_rules_and_alphas(tmp_path):
    ckpt = random_checkpoint(tmp_path / "c.pt")
    result = run_cli(
        "eval",
        "--checkpoint",
        ckpt,
        "--split",
        "val",
        "--hypotheses",
        6,
        "--stride",
        100,
        "--noise",
        "adaptive,uniform,alpha",
        "--alpha",
        "0.005,0.02",
        "--best-of",
        "1,3",
        "--json",
        tmp_path / "sweep.json",
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads((tmp_path / "sweep.json").read_text())
    assert [(r["settings"]["noise"], r["settings"]["alpha"]) for r in doc["runs"]] == [
        ("adaptive", 0.005),
        ("uniform", 0.005),
        ("alpha", 0.005),
        ("adaptive", 0.02),
        ("uniform", 0.02),
        ("alpha", 0.02),
    ]
    # 9 pairs (rules at one alpha, alphas of one rule), each compared on best-of-S, energy score, ECE and AUSE
    assert len(doc["paired"]) == 9 * 4 and all(p["se_mm"] >= 0 for p in doc["paired"])
    assert {p["metric"] for p in doc["paired"]} == {"best-of-6 MPJPE", "energy score", "ECE", "AUSE"}
    assert all(r["uncertainty"]["calibration"] == "none" for r in doc["runs"])  # this checkpoint has none
    assert "paired differences" in result.stdout and "best-3" in result.stdout
    assert_one_line_error(run_cli("eval", "--checkpoint", ckpt, "--noise", "gaussian"), "noise must be some of")
    assert_one_line_error(run_cli("eval", "--checkpoint", ckpt, "--alpha", "big"), "alpha must be")
    assert_one_line_error(run_cli("eval", "--checkpoint", ckpt, "--alpha", "-1", "--stride", 100), "alpha must be")


def test_oracle_rules_share_the_noise_draws_and_amount_of_eval(tmp_path):
    import torch

    from posedeploy.errors import InputError
    from posedeploy.reference.noise_oracle import oracle_best_of, placed

    ckpt = load_checkpoint(random_checkpoint(tmp_path / "c.pt"))
    data = load_dataset("synthetic", "val", "noisy", synthetic_size=30)
    truth = load_dataset("synthetic", "val", "gt", synthetic_size=30)
    result = oracle_best_of(ckpt, data, truth, hypotheses=12, alpha=0.02, show_progress=False)
    for rule in ("adaptive", "uniform"):  # the same draws as eval: the same per-sample results
        ref = evaluate(ckpt, data, hypotheses=12, noise=rule, alpha=0.02, show_progress=False)
        np.testing.assert_allclose(result["best"][rule], ref.per_sample["best"], atol=1e-3)
    sigmas = list(result["mean_sigma"].values())  # every rule spends the same noise over the data set
    assert len(sigmas) == 7 and sigmas == pytest.approx([sigmas[0]] * 7, rel=1e-5)
    for rule in ("oracle-3d", "oracle-2d", "oracle-amount", "perfect-avg", "perfect-clamped"):
        assert not np.array_equal(result["best"][rule], result["best"]["uniform"]), rule
    some = oracle_best_of(
        ckpt, data, truth, hypotheses=12, alpha=0.02, rules=("uniform", "perfect-avg"), show_progress=False
    )
    assert list(some["best"]) == ["uniform", "perfect-avg"]  # the same draws whatever else runs
    np.testing.assert_array_equal(some["best"]["perfect-avg"], result["best"]["perfect-avg"])
    with pytest.raises(InputError, match="oracle rules"):
        oracle_best_of(ckpt, data, truth, hypotheses=4, rules=("psychic",), show_progress=False)

    weights, total = torch.tensor([[[1.0, 3.0], [0.0, 4.0]]]), torch.tensor([[[2.0]]])
    sigma = placed(weights, total)
    assert float(sigma.mean()) == pytest.approx(2.0) and float(sigma[0, 0, 1] / sigma[0, 0, 0]) == pytest.approx(3.0)
    with pytest.raises(InputError, match="same frames"):
        oracle_best_of(ckpt, data, truth.every(2), hypotheses=4, show_progress=False)
