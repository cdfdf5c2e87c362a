"""Training under torchrun with two CPU processes (Gloo): DistributedDataParallel end to end."""

import json
import math
import os
import re
import socket
import subprocess
import sys

import pytest
import torch

from posedeploy.training.checkpoint import load_checkpoint


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_training_under_torchrun(tmp_path):
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(_free_port()),
        "-m",
        "posedeploy.cli",
        "train",
        "lifter",
        "--data",
        "synthetic",
        "--stride",
        "50",
        "--val-stride",
        "20",
        "--epochs",
        "2",
        "--batch-size",
        "64",
        "--ema",
        "0.99",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])
    epochs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == [1, 2]  # only rank 0 writes
    assert load_checkpoint(out / "best.pt").config.lifter == "mgcn_lw"
    state = torch.load(out / "last.pt", weights_only=True)
    assert not any(k.startswith("module.") for k in state["model"])  # saved unwrapped, loadable without DDP
    # The average, like the weights, is over one process's steps (every rank takes the same ones).
    samples = int(re.search(r"on ([\d,]+) samples", result.stderr).group(1).replace(",", ""))
    assert state["ema"]["steps"] == 2 * math.ceil(samples / 2 / 32)
