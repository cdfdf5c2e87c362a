"""posedeploy deploy: the whole path into one folder, one report; bad input refused before any work."""

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from posedeploy import deploy as deploy_module
from posedeploy.deploy import REPORT_JSON, REPORT_MD, DeployOptions, DeploySettings, deploy
from posedeploy.deploy_report import DeployReport
from posedeploy.errors import InputError
from posedeploy.files import sha256_file
from tests.test_cli import assert_one_line_error, checkpoints, run_cli  # noqa: F401 - fixture

HAVE_RTX = importlib.util.find_spec("tensorrt_rtx") is not None
FAST = dict(hypotheses=20, parity_samples=8, bench_batches=[1], bench_seconds=0.05)


def fast(out, **options):
    return DeploySettings(None, out, DeployOptions(**{**FAST, **options}))


def leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_deploy_makes_every_artifact_and_reports_it(tmp_path):
    out = tmp_path / "deploy"
    report = deploy(fast(out, picture_every=10, compute_capabilities=["8.9"] if HAVE_RTX else []))

    assert report.passed, report.steps
    written = json.loads((out / REPORT_JSON).read_text())
    assert written == report.to_json() and DeployReport.from_json(written).to_json() == written
    for name, entry in report.files.items():  # every file listed, with its real hash
        assert sha256_file(out / name) == entry.sha256, name
    for graph in ("pipeline.onnx", "pipeline.fp16.onnx", "manifest.json"):
        assert f"artifacts/{graph}" in report.files
    steps = report.steps
    assert [name for name, _ in steps.items()] == ["export", "engine", "parity", "bench", "sequence"]
    if HAVE_RTX:
        assert steps.engine.status == "done" and not steps.engine.runnable_here
        assert "artifacts/pipeline.fp16.rtx.plan" in report.files
        assert "cannot run on this machine" in steps.parity.engine_not_run
    else:
        assert steps.engine.status == "skipped" and "posedeploy[rtx]" in steps.engine.reason
    runs = {r.precision: r for r in steps.parity.runs}
    assert runs["fp32"].task["mean hypothesis error (mm)"] <= 0.01
    assert runs["fp16"].task["mean hypothesis error (mm)"] <= 0.5
    labels = {c.label for c in steps.bench.results}
    assert {"torch-fp32", "onnxruntime-cpu-fp32", "onnxruntime-cpu-fp16"} <= labels
    assert all(c.speedup_vs_torch > 0 for c in steps.bench.results)
    seq = steps.sequence
    # The shipped model on a built-in walking sequence: a sane error, not a broken pipeline.
    assert 20 < seq.mpjpe_mm < 150 and seq.best_of_s_mpjpe_mm <= seq.mpjpe_mm
    assert any(p.endswith(".gif") for p in seq.pictures) and any(p.endswith(".png") for p in seq.pictures)
    markdown = (out / REPORT_MD).read_text()
    for heading in ("## Engine", "## Parity", "## Speed", "## A built-in sequence", "## Files"):
        assert heading in markdown
    assert f"sequence/{next(p for p in seq.pictures if p.endswith('.gif'))}" in markdown
    umask = os.umask(0)
    os.umask(umask)
    assert (out.stat().st_mode & 0o777) == 0o777 & ~umask
    assert leftovers(tmp_path) == []


@pytest.mark.slow
def test_redeploy_replaces_and_a_failure_keeps_the_earlier_result(tmp_path, monkeypatch):
    out = tmp_path / "deploy"
    first = deploy(fast(out, pictures=False))
    assert first.steps.engine.status == "skipped" and first.steps.engine.reason
    second = deploy(fast(out, pictures=False, seed=1))
    assert json.loads((out / REPORT_JSON).read_text())["settings"]["seed"] == 1 == second.settings.seed

    def crash(*args):
        raise RuntimeError("killed mid-way")

    monkeypatch.setattr(deploy_module, "_sequence", crash)
    before = (out / REPORT_JSON).read_text()
    with pytest.raises(RuntimeError):
        deploy(fast(out, pictures=False, seed=2))
    assert (out / REPORT_JSON).read_text() == before
    assert leftovers(tmp_path) == []


