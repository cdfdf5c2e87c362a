"""Bad option values and files, command by command: one line on stderr and exit code 1 before any
work, never a traceback, never exit 0 on a request that cannot mean anything, nothing half-written.
The commands run in this process (posedeploy.cli.main), so each case costs no interpreter start."""

import json
import sys

import numpy as np
import pytest
import torch
from conftest import have

from posedeploy.cli import main


@pytest.fixture
def cli(monkeypatch, capsys):
    def run(*args):
        monkeypatch.setattr(sys, "argv", ["posedeploy", *map(str, args)])
        with pytest.raises(SystemExit) as exited:
            main()
        out, err = capsys.readouterr()
        return exited.value.code, out, err

    return run


def refused(result, fragment, notes=0):
    """Exit 1 with one error line (after ``notes`` lines saying what was skipped, where there are some)."""
    code, _, err = result
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == notes + 1 and lines[-1].startswith("error: ") and "Traceback" not in err, err
    assert fragment in lines[-1], lines[-1]


@pytest.fixture(scope="module")
def artifacts(exported):
    return exported


def test_training_and_evaluation_values(cli, tmp_path):
    refused(cli("train", "lifter", "--batch-size", "0", "--out", tmp_path / "run"), "batch size must be >= 1, got 0")
    refused(
        cli("train", "lifter", "--schedule", "", "--out", tmp_path / "run"), "learning-rate schedule must be one of"
    )
    assert not (tmp_path / "run").exists()
    for alpha in ("1e308", "0", "-0.01", "nan", "inf"):
        refused(cli("eval", "--alpha", alpha, "--hypotheses", "4"), "alpha must be a number in (0, 1]")
    refused(cli("eval", "--alpha", ",".join(str(0.001 * i) for i in range(1, 18))), "at most 16 different values")
    refused(cli("eval", "--alpha", "0.01,0.01"), "at most 16 different values, got 2 (1 different)")
    for best_of in ("0", "-1", "500", "1,2,5"):
        refused(
            cli("eval", "--hypotheses", "4", "--best-of", best_of), "best-of values must be whole numbers from 1 to S=4"
        )
    refused(cli("eval", "--noise", ",".join(["adaptive"] * 5000)), "each once")


def test_run_values(cli, artifacts, tmp_path):
    px = np.random.default_rng(0).uniform(200, 800, (5, 17, 2)).astype(np.float32)
    np.save(tmp_path / "px.npy", px)
    np.save(tmp_path / "normalised.npy", px / 1000 * 2 - 1)
    (tmp_path / "short.json").write_text(json.dumps({"f": [1000], "c": [500, 500]}))
    (tmp_path / "inf.json").write_text('{"f": [1e400, 1000], "c": [500, 500]}')
    (tmp_path / "nan.json").write_text('{"f": [1000, 1000], "c": [NaN, 500]}')
    (tmp_path / "width.json").write_text('{"f": [1000, 1000], "c": [500, 500], "width": "wide"}')
    out = tmp_path / "poses.json"
    base = ["run", "--input", tmp_path / "px.npy", "--out", out, "--artifacts", artifacts, "--image-size", 1000, 1000]
    refused(cli(*base, "--aggregate", "jpma", "--camera", tmp_path / "short.json"), "two numbers each")
    refused(cli(*base, "--aggregate", "jpma", "--camera", tmp_path / "inf.json"), "must be finite numbers")
    refused(cli(*base, "--aggregate", "jpma", "--camera", tmp_path / "nan.json"), "must be finite numbers")
    refused(cli(*base, "--aggregate", "jpma", "--camera", tmp_path / "width.json"), "expected JSON with f")
    refused(cli(*base[:2], tmp_path / "normalised.npy", *base[3:]), "they look normalised already")
    refused(cli(*base, "--plot-every", "0"), "plot interval must be")
    if have("matplotlib"):
        refused(cli(*base, "--plot", tmp_path / "pictures", "--plot-every", "0"), "plot interval must be")
    assert not out.exists() and not (tmp_path / "pictures").exists()


