"""A runtime-only install (``pip install "posedeploy[cpu]"``: numpy and ONNX Runtime, no torch, onnx
or matplotlib): the runtime's commands work, and every other command says in one line what it needs
and which extra installs it, before doing any work.

Here the packages are hidden from a child process (tests/without_packages.py); CI also runs this file
in a real runtime-only environment, where nothing needs hiding.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HIDDEN = "torch,onnx,matplotlib"
SCRIPT = Path(__file__).with_name("without_packages.py")


def posedeploy(*args, cwd=None):
    return subprocess.run(
        [sys.executable, str(SCRIPT), HIDDEN, "--", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def one_line_error(result, *fragments):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-2000:]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    "args, needs, extra",
    [
        (["eval"], "posedeploy eval needs the 'torch' package", "posedeploy[train]"),
        (["train", "lifter"], "posedeploy train lifter needs the 'torch'", "posedeploy[train]"),
        (["train", "avg", "--checkpoint", "lifter.pt"], "posedeploy train avg needs the 'torch'", "posedeploy[train]"),
        (
            ["predict", "--keypoints", "kp.npy", "--out", "out.npz"],
            "posedeploy predict needs the 'torch'",
            "posedeploy[train]",
        ),
        (
            ["import-checkpoint", "--lifter", "htnet", "--lifter-weights", "w.pth", "--out", "c.pt"],
            "posedeploy import-checkpoint needs the 'torch'",
            "posedeploy[train]",
        ),
        (["parity"], "posedeploy parity needs the 'torch'", "posedeploy[train]"),
        (["export"], "posedeploy export needs the 'torch' and 'onnx' packages", "posedeploy[export]"),
        (["deploy"], "posedeploy deploy needs the 'torch' and 'onnx' packages", "posedeploy[export]"),
        (["bench", "--backend", "onnxruntime"], "bench without --artifacts", "posedeploy[export]"),
    ],
)
def test_each_command_says_what_it_needs(tmp_path, args, needs, extra):
    result = posedeploy(*args, cwd=tmp_path)
    one_line_error(result, needs, extra)
    assert list(tmp_path.iterdir()) == []  # refused before any work: nothing written


def test_the_runtime_commands_work_without_torch(exported, tmp_path):
    keypoints = np.random.default_rng(0).normal(scale=0.3, size=(4, 17, 2)).astype(np.float32)
    np.save(tmp_path / "kp.npy", keypoints)
    done = posedeploy(
        "run",
        "--input",
        tmp_path / "kp.npy",
        "--out",
        tmp_path / "poses.json",
        "--artifacts",
        exported,
        "--hypotheses",
        "10",
        "--backend",
        "onnxruntime",
    )
    assert done.returncode == 0 and (tmp_path / "poses.json").is_file(), done.stderr[-2000:]
    bench = posedeploy(
        "bench",
        "--artifacts",
        exported,
        "--backend",
        "torch,onnxruntime",
        "--batch",
        "1",
        "--hypotheses",
        "10",
        "--min-seconds",
        "0",
        "--min-repeats",
        "1",
        "--warmup",
        "0",
    )
    assert bench.returncode == 0 and "torch is not installed" in bench.stderr, bench.stderr[-2000:]
    assert "onnxruntime" in bench.stdout
    assert posedeploy("doctor").returncode == 0


def test_pictures_without_matplotlib_are_refused_before_lifting(exported, tmp_path):
    np.save(tmp_path / "kp.npy", np.zeros((3, 17, 2), np.float32))
    result = posedeploy(
        "run",
        "--input",
        tmp_path / "kp.npy",
        "--out",
        tmp_path / "poses.json",
        "--artifacts",
        exported,
        "--plot",
        tmp_path / "pictures",
    )
    one_line_error(result, "'matplotlib'", "posedeploy[plot]")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kp.npy"]  # no poses.json, no pictures folder