@pytest.mark.slow
def test_a_redeploy_replaces_only_its_own_unchanged_files(tmp_path):
    out = tmp_path / "deploy"
    deploy(fast(out, pictures=False))
    report = (out / REPORT_JSON).read_text()
    assert REPORT_MD in json.loads(report)["files"]  # every file it wrote is listed, REPORT.md included
    (out / "my_analysis.md").write_text("my notes")
    (out / "artifacts" / "extra").mkdir()
    with pytest.raises(
        InputError, match=r"also holds 2 entries that deploy did not write.*\(artifacts/extra/, my_analysis.md\)"
    ):
        deploy(fast(out, pictures=False))
    assert (out / "my_analysis.md").read_text() == "my notes" and (out / REPORT_JSON).read_text() == report
    (out / "my_analysis.md").unlink()
    (out / "artifacts" / "extra").rmdir()
    with open(out / REPORT_MD, "a") as f:  # an edited file of its own is the user's now
        f.write("\nmy comment\n")
    with pytest.raises(InputError, match="REPORT.md"):
        deploy(fast(out, pictures=False))
    assert (out / REPORT_MD).read_text().endswith("my comment\n") and leftovers(tmp_path) == []


KILL_BETWEEN_RENAMES = """
import os, signal, sys
from pathlib import Path
from posedeploy.deploy import DeployOptions, DeploySettings, deploy

real = os.replace
def replace(src, dst):
    real(src, dst)
    if str(dst).endswith(".old/deploy"):  # the earlier deploy moved aside, the new one not yet in place
        os.kill(os.getpid(), signal.SIGKILL)
os.replace = replace
options = DeployOptions(hypotheses=20, parity_samples=8, bench_batches=[1], bench_seconds=0.05, pictures=False, seed=1)
deploy(DeploySettings(None, Path(sys.argv[1]), options))
"""


