"""TensorRT engines: the build path (TensorRT for RTX builds without a GPU), manifests, refusals."""

import importlib.util
import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from helpers import random_checkpoint

from posedeploy.engines.build import BuildSettings, build_engine, parse_range
from posedeploy.engines.machine import GPU, MachineInfo, describe_machine, l4t_release
from posedeploy.engines.manifest import EngineManifest, GraphRef, Profiles, mismatches, read_engine_manifest
from posedeploy.errors import ArtifactError, EngineBuildError, InputError
from posedeploy.export.onnx_export import export_artifacts
from posedeploy.files import sha256_file

HAVE_RTX = importlib.util.find_spec("tensorrt_rtx") is not None
rtx = pytest.mark.skipif(not HAVE_RTX, reason="TensorRT for RTX not installed (pip install 'posedeploy[rtx]')")


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("engines")
    out = {}
    for lifter in ("mgcn_lw", "htnet"):
        export_artifacts(
            random_checkpoint(root / f"{lifter}.pt", lifter=lifter), root / lifter, fp16=True, in_graph_noise=True
        )
        out[lifter] = root / lifter
    return out


@pytest.mark.trt
@rtx
@pytest.mark.parametrize("lifter", ["mgcn_lw", "htnet"])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_rtx_builds_both_lifters_fp32_and_fp16_without_a_gpu(exports, lifter, precision):
    artifacts = exports[lifter]
    settings = BuildSettings(
        artifacts,
        precision=precision,
        batch=(1, 8, 16),
        hypotheses=(1, 200, 200),
        compute_capabilities=("8.9",),
        flavour="tensorrt_rtx",
    )
    manifest = build_engine(settings)
    plan = artifacts / manifest.plan.file
    assert plan.name == f"pipeline.{precision}.rtx.plan" and plan.stat().st_size > 100_000
    assert read_engine_manifest(plan) == manifest  # sizes and hashes agree
    assert manifest.tensorrt.flavour == "tensorrt_rtx" and manifest.tensorrt.strongly_typed
    assert manifest.target.compute_capabilities == ["8.9"]
    assert manifest.profiles == Profiles(batch=[1, 8, 16], hypotheses=[1, 200, 200])
    graph = "pipeline.fp16.onnx" if precision == "fp16" else "pipeline.onnx"
    assert manifest.onnx == GraphRef(graph, sha256_file(artifacts / graph))
    assert manifest.timing_cache is None  # TensorRT for RTX keeps no timing cache
    assert not list(artifacts.glob("*.partial"))


@pytest.mark.trt
@rtx
def test_in_graph_noise_variant_builds(exports):
    manifest = build_engine(
        BuildSettings(
            exports["mgcn_lw"], compute_capabilities=("8.6", "8.9"), in_graph_noise=True, flavour="tensorrt_rtx"
        )
    )
    assert manifest.plan.file == "pipeline.rng.fp16.rtx.plan"
    assert manifest.target.compute_capabilities == ["8.6", "8.9"]


@pytest.mark.trt
@rtx
def test_parser_errors_name_node_and_operator(tmp_path):
    export_artifacts(random_checkpoint(tmp_path / "c.pt"), tmp_path / "a", fp16=True)
    graph = onnx.load(tmp_path / "a" / "pipeline.fp16.onnx")
    graph.graph.node[5].op_type = "NoSuchOperator"
    graph.graph.node[5].name = "mystery_node"
    onnx.save(graph, tmp_path / "a" / "pipeline.fp16.onnx")
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    entry = manifest["files"]["pipeline.fp16.onnx"]
    entry.update(
        sha256=sha256_file(tmp_path / "a" / "pipeline.fp16.onnx"),
        bytes=(tmp_path / "a" / "pipeline.fp16.onnx").stat().st_size,
    )
    (tmp_path / "a" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(EngineBuildError, match="mystery_node.*NoSuchOperator"):
        build_engine(BuildSettings(tmp_path / "a", compute_capabilities=("8.9",), flavour="tensorrt_rtx"))
    assert not list((tmp_path / "a").glob("*.plan*"))


@pytest.mark.trt
@rtx
def test_engine_refuses_to_load_without_a_matching_gpu(exports):
    from posedeploy.runtime.tensorrt_backend import TensorRTBackend

    manifest = build_engine(BuildSettings(exports["mgcn_lw"], compute_capabilities=("8.9",), flavour="tensorrt_rtx"))
    plan = exports["mgcn_lw"] / manifest.plan.file
    if not describe_machine().gpus:
        with pytest.raises(ArtifactError, match="cannot run here: .*no CUDA GPU.*rebuild it on this machine"):
            TensorRTBackend(plan)
    data = plan.read_bytes()
    plan.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match="does not match its manifest"):
        TensorRTBackend(plan)


