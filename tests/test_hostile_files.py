"""Every command's file inputs, hostile: random bytes, truncated or bit-flipped real files, JSON of
any shape, tampered manifests. Each run ends in a result or a one-line error with exit 1 or 2,
never a traceback; outputs that cannot be written are refused the same way."""

import json
import sys

import numpy as np
import pytest
from helpers import random_checkpoint
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from posedeploy.export.onnx_export import export_artifacts

FAST = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))


def cli(capsys, *args) -> tuple[int, str, str]:
    """posedeploy in this process (start-up in a subprocess would cost seconds per example)."""
    from posedeploy.cli import main

    old, sys.argv = sys.argv, ["posedeploy", *map(str, args)]
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    finally:
        sys.argv = old
    out, err = capsys.readouterr()
    return code, out, err


def assert_clean(code: int, err: str) -> None:
    assert code in (0, 1, 2), err
    if code:
        lines = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and "Traceback" not in err, err


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    ckpt = random_checkpoint(root / "c.pt")
    export_artifacts(ckpt, root / "artifacts")
    np.save(root / "kp.npy", np.random.default_rng(0).uniform(-0.5, 0.5, (2, 17, 2)).astype(np.float32))
    (root / "cam.json").write_text(json.dumps({"f": [1145, 1144], "c": [512, 515], "width": 1000, "height": 1002}))
    return root


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


def mutations(original: bytes):
    """Random bytes, the real file cut short, or the real file with a few bytes flipped."""
    flips = st.lists(st.tuples(st.integers(0, len(original) - 1), st.integers(1, 255)), min_size=1, max_size=4)

    def flipped(changes):
        data = bytearray(original)
        for at, xor in changes:
            data[at] ^= xor
        return bytes(data)

    return st.one_of(
        st.binary(max_size=512), st.integers(0, len(original) - 1).map(lambda n: original[:n]), flips.map(flipped)
    )


@FAST
@given(data=st.data())
def test_checkpoint_inputs(made, tmp_path_factory, capsys, data):
    blob = data.draw(mutations((made / "c.pt").read_bytes()))
    path = tmp_path_factory.mktemp("ck") / "x.pt"
    path.write_bytes(blob)
    command = data.draw(
        st.sampled_from(
            [
                (
                    "predict",
                    "--keypoints",
                    made / "kp.npy",
                    "--out",
                    path.with_suffix(".npz"),
                    "--hypotheses",
                    "2",
                    "--checkpoint",
                    path,
                ),
                ("export", "--out", path.parent / "a", "--checkpoint", path),
                (
                    "parity",
                    "--artifacts",
                    made / "artifacts",
                    "--samples",
                    "2",
                    "--hypotheses",
                    "2",
                    "--data",
                    "synthetic",
                    "--checkpoint",
                    path,
                ),
                ("import-checkpoint", "--lifter", "mgcn_lw", "--out", path.parent / "o.pt", "--lifter-weights", path),
            ]
        )
    )
    assert_clean(*cli(capsys, *command)[::2])


@FAST
@given(data=st.data())
def test_keypoint_and_camera_inputs(made, tmp_path_factory, capsys, data):
    folder = tmp_path_factory.mktemp("kp")
    kind = data.draw(st.sampled_from(["npy", "npz", "json", "camera"]))
    if kind == "npy":
        blob = data.draw(mutations((made / "kp.npy").read_bytes()))
    elif kind == "npz":
        np.savez(folder / "real.npz", positions_2d=np.zeros((3, 17, 2), np.float32))
        blob = data.draw(mutations((folder / "real.npz").read_bytes()))
    else:
        blob = json.dumps(data.draw(JSON)).encode()
    name = "cam.json" if kind == "camera" else f"input.{kind}"
    (folder / name).write_bytes(blob)
    args = [
        "run",
        "--artifacts",
        made / "artifacts",
        "--out",
        folder / "o.json",
        "--hypotheses",
        "2",
        "--backend",
        "onnxruntime",
    ]
    if kind == "camera":
        args += ["--input", made / "kp.npy", "--camera", folder / name, "--aggregate", "jpma"]
    else:
        args += ["--input", folder / name]
    assert_clean(*cli(capsys, *args)[::2])


