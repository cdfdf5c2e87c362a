"""The manifests and reports are typed records; the JSON each writes is the JSON written before they
were (files kept from 2026-12-07 in tests/fixtures/formats): each reads back field for field, and
writes back the same document."""

import json
from pathlib import Path

import pytest

from posedeploy.artifacts import ExportManifest
from posedeploy.engines.manifest import EngineManifest
from posedeploy.records import RecordError, from_json

FORMATS = Path(__file__).parent / "fixtures" / "formats"


def _load(name: str) -> dict:
    return json.loads((FORMATS / name).read_text())


@pytest.mark.parametrize(
    "name, record", [("export_manifest.json", ExportManifest), ("engine_manifest.json", EngineManifest)]
)
def test_todays_files_read_and_write_back_unchanged(name, record):
    data = _load(name)
    read = record.from_json(data)
    assert read.to_json() == data and list(read.to_json()) == list(data)  # the same keys, in the same order


def test_readers_use_attributes():
    export = ExportManifest.from_json(_load("export_manifest.json"))
    assert export.config.lifter == "mgcn_lw" and export.config.alpha == 0.01 and export.opset == 17
    assert export.files["pipeline.onnx"].inputs["noise"].shape == ["B", "S", 2, 17, 2]
    assert export.flops is not None and export.flops.lifter_per_pose == 5_145_798
    engine = EngineManifest.from_json(_load("engine_manifest.json"))
    assert engine.tensorrt.flavour == "tensorrt_rtx" and engine.target.compute_capabilities == ["8.9"]
    assert engine.plan.bytes == 7_372_476 and engine.timing_cache is None


def test_a_manifest_from_before_the_optional_sections_still_reads():
    data = _load("export_manifest.json")
    for key in ("flops", "memory", "int8", "triton", "contract", "versions", "created", "opset"):
        del data[key]
    read = ExportManifest.from_json(data)
    assert read.flops is None and read.memory is None and read.to_json() == data


@pytest.mark.parametrize(
    "change, message",
    [
        ({"config": {"lifter": "mgcn_lw", "joints": []}}, "'config.alpha' is missing"),
        (
            {"files": {"a.onnx": {"sha256": "x", "bytes": 0, "precision": "fp32"}}},
            "'files.a.onnx.bytes' is 0, not a number > 0",
        ),
        ({"opset": "17"}, "'opset' is .17., not a whole number"),
        ({"checkpoint": ["x"]}, "'checkpoint' is"),
    ],
)
def test_a_wrong_field_is_named(change, message):
    with pytest.raises(RecordError, match=message):
        from_json(ExportManifest, {**_load("export_manifest.json"), **change})


def test_todays_deploy_report_reads_and_writes_back_unchanged():
    from posedeploy.deploy_report import DeployReport

    data = _load("deploy_report.json")
    report = DeployReport.from_json(data)
    assert report.to_json() == data
    assert report.steps.parity.runs[0].outputs["sigma"].max_abs < 1e-8 and report.steps.engine.status == "skipped"
    assert report.steps.bench.settings.batches == [1, 16] and report.files["REPORT.md"].bytes > 0


def test_todays_bench_report_reads_and_writes_back_unchanged():
    from posedeploy.bench.report import BenchReport

    data = _load("bench_report.json")
    report = BenchReport.from_json(data)
    assert report.to_json() == data
    assert report.results[0].latency_ms.p50 > 0 and report.streaming[0].dropped == 0 and report.peaks["cpu"].gflops > 0


@pytest.mark.parametrize("name", ["eval_report.json", "eval_comparison.json"])
def test_todays_eval_reports_read_and_write_back_unchanged(name):
    from posedeploy.reference.reports import EvalComparison, EvalReport

    data = _load(name)
    record = EvalComparison if "runs" in data else EvalReport
    read = record.from_json(data)
    assert read.to_json() == data  # written before the format was named: read as it is, written as it was
    runs = read.runs if isinstance(read, EvalComparison) else [read]
    assert runs[0].settings.lifter == "mgcn_lw" and runs[0].means["single"]["mpjpe"] > 0
    assert runs[0].extra.best_of_s_mpjpe["1"] >= runs[0].extra.best_of_s_mpjpe["8"]
