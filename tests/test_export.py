"""posedeploy export: the graphs, their checks and metadata, FP16 islands, Triton, safe rewrites."""

import json

import onnx
import pytest
from helpers import random_checkpoint

from posedeploy.artifacts import read_manifest
from posedeploy.errors import ArtifactError, CheckpointError
from posedeploy.export import onnx_export
from posedeploy.export.fp16 import KEEP_FP32
from posedeploy.export.onnx_export import export_artifacts
from posedeploy.files import sha256_file


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    ckpt = random_checkpoint(root / "mgcn.pt")
    export_artifacts(ckpt, root / "out", fp16=True, triton=True)
    return ckpt, root / "out"


def test_files_manifest_and_metadata(exported):
    ckpt, out = exported
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["files"]) == {"avg.onnx", "lifter.onnx", "pipeline.onnx", "pipeline.fp16.onnx"}
    assert manifest["checkpoint"]["sha256"] == sha256_file(ckpt)
    assert manifest["config"]["lifter"] == "mgcn_lw" and manifest["config"]["avg"] == "mlp"
    assert manifest["opset"] >= 17
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == sha256_file(out / name)
        model = onnx.load(out / name)
        onnx.checker.check_model(model, full_check=True)
        onnx.shape_inference.infer_shapes(model, strict_mode=True)
        props = {p.key: p.value for p in model.metadata_props}
        assert props["lifter"] == "mgcn_lw" and float(props["alpha"]) == 0.005
        assert props["checkpoint_sha256"] == manifest["checkpoint"]["sha256"]
        assert props["joints"].split(",")[0] == "pelvis" and "normalisation" in props
        assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    pipeline = manifest["files"]["pipeline.onnx"]
    assert pipeline["inputs"]["noise"]["shape"] == ["B", "S", 2, 17, 2]
    assert pipeline["outputs"]["hypotheses"]["shape"] == ["B", "S", 17, 3]
    assert not list(out.rglob("*.partial"))


def test_fp16_graph_keeps_float32_islands_and_io(exported):
    _, out = exported
    model = onnx.load(out / "pipeline.fp16.onnx")
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    types = {v.name: v.type.tensor_type.elem_type for v in list(inferred.graph.value_info) + list(inferred.graph.input)}
    types.update({t.name: t.data_type for t in model.graph.initializer})
    assert all(
        v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        for v in list(model.graph.input) + list(model.graph.output)
    )
    halves = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT16]
    assert len(halves) > 10
    kept = [n for n in model.graph.node if n.op_type in KEEP_FP32]
    assert kept  # BatchNormalization in the lifter, the reductions of the aggregation
    for node in kept:
        assert all(types.get(i) != onnx.TensorProto.FLOAT16 for i in node.input if i), node.name
    outside = [
        n
        for n in model.graph.node
        if not any(scope in n.name for scope in ("/lifter/", "/avg/")) and n.op_type in ("Mul", "Add", "Clip", "Max")
    ]
    for node in outside:  # sigma, noise and aggregation arithmetic
        assert all(types.get(i) != onnx.TensorProto.FLOAT16 for i in node.input if i), node.name
    assert (out / "pipeline.fp16.onnx").stat().st_size < 0.8 * (out / "pipeline.onnx").stat().st_size


def test_triton_repository(exported):
    _, out = exported
    root = out / "triton"
    for model in ("posedeploy_pipeline", "posedeploy_pipeline_fp16", "posedeploy_pipeline_trt"):
        config = (root / model / "config.pbtxt").read_text()
        assert f'name: "{model}"' in config and 'platform: "onnxruntime_onnx"' in config
        assert "dynamic_batching" in config and "max_batch_size: 64" in config
        assert 'name: "noise", data_type: TYPE_FP32, dims: [ -1, 2, 17, 2 ]' in config
        assert 'name: "hypotheses", data_type: TYPE_FP32, dims: [ -1, 17, 3 ]' in config
        onnx.checker.check_model(onnx.load(root / model / "1" / "model.onnx"))
    assert 'name: "tensorrt"' in (root / "posedeploy_pipeline_trt" / "config.pbtxt").read_text()


def test_reexport_replaces_artifacts_and_keeps_other_files(tmp_path):
    first = random_checkpoint(tmp_path / "a.pt", seed=1)
    second = random_checkpoint(tmp_path / "b.pt", seed=2)
    out = tmp_path / "out"
    export_artifacts(first, out)
    (out / "notes.txt").write_text("mine")
    export_artifacts(second, out)
    artifacts = read_manifest(out)
    assert artifacts.manifest.checkpoint.sha256 == sha256_file(second)
    artifacts.path("pipeline")  # hashes agree with the new manifest
    assert (out / "notes.txt").read_text() == "mine"
    assert not list(out.glob("*.partial")) and not list(out.glob(".*"))


def test_failed_export_leaves_the_previous_artifacts(tmp_path, monkeypatch):
    out = tmp_path / "out"
    export_artifacts(random_checkpoint(tmp_path / "a.pt", seed=1), out)
    before = {p.name: sha256_file(p) for p in out.iterdir()}
    calls = {"n": 0}
    real_save = onnx.save

    def failing_save(model, path, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return real_save(model, path, *args, **kwargs)

    monkeypatch.setattr(onnx_export.onnx, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        export_artifacts(random_checkpoint(tmp_path / "b.pt", seed=2), out)
    assert {p.name: sha256_file(p) for p in out.iterdir()} == before
    read_manifest(out).path("pipeline")


def test_export_refuses_what_it_cannot_export(tmp_path):
    with pytest.raises(CheckpointError, match="holds only a lifter"):
        export_artifacts(random_checkpoint(tmp_path / "l.pt", with_avg=False), tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    (tmp_path / "file").write_text("x")
    with pytest.raises(ArtifactError, match="not a directory"):
        export_artifacts(random_checkpoint(tmp_path / "a.pt"), tmp_path / "file")


def test_self_check_refuses_a_graph_that_differs(tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_export, "SELF_CHECK_TOLERANCE", -1.0)
    with pytest.raises(ArtifactError, match="differs from PyTorch"):
        export_artifacts(random_checkpoint(tmp_path / "a.pt"), tmp_path / "out")
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_a_second_writer_is_refused_and_stale_artifacts_are_removed(tmp_path):
    from posedeploy.errors import InputError
    from posedeploy.files import folder_lock

    ckpt = random_checkpoint(tmp_path / "a.pt", seed=1)
    out = tmp_path / "out"
    with folder_lock(out, "export"), pytest.raises(InputError, match="is being written by posedeploy \\(pid"):
        export_artifacts(ckpt, out)
    assert not (out / "manifest.json").exists()
    export_artifacts(ckpt, out, triton=True, in_graph_noise=True)
    assert (out / "triton").is_dir() and (out / "pipeline.rng.onnx").is_file()
    (out / "pipeline.fp32.plan").write_bytes(b"engine of an older export")
    (out / "pipeline.fp32.plan.json").write_text(json.dumps({"onnx": {"sha256": "0" * 64}}))
    export_artifacts(ckpt, out)  # plain: no Triton, no in-graph noise
    left = sorted(p.name for p in out.iterdir())
    assert left == ["avg.onnx", "lifter.onnx", "manifest.json", "pipeline.onnx"], left