@FAST
@given(data=st.data())
def test_tampered_manifests(made, tmp_path_factory, capsys, data):
    import shutil

    folder = tmp_path_factory.mktemp("man") / "artifacts"
    shutil.copytree(made / "artifacts", folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    how = data.draw(st.sampled_from(["field", "json", "bytes"]))
    if how == "field":  # one field of the real manifest replaced by anything
        section = data.draw(st.sampled_from(sorted(manifest)))
        if isinstance(manifest[section], dict) and manifest[section] and data.draw(st.booleans()):
            key = data.draw(st.sampled_from(sorted(manifest[section])))
            manifest[section][key] = data.draw(JSON)
        else:
            manifest[section] = data.draw(JSON)
        (folder / "manifest.json").write_text(json.dumps(manifest))
    elif how == "json":
        (folder / "manifest.json").write_text(json.dumps(data.draw(JSON)))
    else:
        (folder / "manifest.json").write_bytes(
            data.draw(mutations((made / "artifacts" / "manifest.json").read_bytes()))
        )
    command = data.draw(
        st.sampled_from(
            [
                (
                    "run",
                    "--input",
                    made / "kp.npy",
                    "--out",
                    folder.parent / "o.json",
                    "--hypotheses",
                    "2",
                    "--backend",
                    "onnxruntime",
                ),
                (
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
                ),
                ("build", "--precision", "fp32"),
            ]
        )
    )
    assert_clean(*cli(capsys, *command, "--artifacts", folder)[::2])


@pytest.mark.parametrize("where", ["directory", "under a file", "unwritable"])
def test_outputs_that_cannot_be_written(made, tmp_path, capsys, where):
    target = {"directory": tmp_path, "under a file": made / "kp.npy" / "out", "unwritable": None}[where]
    if target is None:
        target = "/proc/posedeploy-test/out"  # not creatable, even by root
    commands = [
        ("doctor", "--json", f"{target}.json" if where != "directory" else target),
        (
            "run",
            "--input",
            made / "kp.npy",
            "--artifacts",
            made / "artifacts",
            "--hypotheses",
            "2",
            "--backend",
            "onnxruntime",
            "--out",
            f"{target}.json" if where != "directory" else target,
        ),
        (
            "predict",
            "--keypoints",
            made / "kp.npy",
            "--checkpoint",
            made / "c.pt",
            "--hypotheses",
            "2",
            "--out",
            f"{target}.npz" if where != "directory" else target,
        ),
        ("export", "--checkpoint", made / "c.pt", "--out", target if where != "directory" else made / "kp.npy"),
    ]
    for command in commands:
        code, _, err = cli(capsys, *command)
        assert code == 1 and err.count("error:") == 1 and "Traceback" not in err, (command, err)
        assert "cannot write" in err or "must end in" in err or "is not a directory" in err, err


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_human36m_folder_inputs(made, tmp_path_factory, capsys, data):
    from conftest import make_fake_h36m

    root = make_fake_h36m(tmp_path_factory.mktemp("h36m") / "h36m", frames=4)
    victim = data.draw(st.sampled_from(["data_3d_h36m.npz", "data_2d_h36m_sh_pt_mpii.npz", "cameras.json"]))
    if victim.endswith(".json") and data.draw(st.booleans()):
        (root / victim).write_text(json.dumps(data.draw(JSON)))
    else:
        (root / victim).write_bytes(data.draw(mutations((root / victim).read_bytes())))
    keypoints = "sh" if "2d" in victim else data.draw(st.sampled_from(["gt", "sh"]))
    code, _, err = cli(
        capsys, "eval", "--data", root, "--keypoints", keypoints, "--checkpoint", made / "c.pt", "--hypotheses", "0"
    )
    assert_clean(code, err)


def test_deeply_nested_json_everywhere(made, tmp_path, capsys):
    import shutil

    deep = "[" * 100_000 + "]" * 100_000
    (tmp_path / "kp.json").write_text(deep)
    (tmp_path / "cam.json").write_text(deep)
    shutil.copytree(made / "artifacts", tmp_path / "artifacts")
    (tmp_path / "artifacts" / "manifest.json").write_text(deep)
    base = ("run", "--out", tmp_path / "o.json", "--hypotheses", "2", "--backend", "onnxruntime")
    for args in (
        ("--input", tmp_path / "kp.json", "--artifacts", made / "artifacts"),
        ("--input", made / "kp.npy", "--camera", tmp_path / "cam.json", "--artifacts", made / "artifacts"),
        ("--input", made / "kp.npy", "--artifacts", tmp_path / "artifacts"),
    ):
        code, _, err = cli(capsys, *base, *args)
        assert code == 1 and err.count("error:") == 1, err
