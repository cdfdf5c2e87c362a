"""posedeploy deploy: the whole path into one folder, one report; bad input refused before any work."""

import importlib.util
import json
import os

import pytest

from posedeploy import deploy as deploy_module
from posedeploy.deploy import REPORT_JSON, REPORT_MD, DeploySettings, deploy
from posedeploy.files import sha256_file
from tests.test_cli import assert_one_line_error, checkpoints, run_cli  # noqa: F401 - fixture

HAVE_RTX = importlib.util.find_spec("tensorrt_rtx") is not None
FAST = dict(hypotheses=20, parity_samples=8, bench_batches=[1], bench_seconds=0.05)


def leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_deploy_makes_every_artifact_and_reports_it(tmp_path):
    out = tmp_path / "deploy"
    settings = DeploySettings(**FAST, picture_every=10, compute_capabilities=["8.9"] if HAVE_RTX else [])
    report = deploy(None, out, settings)

    assert report["passed"], report["steps"]
    assert json.loads((out / REPORT_JSON).read_text()) == report
    for name, entry in report["files"].items():  # every file listed, with its real hash
        assert sha256_file(out / name) == entry["sha256"], name
    for graph in ("pipeline.onnx", "pipeline.fp16.onnx", "manifest.json"):
        assert f"artifacts/{graph}" in report["files"]
    steps = report["steps"]
    assert list(steps) == ["export", "engine", "parity", "bench", "sequence"]
    if HAVE_RTX:
        assert steps["engine"]["status"] == "done" and not steps["engine"]["runnable_here"]
        assert "artifacts/pipeline.fp16.rtx.plan" in report["files"]
        assert "cannot run on this machine" in steps["parity"]["engine_not_run"]
    else:
        assert steps["engine"]["status"] == "skipped" and "posedeploy[rtx]" in steps["engine"]["reason"]
    runs = {r["precision"]: r for r in steps["parity"]["runs"]}
    assert runs["fp32"]["task"]["mean hypothesis error (mm)"] <= 0.01
    assert runs["fp16"]["task"]["mean hypothesis error (mm)"] <= 0.5
    labels = {c["label"] for c in steps["bench"]["results"]}
    assert {"torch-fp32", "onnxruntime-cpu-fp32", "onnxruntime-cpu-fp16"} <= labels
    assert all(c["speedup_vs_torch"] > 0 for c in steps["bench"]["results"])
    seq = steps["sequence"]
    # The shipped model on a built-in walking sequence: a sane error, not a broken pipeline.
    assert 20 < seq["mpjpe_mm"] < 150 and seq["best_of_s_mpjpe_mm"] <= seq["mpjpe_mm"]
    assert any(p.endswith(".gif") for p in seq["pictures"]) and any(p.endswith(".png") for p in seq["pictures"])
    markdown = (out / REPORT_MD).read_text()
    for heading in ("## Engine", "## Parity", "## Speed", "## A built-in sequence", "## Files"):
        assert heading in markdown
    assert f"sequence/{next(p for p in seq['pictures'] if p.endswith('.gif'))}" in markdown
    umask = os.umask(0)
    os.umask(umask)
    assert (out.stat().st_mode & 0o777) == 0o777 & ~umask
    assert leftovers(tmp_path) == []


@pytest.mark.slow
def test_redeploy_replaces_and_a_failure_keeps_the_earlier_result(tmp_path, monkeypatch):
    out = tmp_path / "deploy"
    first = deploy(None, out, DeploySettings(**FAST, pictures=False))
    assert first["steps"]["engine"]["status"] == "skipped" and first["steps"]["engine"]["reason"]
    second = deploy(None, out, DeploySettings(**FAST, pictures=False, seed=1))
    assert json.loads((out / REPORT_JSON).read_text())["settings"]["seed"] == 1 == second["settings"]["seed"]

    def crash(*args):
        raise RuntimeError("killed mid-way")

    monkeypatch.setattr(deploy_module, "_sequence", crash)
    before = (out / REPORT_JSON).read_text()
    with pytest.raises(RuntimeError):
        deploy(None, out, DeploySettings(**FAST, pictures=False, seed=2))
    assert (out / REPORT_JSON).read_text() == before
    assert leftovers(tmp_path) == []


def test_bad_input_is_one_line_and_writes_nothing(checkpoints, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    assert_one_line_error(run_cli("deploy", "--checkpoint", tmp_path / "nope.pt", "--out", out), "checkpoint not found")
    (tmp_path / "foreign.pt").write_text("not a checkpoint")
    result = run_cli("deploy", "--checkpoint", tmp_path / "foreign.pt", "--out", out)
    assert_one_line_error(result, "foreign.pt")
    assert_one_line_error(run_cli("deploy", "--checkpoint", checkpoints / "lifter.pt", "--out", out), "holds only a lifter")
    (tmp_path / "a_file").write_text("x")
    assert_one_line_error(run_cli("deploy", "--out", tmp_path / "a_file"), "is not a folder")
    assert_one_line_error(run_cli("deploy", "--out", tmp_path / "a_file" / "sub"), "cannot write into")
    assert_one_line_error(run_cli("deploy", "--out", out, "--compute-capability", "9.0"), "unknown compute capability 9.0")
    assert_one_line_error(run_cli("deploy", "--out", out, "--hypotheses", "0"), "hypotheses must be")
    assert_one_line_error(run_cli("deploy", "--out", out, "--backend", "tpu"), "unknown backend 'tpu'")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "thesis.tex").write_text("precious")
    assert_one_line_error(run_cli("deploy", "--out", busy), "is not an earlier deploy")
    assert (busy / "thesis.tex").read_text() == "precious" and sorted(p.name for p in busy.iterdir()) == ["thesis.tex"]
    assert not out.exists() and leftovers(tmp_path) == []
