"""The report of ``posedeploy bench`` (``--json``): typed records, and the table printed for people."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from posedeploy.artifacts import Flops
from posedeploy.contract import check_request
from posedeploy.errors import InputError
from posedeploy.records import OPTIONAL, Record

SCHEMA = "posedeploy.bench/1"


@dataclass(frozen=True)
class SweepSettings:
    """Which (B, S) cells, and how long each is timed (recorded in the report as its 'settings')."""

    batches: list[int] = field(default_factory=lambda: [1, 16, 64])
    hypotheses: list[int] = field(default_factory=lambda: [1, 50, 200])
    warmup: int = 3
    min_repeats: int = 10
    min_seconds: float = 2.0
    max_repeats: int = 1000

    def validate(self) -> None:
        for name in ("batches", "hypotheses"):
            values = getattr(self, name)
            if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
                raise InputError(f"{name} must be whole numbers >= 1, got {values}")
        if self.min_repeats < 1 or self.warmup < 0 or self.min_seconds < 0:
            raise InputError("repeats must be >= 1, warm-up and seconds >= 0")
        for b in self.batches:  # every call draws its B x S noise and keeps its hypotheses
            for s in self.hypotheses:
                check_request(b, s, keep_hypotheses=True, noise_per_call=True)


@dataclass(frozen=True)
class Latency:
    """Milliseconds per call."""

    p50: float
    p90: float
    p99: float
    mean: float
    min: float


@dataclass
class Cell:
    """One target on one (B, S): its latency, throughput, memory and FLOP rate."""

    backend: str
    precision: str
    device: str
    label: str
    batch: int
    hypotheses: int
    repeats: int
    latency_ms: Latency
    frames_per_s: float
    hypotheses_per_s: float
    peak_host_mb: float | None
    device_ms: dict[str, float] | None = field(default=None, metadata=OPTIONAL)  # compute and transfers, on a GPU
    gflops: float | None = field(default=None, metadata=OPTIONAL)
    fraction_of_peak: float | None = field(default=None, metadata=OPTIONAL)
    speedup_vs_torch: float | None = None  # against PyTorch eager FP32, the baseline
    # against the fastest PyTorch path on this (B, S), where more than eager FP32 was timed (torch-compile, FP16)
    speedup_vs_best_torch: float | None = field(default=None, metadata=OPTIONAL)
    best_torch: str | None = field(default=None, metadata=OPTIONAL)


@dataclass(frozen=True)
class Peak:
    device: str
    gflops: float
    method: str


@dataclass(frozen=True)
class Cliff:
    batch: int
    hypotheses: int
    excess: float  # how much dearer each hypothesis is than in the cheapest cell with less work


@dataclass(frozen=True)
class Fit:
    """latency_p50 = intercept + slope * (B * S), per target."""

    slope_us_per_hypothesis: float | None
    intercept_ms: float | None
    r2: float | None
    cliffs: list[Cliff]


@dataclass(frozen=True)
class StreamLatency:
    p50: float
    p99: float
    max: float


@dataclass(frozen=True)
class Stream:
    """Frames at a camera's rate, lifted as they arrive (posedeploy/bench/streaming.py): the pipeline
    alone, or PoseStream with ``people`` in each frame."""

    backend: str
    fps: float
    frames: int
    hypotheses: int
    processed: int
    dropped: int
    achieved_fps: float
    latency_ms: StreamLatency
    jitter_ms: float
    people: int | None = field(default=None, metadata=OPTIONAL)


@dataclass(frozen=True)
class ArtifactsRef:
    path: str
    checkpoint_sha256: str


@dataclass(kw_only=True)
class BenchReport(Record):
    schema: str = SCHEMA
    settings: SweepSettings
    flops: Flops | None
    peaks: dict[str, Peak]
    results: list[Cell]
    fits: dict[str, Fit]
    streaming: list[Stream] | None = field(default=None, metadata=OPTIONAL)
    model: str | None = field(default=None, metadata=OPTIONAL)
    machine: dict[str, Any] | None = field(default=None, metadata=OPTIONAL)
    artifacts: ArtifactsRef | None = field(default=None, metadata=OPTIONAL)


def format_report(report: BenchReport) -> str:
    stronger = any(c.speedup_vs_best_torch for c in report.results)
    lines = [
        f"{'backend':<26}{'B':>4}{'S':>5}{'p50 ms':>10}{'p99 ms':>10}{'frames/s':>10}{'hyp/s':>11}"
        f"{'GFLOP/s':>9}{'of peak':>8}{'x torch':>8}" + (f"{'x best':>8}" if stronger else "")
    ]
    for c in report.results:
        peak = f"{c.fraction_of_peak:.0%}" if c.fraction_of_peak is not None else "-"
        speed = f"{c.speedup_vs_torch:.2f}" if c.speedup_vs_torch else "-"
        gflops = f"{c.gflops:.1f}" if c.gflops is not None else "-"
        best = (f"{c.speedup_vs_best_torch:>8.2f}" if c.speedup_vs_best_torch else f"{'-':>8}") if stronger else ""
        lines.append(
            f"{c.label:<26}{c.batch:>4}{c.hypotheses:>5}{c.latency_ms.p50:>10.2f}{c.latency_ms.p99:>10.2f}"
            f"{c.frames_per_s:>10.1f}{c.hypotheses_per_s:>11.0f}{gflops:>9}{peak:>8}{speed:>8}{best}"
        )
    lines.append("x torch: p50 against PyTorch eager FP32 (the baseline) on the same B and S")
    if stronger:
        fastest = sorted({c.best_torch for c in report.results if c.best_torch})
        lines.append(f"x best: against the fastest PyTorch path on the same B and S ({', '.join(fastest)})")
    for device, p in report.peaks.items():
        lines.append(f"peak {device}: {p.gflops:.1f} GFLOP/s ({p.method})")
    for label, fit in report.fits.items():
        if fit.slope_us_per_hypothesis is not None:
            cliffs = ", ".join(f"B={c.batch} S={c.hypotheses} +{c.excess:.0%}" for c in fit.cliffs) or "none"
            lines.append(
                f"{label}: {fit.intercept_ms:.2f} ms + {fit.slope_us_per_hypothesis:.2f} us x B*S "
                f"(R^2 {fit.r2:.3f}); cliffs: {cliffs}"
            )
    for s in report.streaming or []:
        lines.append(
            f"stream {s.backend}{_people(s.people)} at {s.fps:g} fps, S={s.hypotheses}: "
            f"latency p50 {s.latency_ms.p50:.1f} ms, p99 {s.latency_ms.p99:.1f} ms, jitter {s.jitter_ms:.1f} ms, "
            f"dropped {s.dropped}/{s.frames}"
        )
    return "\n".join(lines)


def _people(people: int | None) -> str:
    return "" if people is None else f" PoseStream, {people} {'person' if people == 1 else 'people'}"
