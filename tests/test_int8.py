"""INT8 post-training quantisation of the lifter: what it writes, where it runs, how it is judged."""

import numpy as np
import onnx
import pytest
from helpers import random_checkpoint

from posedeploy.artifacts import Int8Calibration, pipeline_graph
from posedeploy.data import evenly_spaced, load_dataset
from posedeploy.errors import InputError
from posedeploy.export.int8 import quantise_pipeline, quantised_nodes
from posedeploy.export.onnx_export import export_artifacts
from posedeploy.parity import run_parity
from posedeploy.runtime import MultiHypothesisLifter


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("int8")
    ckpt = random_checkpoint(root / "c.pt")
    calibration = evenly_spaced(load_dataset("synthetic", "train", "gt"), 64)
    manifest = export_artifacts(ckpt, root / "artifacts", int8_calibration=calibration)
    return ckpt, root / "artifacts", manifest


def test_int8_graph_is_written_and_recorded(exported):
    _, artifacts, manifest = exported
    assert manifest.files["pipeline.int8.onnx"].precision == "int8"
    assert manifest.int8 is not None and manifest.int8.calibration == Int8Calibration("synthetic/gt", 64)
    model = onnx.load(artifacts / "pipeline.int8.onnx")
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    float_model = onnx.load(artifacts / "pipeline.onnx")
    nodes = quantised_nodes(float_model)
    assert nodes and all(n.startswith("/lifter/") for n in nodes)
    assert not any("/input/" in n or "/output/" in n for n in nodes)  # first and last layers stay float
    assert len(nodes) < sum(n.op_type in ("MatMul", "Gemm") for n in float_model.graph.node)  # the AVG stays float
    assert {p.key: p.value for p in model.metadata_props}["graph"] == "pipeline.int8"


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_int8_runs_and_is_judged_by_best_of_s(exported, backend):
    if backend == "openvino":
        pytest.importorskip("openvino")
    ckpt, artifacts, _ = exported
    test = evenly_spaced(load_dataset("synthetic", "test", "gt"), 16)
    report = run_parity(ckpt, artifacts, test, hypotheses=20, precision="int8", backend=backend, tolerance_mm=1e9)
    assert report.artifact == "pipeline.int8.onnx" and report.precision == "int8"
    assert report.criterion == "delta best-of-S MPJPE (mm)" and report.passed
    assert report.outputs["sigma"].max_abs < 1e-5  # the AVG model is not quantised
    assert 0 < report.task["mean hypothesis error (mm)"] < 1000
    strict = run_parity(ckpt, artifacts, test, hypotheses=20, precision="int8", backend=backend, tolerance_mm=0.0)
    assert not strict.passed or strict.task["delta best-of-S MPJPE (mm)"] == 0


def test_int8_refusals(exported):
    _, artifacts, _ = exported
    with pytest.raises(InputError, match="takes its noise as an input"):
        pipeline_graph("int8", "device")
    with pytest.raises(InputError, match="at least 32 poses"):
        quantise_pipeline(onnx.load(artifacts / "pipeline.onnx"), np.zeros((4, 17, 2)))
    with MultiHypothesisLifter(artifacts, precision="int8", backend="onnxruntime") as lifter:
        assert lifter.backend.precision == "int8"


PEAK = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stdout.write(done.stdout)
sys.stderr.write(done.stderr)
print(f"peak_rss_kb {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}")
sys.exit(done.returncode)
"""


def test_export_int8_command_stays_within_its_memory(tmp_path):
    import subprocess
    import sys

    ckpt = random_checkpoint(tmp_path / "c.pt")
    export = [
        sys.executable,
        "-m",
        "posedeploy.cli",
        "export",
        "--checkpoint",
        str(ckpt),
        "--out",
        str(tmp_path / "a"),
        "--int8",
        "--calibration-data",
        "synthetic",
    ]
    result = subprocess.run([sys.executable, "-c", PEAK, *export], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "pipeline.int8.onnx" in result.stdout and "calibrating" in result.stderr
    assert "Collecting" not in result.stdout  # the quantiser's chatter stays off stdout
    # 512 built-in poses offered: thinned to what the calibrator can keep, so the whole export peaks
    # below 2 GiB (it took 4.6 GB when the calibrator kept every tensor of all 512).
    peak = int(result.stdout.split("peak_rss_kb ")[1]) * 1024
    assert peak < 2 * 2**30, f"export --int8 peaked at {peak / 2**30:.2f} GiB"


def test_calibration_is_thinned_to_what_the_calibrator_can_hold(exported):
    from posedeploy.export.int8 import (
        CALIBRATION_BATCH,
        CALIBRATION_DRAWS,
        CALIBRATION_MEMORY,
        calibrated_bytes_per_draw,
        calibration_poses,
    )

    per_draw = calibrated_bytes_per_draw(onnx.load(exported[1] / "pipeline.onnx"))
    assert 100_000 < per_draw < 10_000_000  # MGCN-lw: about 0.6 MB of MatMul inputs and outputs per draw
    poses = calibration_poses(512, per_draw)
    assert CALIBRATION_BATCH <= poses < 512 and poses * per_draw * CALIBRATION_DRAWS <= CALIBRATION_MEMORY
    assert poses % CALIBRATION_BATCH == 0 and calibration_poses(100, 1) == 96  # whole batches only
    assert calibration_poses(512, 10**12) == CALIBRATION_BATCH  # never fewer than one batch