def _manifest(**changes):
    manifest = {
        "format": "posedeploy.engine",
        "format_version": 1,
        "precision": "fp16",
        "tensorrt": {"flavour": "tensorrt", "version": "10.13.0"},
        "platform": {"arch": "x86_64"},
        "target": {"compute_capabilities": ["9.0"], "gpu": "NVIDIA H100 80GB HBM3"},
        "flags": {"version_compatible": False, "hardware_compatibility": None},
        "onnx": {"file": "pipeline.fp16.onnx", "sha256": "ab" * 32},
        "plan": {"file": "pipeline.fp16.plan", "sha256": "cd" * 32, "bytes": 1000},
    }
    for key, value in changes.items():
        manifest[key] = {**manifest[key], **value}
    return EngineManifest.from_json(manifest)


def _machine(cc="9.0", trt="10.13.0", arch="x86_64"):
    return MachineInfo(
        arch=arch, system="Linux", gpus=[GPU("NVIDIA H100 80GB HBM3", cc, 81559)], tensorrt={"tensorrt": trt}
    )


def test_manifest_mismatches_say_what_differs():
    assert mismatches(_manifest(), _machine()) == []
    [gpu] = mismatches(_manifest(), _machine(cc="8.7"))
    assert "compute capability 9.0" in gpu and "is 8.7" in gpu
    [version] = mismatches(_manifest(), _machine(trt="10.14.1"))
    assert "built with tensorrt 10.13.0, this machine has 10.14.1" in version
    assert mismatches(_manifest(flags={"version_compatible": True}), _machine(trt="10.14.1")) == []
    assert mismatches(_manifest(flags={"version_compatible": True}), _machine(trt="10.12.0"))  # older: no
    assert mismatches(_manifest(flags={"hardware_compatibility": "ampere_plus"}), _machine(cc="8.6")) == []
    assert any("aarch64" in m for m in mismatches(_manifest(), _machine(arch="aarch64")))
    missing = MachineInfo(arch="x86_64", system="Linux", tensorrt={})
    problems = mismatches(_manifest(), missing)
    assert any("not installed" in p for p in problems) and any("no CUDA GPU" in p for p in problems)


def test_profile_parsing_and_settings_validation():
    assert parse_range("1:16:64", "batch") == (1, 16, 64)
    assert parse_range("200", "hypotheses") == (200, 200, 200)
    for bad in ("1:x:3", "1:2"):
        with pytest.raises(InputError):
            parse_range(bad, "batch")
    for settings in (
        BuildSettings(batch=(0, 1, 2)),
        BuildSettings(precision="int8"),
        BuildSettings(optimization_level=9),
        BuildSettings(compute_capabilities=["6.1"]),
    ):
        with pytest.raises(InputError):
            settings.validate()


def test_jetson_release_parsing(tmp_path):
    (tmp_path / "rel").write_text("# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64\n")
    assert l4t_release(tmp_path / "rel") == "R36.4.0"
    assert l4t_release(tmp_path / "missing") is None