def test_detector_files_with_no_one_to_lift(cli, artifacts, tmp_path):
    (tmp_path / "empty.json").write_text(json.dumps({"instance_info": []}))
    (tmp_path / "nobody.json").write_text(json.dumps({"instance_info": [{"frame_id": 1, "instances": []}]}))
    (tmp_path / "unseen.json").write_text(json.dumps([{"image_id": 1, "keypoints": [0.0] * 51, "score": 0.9}]))
    out = tmp_path / "poses.json"
    for name, message, notes in (
        ("empty", "no person was detected", 0),
        ("nobody", "no person was detected", 0),
        ("unseen", "1 detection(s), none with a joint seen", 0),
    ):
        refused(
            cli(
                "run",
                "--input",
                tmp_path / f"{name}.json",
                "--out",
                out,
                "--artifacts",
                artifacts,
                "--image-size",
                1000,
                1000,
            ),
            message,
            notes,
        )
    assert not out.exists()


def test_bench_build_and_parity_values(cli, artifacts, tmp_path):
    if not torch.cuda.is_available():
        refused(cli("bench", "--artifacts", artifacts, "--backend", "torch", "--device", "cuda"), "sees no CUDA GPU")
    for fps in ("0", "-30", "inf", "nan"):
        refused(cli("bench", "--artifacts", artifacts, "--stream-fps", fps), "stream frame rate must be")
    refused(cli("build", "--artifacts", artifacts, "--dla-core", "-1"), "DLA core must be 0-1")
    if have("tensorrt_rtx"):
        refused(
            cli("build", "--artifacts", artifacts, "--dla-core", "0", "--compute-capability", "8.9"),
            "TensorRT for RTX has no DLA support",
        )
    refused(cli("parity", "--artifacts", artifacts, "--hypotheses", "1000000000"), "more than the 100,000")
    refused(
        cli("parity", "--artifacts", artifacts, "--samples", "5000", "--hypotheses", "100000"), "over the memory budget"
    )


def test_predict_with_noise_that_is_not_standard_normal(cli, tmp_path):
    np.save(tmp_path / "kp.npy", np.zeros((2, 17, 2), np.float32))
    for value in (1e300, 1e30, -5e3):
        np.save(tmp_path / "noise.npy", np.full((2, 3, 2, 17, 2), value))
        refused(
            cli(
                "predict",
                "--keypoints",
                tmp_path / "kp.npy",
                "--noise",
                tmp_path / "noise.npy",
                "--out",
                tmp_path / "out.npz",
            ),
            "noise must be standard normal draws",
        )
    assert not (tmp_path / "out.npz").exists()


def test_non_finite_reference_results_are_refused():
    from posedeploy.errors import InputError
    from posedeploy.reference.sampler import SamplerResult

    result = SamplerResult(np.ones((3, 2, 17)), np.ones((3, 4, 17, 3)), np.ones((3, 17, 3)), np.ones((3, 17)))
    result.check_finite()
    result.hypotheses[1, 2, 5, 0] = np.nan
    with pytest.raises(InputError, match="non-finite values for 1 of 3 poses \\(first at index 1\\)"):
        result.check_finite()


def test_import_checkpoint_of_integer_weights(cli, tmp_path):
    from posedeploy.training.models import build_model

    state = {
        k: v.to(torch.int64) if v.is_floating_point() else v
        for k, v in build_model("lifter", "mgcn_lw").state_dict().items()
    }
    torch.save({k.removeprefix("gcn."): v for k, v in state.items()}, tmp_path / "ints.pth")
    refused(
        cli(
            "import-checkpoint",
            "--lifter",
            "mgcn_lw",
            "--lifter-weights",
            tmp_path / "ints.pth",
            "--out",
            tmp_path / "c.pt",
        ),
        "holds int64, expected float32",
    )
    assert not (tmp_path / "c.pt").exists()
