"""The report of ``posedeploy deploy``: DIR/report.json as typed records, and DIR/REPORT.md, the same
for people."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from posedeploy.bench.report import SweepSettings
from posedeploy.deploy_folder import FORMAT
from posedeploy.engines.manifest import Target, TensorRTInfo
from posedeploy.parity import ParityReport
from posedeploy.records import OPTIONAL, Record

FORMAT_VERSION = 2  # 2: REPORT.md listed in 'files' with its hash


@dataclass(frozen=True)
class DeployedFile:
    sha256: str
    bytes: int
    precision: str | None = field(default=None, metadata=OPTIONAL)


# Each step reports its status (done, skipped with a reason, failed with an error), what it made, and
# its seconds; the fields of a step that did not finish are absent.


@dataclass(kw_only=True)
class ExportStep(Record):
    status: str
    error: str | None = field(default=None, metadata=OPTIONAL)
    folder: str | None = field(default=None, metadata=OPTIONAL)
    opset: int | None = field(default=None, metadata=OPTIONAL)
    files: dict[str, DeployedFile] | None = field(default=None, metadata=OPTIONAL)
    seconds: float = 0.0


@dataclass(kw_only=True)
class EngineStep(Record):
    status: str
    reason: str | None = field(default=None, metadata=OPTIONAL)
    error: str | None = field(default=None, metadata=OPTIONAL)
    runnable_here: bool | None = field(default=None, metadata=OPTIONAL)
    tensorrt: TensorRTInfo | None = field(default=None, metadata=OPTIONAL)
    target: Target | None = field(default=None, metadata=OPTIONAL)
    build_seconds: float | None = field(default=None, metadata=OPTIONAL)
    files: dict[str, DeployedFile] | None = field(default=None, metadata=OPTIONAL)
    seconds: float = 0.0


@dataclass(kw_only=True)
class ParityStep(Record):
    status: str
    error: str | None = field(default=None, metadata=OPTIONAL)
    runs: list[ParityReport] | None = field(default=None, metadata=OPTIONAL)
    engine_not_run: str | None = None  # why the engine has no parity figure, where one was built
    seconds: float = 0.0


@dataclass(frozen=True)
class BenchCell:
    label: str
    backend: str
    precision: str
    device: str
    batch: int
    hypotheses: int
    repeats: int
    frames_per_s: float
    hypotheses_per_s: float
    speedup_vs_torch: float | None
    p50_ms: float
    p99_ms: float


@dataclass(kw_only=True)
class BenchStep(Record):
    status: str
    error: str | None = field(default=None, metadata=OPTIONAL)
    settings: SweepSettings | None = field(default=None, metadata=OPTIONAL)
    results: list[BenchCell] | None = field(default=None, metadata=OPTIONAL)
    seconds: float = 0.0


@dataclass(kw_only=True)
class SequenceStep(Record):
    status: str
    error: str | None = field(default=None, metadata=OPTIONAL)
    name: str | None = field(default=None, metadata=OPTIONAL)
    activity: str | None = field(default=None, metadata=OPTIONAL)
    frames: int | None = field(default=None, metadata=OPTIONAL)
    fps: float | None = field(default=None, metadata=OPTIONAL)
    image_size: list[float] | None = field(default=None, metadata=OPTIONAL)
    backend: str | None = field(default=None, metadata=OPTIONAL)
    hypotheses: int | None = field(default=None, metadata=OPTIONAL)
    mpjpe_mm: float | None = field(default=None, metadata=OPTIONAL)
    best_of_s_mpjpe_mm: float | None = field(default=None, metadata=OPTIONAL)
    mean_spread_mm: float | None = field(default=None, metadata=OPTIONAL)
    pictures: list[str] | None = field(default=None, metadata=OPTIONAL)
    pictures_skipped: str | None = None
    seconds: float = 0.0


@dataclass(kw_only=True)
class DeploySteps(Record):
    export: ExportStep | None = field(default=None, metadata=OPTIONAL)
    engine: EngineStep | None = field(default=None, metadata=OPTIONAL)
    parity: ParityStep | None = field(default=None, metadata=OPTIONAL)
    bench: BenchStep | None = field(default=None, metadata=OPTIONAL)
    sequence: SequenceStep | None = field(default=None, metadata=OPTIONAL)

    def items(self) -> list[tuple[str, Any]]:
        """(name, step) of the steps that ran, in order."""
        return [(name, step) for name in STEPS if (step := getattr(self, name)) is not None]


STEPS = ("export", "engine", "parity", "bench", "sequence")


@dataclass(frozen=True)
class DeployedCheckpoint:
    path: str
    sha256: str
    lifter: str
    avg: str | None
    alpha: float
    trained_on: str


@dataclass(frozen=True)
class DeployOptions:
    """How each step runs (recorded in the report as its 'settings')."""

    hypotheses: int | None = None  # None: the S the checkpoint's calibration recommends (else 200)
    parity_samples: int = 64  # built-in test poses, evenly spaced
    bench_batches: list[int] = field(default_factory=lambda: [1, 16])
    bench_seconds: float = 0.6  # per cell, all targets interleaved
    compute_capabilities: list[str] = field(default_factory=list)  # TensorRT for RTX targets
    picture_every: int = 2  # every N-th frame of the sequence becomes a picture
    pictures: bool = True
    seed: int = 0
    backend: str = "auto"  # of the lifted sequence: auto (the fastest here, measured) or one of runtime BACKENDS


@dataclass(kw_only=True)
class DeployReport(Record):
    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    posedeploy: str
    created: str
    folder: str
    checkpoint: DeployedCheckpoint
    settings: DeployOptions
    machine: dict[str, Any]
    steps: DeploySteps
    files: dict[str, DeployedFile] = field(default_factory=dict)
    passed: bool = False
    seconds: float = 0.0


def _machine(m: dict[str, Any]) -> str:
    gpus = ", ".join(f"{g.get('name')} (compute capability {g.get('compute_capability')})" for g in m.get("gpus", []))
    versions = ", ".join(
        f"{k} {m[k]}" for k in ("python", "numpy", "torch", "onnxruntime", "tensorrt", "tensorrt_rtx") if m.get(k)
    )
    return f"{m.get('cpu')}, {m.get('cores')} cores ({m.get('arch')}); GPU: {gpus or 'none'}; {versions}"


def _engine(step: EngineStep) -> list[str]:
    if step.status == "skipped":
        return [f"Skipped: {step.reason}."]
    if step.status == "failed" or step.tensorrt is None or step.target is None:
        return [f"FAILED: {step.error}"]
    t, target = step.tensorrt, step.target
    where = "runs on this machine" if step.runnable_here else "built for another GPU: not run here"
    return [
        f"{t.flavour} {t.version}, FP16 ({'strongly typed' if t.strongly_typed else 'FP16 flag'}), "
        f"compute capability {', '.join(target.compute_capabilities)}, built in {step.build_seconds} s; {where}."
    ]


def _parity(step: ParityStep) -> list[str]:
    if not step.runs:
        return [f"FAILED: {step.error}"]
    lines = [
        "| backend | graph | mean hypothesis error (mm) | delta best-of-S (mm) | delta aggregated pose (mm) "
        "| tolerance (mm) | |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in step.runs:
        t = r.task
        lines.append(
            f"| {r.backend} | {r.artifact} | {t['mean hypothesis error (mm)']:.4f} | "
            f"{t['delta best-of-S MPJPE (mm)']:.4f} | {t['delta aggregated-pose MPJPE (mm)']:.4f} | "
            f"{r.tolerance_mm} | {'pass' if r.passed else 'FAIL'} |"
        )
    first = step.runs[0]
    lines.append(
        f"\nSame inputs and noise on both sides: {first.samples} built-in test poses ({first.data}) x "
        f"{first.hypotheses} hypotheses."
    )
    if step.engine_not_run:
        lines.append(f"The TensorRT engine has no parity figure: {step.engine_not_run}.")
    return lines


def _bench(step: BenchStep, folder: str) -> list[str]:
    if step.status != "done" or step.results is None or step.settings is None:
        return [f"FAILED: {step.error}"]
    lines = [
        "| backend | B | S | p50 ms | p99 ms | frames/s | hypotheses/s | x PyTorch eager |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in step.results:
        speed = f"{c.speedup_vs_torch:.2f}" if c.speedup_vs_torch else "-"
        lines.append(
            f"| {c.label} | {c.batch} | {c.hypotheses} | {c.p50_ms:.2f} | {c.p99_ms:.2f} | "
            f"{c.frames_per_s:.1f} | {c.hypotheses_per_s:,.0f} | {speed} |"
        )
    s = step.settings
    lines.append(
        f"\nEvery target timed interleaved in the same run, at least {s.min_repeats} calls and "
        f"{s.min_seconds} s per cell: a short bench; `posedeploy bench --artifacts {folder}/artifacts` "
        "measures more."
    )
    return lines


def _sequence(step: SequenceStep) -> list[str]:
    if step.status != "done" or step.image_size is None or step.pictures is None:
        return [f"FAILED: {step.error}"]
    lines = [
        f"Built-in sequence `{step.name}` ({step.activity}, {step.frames} frames at {step.fps:g} Hz, "
        f"{step.image_size[0]:.0f} x {step.image_size[1]:.0f} px) lifted by the torch-free runtime "
        f"({step.backend}, S={step.hypotheses}): MPJPE of the mean pose {step.mpjpe_mm:.1f} mm, "
        f"best-of-{step.hypotheses} {step.best_of_s_mpjpe_mm:.1f} mm, mean per-joint spread "
        f"{step.mean_spread_mm:.1f} mm. Poses and spreads: `sequence/lifted.npz`.",
    ]
    gifs = [p for p in step.pictures if p.endswith(".gif")]
    if gifs:
        lines.append(
            f"\n![the lifted sequence: 2D input, 3D pose from the front and the side, hypotheses coloured by "
            f"spread](sequence/{gifs[0]})"
        )
        lines.append(f"\n{len(step.pictures) - len(gifs)} PNG frames beside it in `sequence/`.")
    if step.pictures_skipped:
        lines.append(f"\n{step.pictures_skipped}")
    return lines


def _section(step: Any, render: Any, *args: Any) -> list[str]:
    return render(step, *args) if step is not None else ["Not reached."]


def render_markdown(report: DeployReport) -> str:
    c, steps = report.checkpoint, report.steps
    lines = [
        "# posedeploy deploy report",
        "",
        f"**{'PASSED' if report.passed else 'FAILED'}** in {report.seconds:.0f} s, {report.created}, "
        f"posedeploy {report.posedeploy}.",
        "",
        f"- Checkpoint: `{c.path}` ({c.lifter} + AVG {c.avg}, alpha {c.alpha}, trained on "
        f"{c.trained_on}), sha256 `{c.sha256[:16]}...`",
        f"- Machine: {_machine(report.machine)}",
        "",
        "## Steps",
        "",
        "| step | status | seconds |",
        "|---|---|---|",
        *[f"| {name} | {step.status} | {step.seconds:.1f} |" for name, step in steps.items()],
        "",
        "## Engine",
        "",
        *_section(steps.engine, _engine),
        "",
        "## Parity against the PyTorch reference",
        "",
        *_section(steps.parity, _parity),
        "",
        "## Speed",
        "",
        *_section(steps.bench, _bench, report.folder),
        "",
        "## A built-in sequence",
        "",
        *_section(steps.sequence, _sequence),
        "",
        "## Files",
        "",
        "| file | bytes | sha256 |",
        "|---|---|---|",
        *_files(report.files),
        "",
    ]
    return "\n".join(lines)


def _files(files: dict[str, DeployedFile]) -> list[str]:
    """One row per file, the sequence's PNG frames as one row (report.json lists each)."""
    rows = [
        f"| `{name}` | {f.bytes:,} | `{f.sha256[:16]}...` |" for name, f in files.items() if not name.endswith(".png")
    ]
    frames = [f for name, f in files.items() if name.endswith(".png")]
    if frames:
        rows.append(f"| {len(frames)} PNG frames in `sequence/` | {sum(f.bytes for f in frames):,} | in report.json |")
    return rows