def test_runtime_and_engine_code_import_neither_torch_nor_onnx():
    code = (
        "import sys\n"
        "import posedeploy.runtime, posedeploy.runtime.onnxruntime_backend, posedeploy.runtime.tensorrt_backend\n"
        "import posedeploy.runtime.cuda_memory, posedeploy.engines.build, posedeploy.engines.manifest\n"
        "import posedeploy.artifacts, posedeploy.contract\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx'))\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_in_graph_noise_matches_the_reference_distribution(exports):
    """TensorRT ignores RNG seeds, so device noise is judged by distribution (here on ONNX Runtime)."""
    from posedeploy.data import evenly_spaced, load_dataset
    from posedeploy.parity import run_parity

    ckpt = exports["mgcn_lw"].parent / "mgcn_lw.pt"
    data = evenly_spaced(load_dataset("synthetic", "test"), 24)
    report = run_parity(ckpt, exports["mgcn_lw"], data, hypotheses=200, noise_source="device")
    assert report.mode == "free" and report.passed, report.format()


def test_distribution_check_detects_a_wrong_noise_scale(exports):
    """The free-noise comparison fails when the deployed sampler's sigma is off by 2x."""
    from posedeploy.parity import ParityReport, _free
    from posedeploy.reference.sampler import PipelineModule, run_reference
    from posedeploy.runtime import MultiHypothesisLifter
    from posedeploy.training.checkpoint import load_checkpoint

    ckpt = load_checkpoint(exports["mgcn_lw"].parent / "mgcn_lw.pt")
    kp = np.random.default_rng(0).normal(scale=0.3, size=(24, 17, 2)).astype(np.float32)
    wrong = PipelineModule(ckpt.build_lifter(), ckpt.build_avg(), ckpt.config.alpha * 2)
    ref = run_reference(wrong, kp, hypotheses=200, seed=0)
    with MultiHypothesisLifter(exports["mgcn_lw"], noise="device") as lifter:
        dep = lifter(kp, hypotheses=200, units="m")
    report = ParityReport("free", "pipeline.rng.onnx", "fp32", "onnxruntime", "random", 24, 200, 0.0)
    _free(report, ref, dep, 200)
    assert not report.passed


def test_typing_policy():
    from types import SimpleNamespace

    from posedeploy.engines.flavour import TensorRT

    def fake(version, strong, fp16):
        module = SimpleNamespace(
            __version__=version,
            NetworkDefinitionCreationFlag=SimpleNamespace(**({"STRONGLY_TYPED": 1} if strong else {})),
            BuilderFlag=SimpleNamespace(**({"FP16": 0} if fp16 else {})),
        )
        return TensorRT("tensorrt", module)

    jetson = fake("10.3.0", strong=True, fp16=True)
    assert jetson.strongly_typed("auto") and not jetson.strongly_typed("weak")
    trt11 = fake("11.0.0", strong=True, fp16=False)
    assert trt11.strongly_typed("auto")
    with pytest.raises(InputError, match="no FP16 builder flag"):
        trt11.strongly_typed("weak")
    old = fake("8.6.1", strong=False, fp16=True)
    assert not old.strongly_typed("auto")
    with pytest.raises(InputError, match="cannot build strongly typed"):
        old.strongly_typed("strong")


def test_an_engine_manifest_missing_a_field_is_refused_in_one_line(tmp_path):
    from posedeploy.engines.manifest import FORMAT, FORMAT_VERSION, manifest_path

    plan = tmp_path / "pipeline.fp16.plan"
    plan.write_bytes(b"serialised engine")
    whole = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "precision": "fp16",
        "tensorrt": {"flavour": "tensorrt", "version": "10.13.0"},
        "target": {"compute_capabilities": ["9.0"]},
        "platform": {"arch": "x86_64"},
        "flags": {},
        "onnx": {"file": "pipeline.fp16.onnx", "sha256": "ab" * 32},
        "plan": {"file": plan.name, "sha256": sha256_file(plan), "bytes": plan.stat().st_size},
    }
    manifest_path(plan).write_text(json.dumps(whole))
    assert read_engine_manifest(plan).onnx.file == "pipeline.fp16.onnx"
    for key in ("onnx", "tensorrt", "plan", "target", "platform", "flags", "precision"):
        manifest_path(plan).write_text(json.dumps({k: v for k, v in whole.items() if k != key}))
        with pytest.raises(ArtifactError, match=f"'{key}'.*edited or damaged, rebuild the engine"):
            read_engine_manifest(plan)
    manifest_path(plan).write_text(json.dumps({**whole, "onnx": {"file": 3, "sha256": "ab"}}))
    with pytest.raises(ArtifactError, match="'onnx.file' is 3"):
        read_engine_manifest(plan)
    # a version that is not one, in a version-compatible engine: a mismatch, not a ValueError
    odd = _manifest(tensorrt={"version": "ten"}, flags={"version_compatible": True})
    assert any("built with tensorrt ten" in m for m in mismatches(odd, _machine()))