@pytest.mark.slow
def test_a_deploy_killed_between_its_renames_is_recovered_by_the_next(tmp_path):
    out = tmp_path / "deploy"
    deploy(fast(out, pictures=False))
    killed = subprocess.run([sys.executable, "-c", KILL_BETWEEN_RENAMES, str(out)], capture_output=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    assert not out.exists() and any(name.endswith(".old") for name in leftovers(tmp_path))
    report = deploy(fast(out, pictures=False, seed=2))
    assert report.settings.seed == 2 and json.loads((out / REPORT_JSON).read_text())["settings"]["seed"] == 2
    assert leftovers(tmp_path) == []


def test_bad_input_is_one_line_and_writes_nothing(checkpoints, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    assert_one_line_error(run_cli("deploy", "--checkpoint", tmp_path / "nope.pt", "--out", out), "checkpoint not found")
    (tmp_path / "foreign.pt").write_text("not a checkpoint")
    result = run_cli("deploy", "--checkpoint", tmp_path / "foreign.pt", "--out", out)
    assert_one_line_error(result, "foreign.pt")
    assert_one_line_error(
        run_cli("deploy", "--checkpoint", checkpoints / "lifter.pt", "--out", out), "holds only a lifter"
    )
    (tmp_path / "a_file").write_text("x")
    assert_one_line_error(run_cli("deploy", "--out", tmp_path / "a_file"), "is not a folder")
    assert_one_line_error(run_cli("deploy", "--out", tmp_path / "a_file" / "sub"), "cannot write into")
    assert_one_line_error(
        run_cli("deploy", "--out", out, "--compute-capability", "9.0"), "unknown compute capability 9.0"
    )
    assert_one_line_error(run_cli("deploy", "--out", out, "--hypotheses", "0"), "hypotheses must be")
    assert_one_line_error(run_cli("deploy", "--out", out, "--backend", "tpu"), "unknown backend 'tpu'")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "thesis.tex").write_text("precious")
    assert_one_line_error(run_cli("deploy", "--out", busy), "is not an earlier deploy")
    assert (busy / "thesis.tex").read_text() == "precious" and sorted(p.name for p in busy.iterdir()) == ["thesis.tex"]
    (busy / "report.json").write_text('{"format": "posedeploy.deploy"}')  # says deploy, lists nothing it wrote
    assert_one_line_error(run_cli("deploy", "--out", busy), "is not an earlier deploy")
    assert (busy / "thesis.tex").read_text() == "precious"
    assert not out.exists() and leftovers(tmp_path) == []


EARLIER = {
    "artifacts/pipeline.onnx": b"graph",
    "artifacts/manifest.json": b"{}",
    "sequence/lifted.npz": b"poses",
    REPORT_MD: b"# report",
}
TOUCHABLE = [*EARLIER, REPORT_JSON, "thesis.tex", "artifacts/notes.md", "sequence/sub/x.png", "extra/"]


def _snapshot(folder):
    return {
        str(p.relative_to(folder)): (
            p.read_bytes() if p.is_file() and not p.is_symlink() else "link" if p.is_symlink() else "dir"
        )
        for p in sorted(folder.rglob("*"))
    }


@settings(max_examples=60, deadline=None)
@given(
    changes=st.lists(
        st.tuples(st.sampled_from(["write", "append", "remove", "mkdir", "symlink"]), st.sampled_from(TOUCHABLE)),
        max_size=4,
    )
)
def test_a_redeploy_never_removes_a_file_it_did_not_write(changes):
    """Whatever the user did to an earlier deploy's folder, a redeploy either replaces a folder that held
    only that deploy's own, unchanged files, or refuses, naming what is not, and changes nothing."""
    from posedeploy.deploy import _listing
    from posedeploy.deploy_folder import new_stage, replace
    from posedeploy.records import to_json

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "deploy"
        for name, data in EARLIER.items():
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            (out / name).write_bytes(data)
        (out / REPORT_JSON).write_text(
            json.dumps({"format": "posedeploy.deploy", "format_version": 2, "files": to_json(_listing(out))})
        )
        for action, name in changes:
            path = out / name.rstrip("/")
            if action == "remove":
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink(missing_ok=True)
            elif action == "append" and path.is_file():
                with open(path, "ab") as f:  # an edit
                    f.write(b"!")
            elif not (path.exists() or path.is_symlink()):
                path.parent.mkdir(parents=True, exist_ok=True)
                if action == "mkdir":
                    path.mkdir()
                elif action == "symlink":
                    path.symlink_to(Path(tmp))
                else:
                    path.write_bytes(b"mine")
        before = _snapshot(out)
        try:
            listed = json.loads((out / REPORT_JSON).read_text())["files"]
        except (OSError, ValueError):
            listed = None  # no longer an earlier deploy: only an empty folder may be written over
        owned_dirs = {str(parent) for name in EARLIER for parent in Path(name).parents}
        # Is anything there that the earlier deploy did not write, as it wrote it?
        foreign = (
            listed is None
            and bool(before)
            or any(
                rel != REPORT_JSON and content != EARLIER.get(rel) and not (content == "dir" and rel in owned_dirs)
                for rel, content in before.items()
            )
        )
        stage = new_stage(out)
        (stage / "new.txt").write_text("new")
        try:
            replace(stage, out)
        except InputError as exc:
            assert foreign, exc
            assert _snapshot(out) == before  # nothing changed
            shutil.rmtree(stage)
        else:
            assert not foreign and _snapshot(out) == {"new.txt": b"new"}
        assert [p.name for p in Path(tmp).iterdir() if p.name != "deploy"] == []
