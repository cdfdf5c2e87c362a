"""The benchmark harness on tiny sizes: sane numbers, the JSON schema, the plot. No timing is asserted."""

import json
import os
import subprocess
import sys

import pytest
from helpers import random_checkpoint

from posedeploy.bench.command import BenchSettings, bench
from posedeploy.bench.harness import fit_linear, run_sweep
from posedeploy.bench.plot import plot_report
from posedeploy.bench.report import SCHEMA, BenchReport, Cell, Latency, SweepSettings, format_report
from posedeploy.bench.streaming import run_stream
from posedeploy.bench.targets import BackendTarget, Target, TorchTarget
from posedeploy.errors import InputError
from posedeploy.export.onnx_export import export_artifacts
from posedeploy.records import to_json

TINY = SweepSettings(batches=[1, 2], hypotheses=[1, 3], warmup=1, min_repeats=2, min_seconds=0.0)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    ckpt = random_checkpoint(root / "c.pt")
    export_artifacts(ckpt, root / "artifacts", fp16=True)
    return ckpt, root / "artifacts"


@pytest.fixture(scope="module")
def report(exported):
    ckpt, artifacts = exported
    return bench(
        BenchSettings(
            artifacts,
            ("torch", "onnxruntime"),
            ("fp32", "fp16"),
            TINY,
            checkpoint=ckpt,
            stream_fps=500,
            stream_frames=5,
        )
    )


def test_report_schema_and_sane_numbers(report):
    assert report.schema == SCHEMA
    written = report.to_json()
    assert {"settings", "flops", "peaks", "results", "fits", "streaming", "machine", "model", "artifacts"} <= set(
        written
    )
    assert BenchReport.from_json(json.loads(json.dumps(written))).to_json() == written  # JSON and back
    labels = {c.label for c in report.results}
    assert labels == {"torch-fp32", "onnxruntime-cpu-fp32", "onnxruntime-cpu-fp16"}
    assert len(report.results) == 3 * 4
    for c in report.results:
        lat = c.latency_ms
        assert 0 < lat.min <= lat.p50 <= lat.p90 <= lat.p99
        assert c.frames_per_s == pytest.approx(c.batch / (lat.p50 / 1e3))
        assert c.hypotheses_per_s == pytest.approx(c.frames_per_s * c.hypotheses)
        assert c.gflops > 0 and c.fraction_of_peak > 0
        assert c.repeats >= TINY.min_repeats
        assert c.speedup_vs_torch > 0
        if c.backend == "torch":
            assert c.speedup_vs_torch == 1.0
        if c.peak_host_mb is not None:
            assert c.peak_host_mb > 10
    assert report.peaks["cpu"].gflops > 0
    assert report.flops.lifter_per_pose == pytest.approx(5.15e6, rel=0.01)  # MGCN-lw
    for fit in report.fits.values():
        assert set(to_json(fit)) == {"slope_us_per_hypothesis", "intercept_ms", "r2", "cliffs"}
    [stream] = [s for s in report.streaming if s.backend == "onnxruntime-cpu-fp32"]
    assert stream.processed + stream.dropped == 5 and stream.latency_ms.p50 > 0


