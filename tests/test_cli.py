"""The command line end to end: outputs under their contract names, one-line errors, no partial files."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from posedeploy.training.checkpoint import Checkpoint, PipelineConfig, load_checkpoint, save_checkpoint
from posedeploy.training.models import build_model


def run_cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "posedeploy.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600
    )


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """An untrained MGCN-lw + MLP checkpoint, and the same lifter alone."""
    root = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    config = PipelineConfig.for_lifter("mgcn_lw", keypoints="synthetic/gt")
    lifter = build_model("lifter", "mgcn_lw").state_dict()
    save_checkpoint(root / "lifter.pt", Checkpoint(config, lifter))
    full = config.with_avg()
    save_checkpoint(root / "full.pt", Checkpoint(full, lifter, build_model("avg", "mlp").state_dict()))
    return root


def assert_one_line_error(result, pattern):
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    assert pattern in lines[0], lines[0]


def test_help_lists_every_command():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("train", "import-checkpoint", "predict", "eval", "export", "parity", "deploy"):
        assert command in result.stdout
    sub = run_cli("train", "--help")
    assert "lifter" in sub.stdout and "avg" in sub.stdout


def test_predict_writes_the_contract_outputs(checkpoints, tmp_path):
    kp = np.random.default_rng(0).normal(scale=0.3, size=(3, 17, 2)).astype(np.float32)
    np.save(tmp_path / "kp.npy", kp)
    out = tmp_path / "out.npz"
    result = run_cli(
        "predict",
        "--checkpoint",
        checkpoints / "full.pt",
        "--keypoints",
        tmp_path / "kp.npy",
        "--hypotheses",
        7,
        "--seed",
        3,
        "--out",
        out,
    )
    assert result.returncode == 0, result.stderr
    with np.load(out) as f:
        assert sorted(f.files) == ["hypotheses", "pose", "sigma", "spread"]
        assert f["hypotheses"].shape == (3, 7, 17, 3) and f["sigma"].shape == (3, 2, 17)
        assert f["pose"].shape == (3, 17, 3) and f["spread"].shape == (3, 17)
        drawn = f["hypotheses"]
    noise = np.random.default_rng(3).standard_normal((3, 7, 2, 17, 2), dtype=np.float32)
    np.save(tmp_path / "noise.npy", noise)
    result = run_cli(
        "predict",
        "--checkpoint",
        checkpoints / "full.pt",
        "--keypoints",
        tmp_path / "kp.npy",
        "--noise",
        tmp_path / "noise.npy",
        "--out",
        out,
    )
    assert result.returncode == 0, result.stderr
    with np.load(out) as f:
        np.testing.assert_array_equal(f["hypotheses"], drawn)  # the seed draws exactly that noise


@pytest.mark.parametrize(
    "make, args, message",
    [
        (lambda p: np.save(p, np.full((2, 17, 2), np.nan, np.float32)), [], "NaN or inf"),
        (lambda p: np.save(p, np.zeros((2, 16, 2), np.float32)), [], "(..., 17, 2)"),
        (lambda p: p.write_text("not an array"), [], "cannot read keypoints"),
        (
            lambda p: np.save(p, np.zeros((2, 17, 2), np.float32)),
            ["--hypotheses", "0"],
            "hypotheses must be a whole number >= 1",
        ),
    ],
)
def test_predict_bad_input_one_line_and_no_output(checkpoints, tmp_path, make, args, message):
    make(tmp_path / "kp.npy")
    out = tmp_path / "out.npz"
    result = run_cli(
        "predict", "--checkpoint", checkpoints / "full.pt", "--keypoints", tmp_path / "kp.npy", "--out", out, *args
    )
    assert_one_line_error(result, message)
    assert not out.exists() and not list(tmp_path.glob(".*partial"))


def test_missing_checkpoint_and_lifter_only_checkpoint(checkpoints, tmp_path):
    np.save(tmp_path / "kp.npy", np.zeros((1, 17, 2), np.float32))
    result = run_cli(
        "predict", "--checkpoint", tmp_path / "nope.pt", "--keypoints", tmp_path / "kp.npy", "--out", tmp_path / "o.npz"
    )
    assert_one_line_error(result, "checkpoint not found")
    result = run_cli(
        "predict",
        "--checkpoint",
        checkpoints / "lifter.pt",
        "--keypoints",
        tmp_path / "kp.npy",
        "--out",
        tmp_path / "o.npz",
    )
    assert_one_line_error(result, "holds only a lifter")


def test_eval_prints_a_table_and_writes_json(checkpoints, tmp_path):
    result = run_cli(
        "eval",
        "--checkpoint",
        checkpoints / "full.pt",
        "--data",
        "synthetic",
        "--hypotheses",
        4,
        "--stride",
        25,
        "--json",
        tmp_path / "report.json",
    )
    assert result.returncode == 0, result.stderr
    assert "best-of-4" in result.stdout and "mean" in result.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert set(report["means"]) == {"single", "best", "mean", "median", "jpma"}
    assert report["means"]["best"]["mpjpe"] <= report["means"]["single"]["mpjpe"] + 50
    assert report["settings"]["samples"] == 80 and report["settings"]["hypotheses"] == 4
    lifter_only = run_cli("eval", "--checkpoint", checkpoints / "lifter.pt", "--hypotheses", 0, "--stride", 25)
    assert lifter_only.returncode == 0 and "lifter alone" in lifter_only.stdout
    bad = run_cli("eval", "--checkpoint", checkpoints / "full.pt", "--hypotheses", 2, "--noise", "gaussian")
    assert_one_line_error(bad, "noise must be some of")


def test_eval_bad_data(checkpoints, tmp_path, fake_h36m):
    assert_one_line_error(
        run_cli("eval", "--checkpoint", checkpoints / "full.pt", "--data", tmp_path / "nowhere"),
        "Human3.6M folder not found",
    )
    assert_one_line_error(
        run_cli("eval", "--checkpoint", checkpoints / "full.pt", "--data", fake_h36m, "--actions", "Juggling"),
        "unknown Human3.6M action",
    )
    ok = run_cli(
        "eval", "--checkpoint", checkpoints / "full.pt", "--data", fake_h36m, "--keypoints", "sh", "--hypotheses", 2
    )
    assert ok.returncode == 0, ok.stderr
    assert "Walking" in ok.stdout and "Photo" in ok.stdout


def test_export_then_parity(checkpoints, tmp_path):
    out = tmp_path / "artifacts"
    result = run_cli("export", "--checkpoint", checkpoints / "full.pt", "--out", out, "--fp16", "--format", "triton")
    assert result.returncode == 0, result.stderr
    assert "export: done" in result.stderr  # progress
    assert (out / "pipeline.fp16.onnx").is_file() and (
        out / "triton" / "posedeploy_pipeline" / "config.pbtxt"
    ).is_file()
    ok = run_cli(
        "parity",
        "--artifacts",
        out,
        "--checkpoint",
        checkpoints / "full.pt",
        "--data",
        "synthetic",
        "--samples",
        8,
        "--hypotheses",
        20,
        "--json",
        tmp_path / "parity.json",
    )
    assert ok.returncode == 0, ok.stderr
    assert "PASS" in ok.stdout and json.loads((tmp_path / "parity.json").read_text())["passed"] is True
    strict = run_cli(
        "parity",
        "--artifacts",
        out,
        "--checkpoint",
        checkpoints / "full.pt",
        "--data",
        "synthetic",
        "--samples",
        8,
        "--hypotheses",
        20,
        "--precision",
        "fp16",
        "--tolerance",
        0,
    )
    assert strict.returncode == 1 and "FAIL" in strict.stdout


def test_export_errors(checkpoints, tmp_path):
    assert_one_line_error(
        run_cli("export", "--checkpoint", checkpoints / "lifter.pt", "--out", tmp_path / "a"), "holds only a lifter"
    )
    assert not (tmp_path / "a" / "manifest.json").exists()
    assert_one_line_error(
        run_cli("export", "--checkpoint", checkpoints / "full.pt", "--out", tmp_path / "b", "--format", "tflite"),
        "export format",
    )
    assert_one_line_error(
        run_cli(
            "parity", "--artifacts", tmp_path / "none", "--checkpoint", checkpoints / "full.pt", "--data", "synthetic"
        ),
        "artifact directory not found",
    )


def test_an_output_is_never_written_over_an_input(checkpoints, tmp_path):
    kp = tmp_path / "kp.npy"
    np.save(kp, np.zeros((2, 17, 2), np.float32))
    before = kp.read_bytes()
    assert_one_line_error(
        run_cli("predict", "--checkpoint", checkpoints / "full.pt", "--keypoints", kp, "--out", kp),
        "is the --keypoints input itself",
    )
    assert_one_line_error(
        run_cli("run", "--input", kp, "--out", kp, "--artifacts", tmp_path), "is the --input input itself"
    )
    assert kp.read_bytes() == before
    weights = tmp_path / "official.pth"
    weights.write_bytes(b"weights")
    result = run_cli("import-checkpoint", "--lifter", "mgcn_lw", "--lifter-weights", weights, "--out", weights)
    assert_one_line_error(result, "is the --lifter-weights input itself")
    assert weights.read_bytes() == b"weights"
    result = run_cli("train", "avg", "--checkpoint", checkpoints / "lifter.pt", "--out", checkpoints)
    assert_one_line_error(result, "is the folder of the lifter checkpoint")
    assert load_checkpoint_ok(checkpoints / "lifter.pt")


def load_checkpoint_ok(path) -> bool:
    from posedeploy.training.checkpoint import load_checkpoint

    return load_checkpoint(path).config.lifter == "mgcn_lw"


def test_usage_errors_are_one_line_with_exit_code_2():
    for args, text in (
        (("eval", "--nope"), "No such option: --nope"),
        (("deploy", "--hypotheses", "x"), "'--hypotheses'"),
    ):
        result = run_cli(*args)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], (
            result.stderr
        )
        assert f"{args[0]} --help)" in lines[0]
    assert run_cli("--help").returncode == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (("eval", "--seed", "-1"), "'--seed'"),
        (("eval", "--device", "tpu9", "--hypotheses", "0"), "device must be cpu, cuda or cuda:N"),
        (("run", "--input", "x.npy", "--out", "y.npz", "--max-missing", "-1"), "'--max-missing'"),
        (("train", "lifter", "--lr", "0", "--epochs", "1"), "learning rate must be > 0"),
        (("train", "lifter", "--ema", "1", "--epochs", "1"), "weight-average decay (--ema) must be between 0 and 1"),
        (
            ("train", "lifter", "--init", "htnet", "--epochs", "1"),
            "holds a 'htnet' lifter; this run trains 'mgcn_lw' (pass --lifter htnet)",
        ),
        (
            ("train", "lifter", "--dropout", "0.2", "--lifter", "htnet"),
            "--dropout applies to the graph-convolution lifters (mgcn_lw)",
        ),
        (("train", "lifter", "--dropout", "1"), "dropout must be >= 0 and < 1, got 1.0"),
        (("train", "lifter", "--input-noise", "nan"), "input noise must be >= 0 and < 1"),
        (
            ("train", "lifter", "--refit", "--patience", "3"),
            "--refit trains on every training subject for a fixed number of epochs; it takes no --patience",
        ),
        (
            ("train", "avg", "--checkpoint", "mgcn_lw", "--refit", "--patience", "3"),
            "--refit trains on every training subject for a fixed number of epochs; it takes no --patience",
        ),
    ],
)
def test_bad_option_values_are_refused_in_one_line(args, message, tmp_path):
    result = run_cli(*args, cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode in (1, 2) and len(lines) == 1 and message in lines[0], result.stderr


def test_an_avg_refit_needs_a_refitted_lifter(tmp_path):
    # Both shipped checkpoints are refits, so the lifter here is one trained without --refit.
    from helpers import random_checkpoint

    lifter = random_checkpoint(tmp_path / "lifter.pt", with_avg=False)
    result = run_cli("train", "avg", "--checkpoint", lifter, "--refit", cwd=tmp_path)
    assert_one_line_error(result, "--refit is for a lifter trained with --refit;")
    assert not (tmp_path / "runs").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_device_without_cuda_is_one_line(tmp_path):
    assert_one_line_error(run_cli("eval", "--device", "cuda", "--hypotheses", "0"), "sees no CUDA GPU")


def test_oversized_requests_are_refused_before_allocating(checkpoints, tmp_path):
    kp = tmp_path / "kp.npy"
    np.save(kp, np.zeros((100_000, 17, 2), np.float32))
    result = run_cli("predict", "--checkpoint", checkpoints / "full.pt", "--keypoints", kp, "--out", tmp_path / "o.npz")
    assert_one_line_error(result, "keeping 100,000 x 200 hypotheses needs 3,891 MB")
    assert "batches of at most 52,634 poses" in result.stderr and not (tmp_path / "o.npz").exists()
    result = run_cli("bench", "--batch", "100000", "--hypotheses", "200", "--artifacts", tmp_path)
    assert_one_line_error(result, "drawing noise for 100,000 x 200 hypotheses")
    result = run_cli("eval", "--checkpoint", checkpoints / "full.pt", "--hypotheses", 10**9, "--stride", 200)
    assert_one_line_error(result, "S=1,000,000,000 hypotheses per pose is more than the 100,000")


def test_predict_refuses_pixels_taken_for_normalised_coordinates(checkpoints, tmp_path):
    px = tmp_path / "px.npy"
    np.save(px, np.random.default_rng(0).uniform(200, 800, (2, 17, 2)).astype(np.float32))
    result = run_cli("predict", "--checkpoint", checkpoints / "full.pt", "--keypoints", px, "--out", tmp_path / "o.npz")
    assert_one_line_error(result, "keypoints look like pixels")
    result = run_cli(
        "predict",
        "--checkpoint",
        checkpoints / "full.pt",
        "--keypoints",
        px,
        "--out",
        tmp_path / "o.npz",
        "--image-size",
        1000,
        1000,
        "--hypotheses",
        3,
    )
    assert result.returncode == 0, result.stderr
    assert np.load(tmp_path / "o.npz")["hypotheses"].shape == (2, 3, 17, 3)


def test_an_init_run_resumes_without_repeating_init_and_refuses_another(tmp_path):
    small = ("train", "lifter", "--data", "synthetic", "--stride", "20", "--val-stride", "20")
    for args in (
        (*small, "--epochs", "1", "--out", "a"),
        (*small, "--epochs", "1", "--out", "c", "--seed", "1"),
        (*small, "--epochs", "1", "--out", "b", "--init", "a/best.pt"),
        (*small, "--epochs", "2", "--out", "b", "--resume"),
    ):
        result = run_cli(*args, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    state = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    assert state["epoch"] == 2 and state["identity"]["init"]["path"] == "a/best.pt"
    assert_one_line_error(
        run_cli(*small, "--epochs", "3", "--out", "b", "--resume", "--init", "c/best.pt", cwd=tmp_path),
        "the run in b was started from a/best.pt, not from --init c/best.pt",
    )
    assert_one_line_error(
        run_cli(*small, "--epochs", "3", "--out", "c", "--resume", "--init", "a/best.pt", cwd=tmp_path),
        "the run in c was not started from a checkpoint, not from --init a/best.pt",
    )


def test_an_avg_model_and_an_evaluation_on_val_are_told_a_refitted_lifter_saw_val(tmp_path):
    small = ("--data", "synthetic", "--stride", "50", "--val-stride", "20", "--epochs", "1")
    result = run_cli("train", "lifter", *small, "--refit", "--out", "lifter", cwd=tmp_path)
    assert result.returncode == 0 and "(in-sample)" in result.stderr, result.stderr
    assert "(best" not in result.stderr and " *" not in result.stderr, "a refit keeps every epoch: it has no best"
    assert "last (refit; in-sample) mpjpe_mm" in result.stdout
    result = run_cli("train", "avg", "--checkpoint", "lifter/best.pt", *small, "--out", "avg", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "was refitted with 'val' among its training data" in result.stderr
    result = run_cli(
        "train",
        "avg",
        "--checkpoint",
        "lifter/best.pt",
        *small[:-1],
        "2",
        "--refit",
        "--out",
        "avg_refit",
        cwd=tmp_path,
    )
    assert result.returncode == 0 and "was refitted" not in result.stderr, result.stderr
    assert "last (refit; in-sample) mse" in result.stdout and "at epoch 2:" in result.stdout
    joined, alone = (
        torch.load(tmp_path / run / "last.pt", weights_only=True)["identity"] for run in ("avg_refit", "avg")
    )
    assert joined["refit"] is True and "refit" not in alone and joined["samples"] > alone["samples"]
    assert load_checkpoint(tmp_path / "avg_refit" / "best.pt").config.training["avg"]["refit"] is True
    evaluate = ("eval", "--checkpoint", "avg/best.pt", "--data", "synthetic", "--stride", "50", "--hypotheses", "0")
    on_val, on_test = (run_cli(*evaluate, "--split", split, cwd=tmp_path) for split in ("val", "test"))
    assert on_val.returncode == 0 and "these 'val' numbers are in-sample" in on_val.stderr, on_val.stderr
    assert on_test.returncode == 0 and "in-sample" not in on_test.stderr, on_test.stderr