def test_plot_is_written(report, tmp_path):
    path = plot_report(report, tmp_path / "bench.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_linear_fit_and_cliffs():
    def cell(b, s, p50):
        return Cell("x", "fp32", "cpu", "x-fp32", b, s, 1, Latency(p50, p50, p50, p50, p50), 1.0, 1.0, None)

    cells = [cell(b, s, 2.0 + 0.01 * b * s) for b in (1, 4, 16) for s in (1, 50, 200)]
    fit = fit_linear(cells)
    assert fit.slope_us_per_hypothesis == pytest.approx(10.0) and fit.intercept_ms == pytest.approx(2.0)
    assert fit.r2 == pytest.approx(1.0) and fit.cliffs == []
    cells[-1] = cell(16, 200, 3 * (2.0 + 0.01 * 16 * 200))  # B=16, S=200 three times dearer per hypothesis
    assert [(c.batch, c.hypotheses) for c in fit_linear(cells).cliffs] == [(16, 200)]


class FixedTarget(Target):
    """A target whose calls 'take' a fixed time per hypothesis: the ratios are known exactly."""

    device = "cpu"

    def __init__(self, name, precision, us_per_hypothesis):
        self.name, self.precision, self.us = name, precision, us_per_hypothesis

    def prepare(self, batch, hypotheses):
        self.work = batch * hypotheses

    def call(self):
        return self.us * self.work * 1e-6


def test_ratios_against_the_baseline_and_the_strongest_pytorch_path():
    eager, compiled = FixedTarget("torch", "fp32", 8.0), FixedTarget("torch-compile", "fp32", 4.0)
    onnx = FixedTarget("onnxruntime-cpu", "fp32", 2.0)
    settings = SweepSettings(batches=[1, 4], hypotheses=[5], warmup=0, min_repeats=1, min_seconds=0.0)
    report = run_sweep([eager, compiled, onnx], settings, show_progress=False)
    us = {"torch": 8, "torch-compile": 4, "onnxruntime-cpu": 2}
    for c in report.results:
        assert c.speedup_vs_torch == pytest.approx(8.0 / us[c.backend])
        assert c.speedup_vs_best_torch == pytest.approx(c.speedup_vs_torch / 2) and c.best_torch == "torch-compile-fp32"
    assert "x best" in format_report(report) and "(torch-compile-fp32)" in format_report(report)
    alone = run_sweep([eager, onnx], settings, show_progress=False)  # no stronger path timed: no second ratio
    assert all(c.speedup_vs_best_torch is None for c in alone.results) and "x best" not in format_report(alone)


@pytest.mark.slow
def test_the_compiled_pytorch_path_computes_what_eager_does(exported):
    import torch

    target = TorchTarget(exported[0], compiled=True)
    target.prepare(2, 3)
    assert target.call() > 0  # compiles and runs
    with torch.no_grad():
        got, want = target.fn(target.kp, target.noise), target.pipeline(target.kp, target.noise)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)
    assert target.label == "torch-compile-fp32"
    with pytest.raises(InputError, match="fp32 or fp16"):
        TorchTarget(exported[0], precision="int8")


def test_bad_settings_and_stream_arguments(exported):
    with pytest.raises(InputError):
        SweepSettings(batches=[0]).validate()
    target = BackendTarget(exported[1], "onnxruntime")
    with pytest.raises(InputError):
        run_stream(target, fps=0, frames=3, hypotheses=2)
    target.close()


def test_bench_command(exported, tmp_path):
    ckpt, artifacts = exported
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "posedeploy.cli",
            "bench",
            "--artifacts",
            str(artifacts),
            "--checkpoint",
            str(ckpt),
            "--backend",
            "torch,onnxruntime,tensorrt",
            "--batch",
            "1",
            "--hypotheses",
            "2",
            "--min-seconds",
            "0",
            "--min-repeats",
            "2",
            "--json",
            str(tmp_path / "b.json"),
            "--plot",
            str(tmp_path / "b.png"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "x torch" in result.stdout and "peak cpu" in result.stdout
    assert "skipping tensorrt" in result.stderr  # no engine here: said, not crashed
    assert json.loads((tmp_path / "b.json").read_text())["schema"] == SCHEMA
    assert (tmp_path / "b.png").is_file()


def test_bench_of_the_shipped_model_leaves_no_temporary_export(tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "posedeploy.cli",
            "bench",
            "--backend",
            "onnxruntime",
            "--batch",
            "1",
            "--hypotheses",
            "2",
            "--min-seconds",
            "0",
            "--min-repeats",
            "1",
            "--warmup",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "temporary folder" in result.stderr
    assert list(scratch.glob("posedeploy-bench-*")) == []  # (torch and onnx keep caches of their own there)
