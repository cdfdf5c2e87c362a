"""The benchmark sweep: every (B, S) cell, every target, interleaved; statistics and fits.

Method:
- Per cell, every target is prepared and warmed up, then timed in rounds; in each round every
  target, in an order that rotates, makes one untimed call and ``BLOCK`` timed ones, so slow drifts
  of the machine (thermal, other load) fall on all targets alike, while one runtime's idle worker
  threads (ONNX Runtime and OpenMP spin for a while after a call) do not slow the next runtime's
  timed calls. A cell runs at least ``min_repeats`` timed calls per target and ``min_seconds``.
- Latency percentiles are per call; frames/s = B / p50, hypotheses/s = B * S / p50.
- Achieved GFLOP/s counts the pipeline's matrix-product FLOPs, B * (2 * AVG + 2 * S * lifter)
  (the export manifest's counts), against the peak of one large matrix product measured in the
  same run on the same device.
- Cost vs work: a least-squares line latency = a + b * (B * S) per target. A cliff is a cell whose
  cost per hypothesis is more than ``CLIFF`` above the cheapest cell with less work: scaling up
  should amortise overheads, never make each hypothesis dearer.
- Peak host memory per target and cell: the process's high-water mark (VmHWM, reset through
  /proc/self/clear_refs on Linux) over one extra call.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np

from posedeploy import __version__
from posedeploy.artifacts import Flops
from posedeploy.bench.report import BenchReport, Cell, Cliff, Fit, Latency, Peak, SweepSettings
from posedeploy.bench.targets import TORCH_PATHS, Target
from posedeploy.errors import InputError
from posedeploy.progress import progress

CLIFF = 0.30  # relative rise of the cost per hypothesis that counts as a cliff
BLOCK = 3  # timed calls per target and round


def _percentiles(seconds: list[float]) -> Latency:
    ms = np.asarray(seconds) * 1e3
    p50, p90, p99 = (float(np.percentile(ms, q)) for q in (50, 90, 99))
    return Latency(p50, p90, p99, float(ms.mean()), float(ms.min()))


def _rss_kb(field_name: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_host_mb(target: Target) -> float | None:
    """Resident-memory high-water mark over one call, in MB (Linux; None elsewhere)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
    except OSError:
        return None
    target.call()
    hwm = _rss_kb("VmHWM")
    return None if hwm is None else hwm / 1024


def measure_peak_gflops(device: str = "cpu", size: int = 2048, repeats: int = 5) -> Peak:
    """GFLOP/s of one large float32 matrix product on ``device`` (best of ``repeats``)."""
    if device == "cpu":
        a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
        b = np.random.default_rng(1).standard_normal((size, size), dtype=np.float32)
        a @ b
        best = min(_timed(lambda: a @ b) for _ in range(repeats))
        return Peak("cpu", 2 * size**3 / best / 1e9, f"numpy float32 {size}x{size} matmul")
    import torch

    m = torch.randn(size * 4, size * 4, device=device)
    m @ m
    torch.cuda.synchronize()

    def product() -> None:
        m @ m
        torch.cuda.synchronize()

    best = min(_timed(product) for _ in range(repeats))
    return Peak(device, 2 * (size * 4) ** 3 / best / 1e9, f"torch float32 {size * 4}^2 matmul")


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def machine_summary() -> dict[str, Any]:
    from posedeploy.engines.machine import cpu_model, describe_machine

    summary: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "arch": platform.machine(),
        "python": platform.python_version(),
        "posedeploy": __version__,
    }

    info = describe_machine()
    summary["gpus"] = [asdict(g) for g in info.gpus]
    summary["l4t"] = info.l4t
    for module in ("numpy", "onnxruntime", "torch"):
        try:
            summary[module] = __import__(module).__version__
        except ImportError:
            continue
    from posedeploy.runtime.openvino_backend import openvino_version

    if openvino_version():
        summary["openvino"] = openvino_version()
    summary.update(info.tensorrt)
    return summary


def fit_linear(cells: list[Cell]) -> Fit:
    """latency_p50 = a + b * (B * S): slope in microseconds per hypothesis, intercept in ms."""
    work = np.array([c.batch * c.hypotheses for c in cells], dtype=float)
    latency = np.array([c.latency_ms.p50 for c in cells])
    if len(cells) < 2 or np.ptp(work) == 0:
        return Fit(None, None, None, [])
    slope, intercept = np.polyfit(work, latency, 1)
    predicted = intercept + slope * work
    ss_res, ss_tot = float(((latency - predicted) ** 2).sum()), float(((latency - latency.mean()) ** 2).sum())
    per_hypothesis = latency / work
    cliffs = []
    for i, c in enumerate(cells):
        cheaper = per_hypothesis[work < work[i]]
        if cheaper.size and per_hypothesis[i] > (1 + CLIFF) * cheaper.min():
            cliffs.append(Cliff(c.batch, c.hypotheses, float(per_hypothesis[i] / cheaper.min() - 1)))
    return Fit(float(slope * 1e3), float(intercept), 1 - ss_res / ss_tot if ss_tot > 0 else 1.0, cliffs)


def run_sweep(
    targets: list[Target],
    settings: SweepSettings,
    flops: Flops | None = None,
    peaks: dict[str, Peak] | None = None,
    show_progress: bool = True,
) -> BenchReport:
    """Time every target on every (B, S) cell; returns the report (see docs/PERFORMANCE.md)."""
    settings.validate()
    if not targets:
        raise InputError("nothing to benchmark: no backend could be loaded")
    peaks = peaks or {}
    cells = [(b, s) for s in settings.hypotheses for b in settings.batches]
    results: list[Cell] = []
    with progress(len(cells) * len(targets), "bench", enabled=show_progress) as advance:
        for b, s in cells:
            times, device = _time_cell(targets, settings, b, s)
            for t in targets:
                results.append(_cell(t, b, s, times[t.label], device[t.label], flops, peaks))
                advance(1)
    baseline = {(c.batch, c.hypotheses): c for c in results if (c.backend, c.precision) == ("torch", "fp32")}
    torch_paths: dict[tuple[int, int], list[Cell]] = {}
    for c in (c for c in results if c.backend in TORCH_PATHS):
        torch_paths.setdefault((c.batch, c.hypotheses), []).append(c)
    for c in results:
        base, paths = baseline.get((c.batch, c.hypotheses)), torch_paths.get((c.batch, c.hypotheses), [])
        c.speedup_vs_torch = base.latency_ms.p50 / c.latency_ms.p50 if base else None
        if len(paths) > 1:  # PyTorch paths besides the baseline were timed: the fastest of them all
            best = min(paths, key=lambda p: p.latency_ms.p50)
            c.speedup_vs_best_torch, c.best_torch = best.latency_ms.p50 / c.latency_ms.p50, best.label
    labels = dict.fromkeys(c.label for c in results)
    fits = {label: fit_linear([c for c in results if c.label == label]) for label in labels}
    return BenchReport(settings=settings, flops=flops, peaks=peaks, results=results, fits=fits)


def _time_cell(
    targets: list[Target], settings: SweepSettings, b: int, s: int
) -> tuple[dict[str, list[float]], dict[str, list[dict[str, float]]]]:
    """Every target's call times (and device times, where it measures them) on one (B, S), interleaved."""
    for t in targets:
        t.prepare(b, s)
        for _ in range(settings.warmup):
            t.call()
    times: dict[str, list[float]] = {t.label: [] for t in targets}
    device: dict[str, list[dict[str, float]]] = {t.label: [] for t in targets}
    started, rounds = time.monotonic(), 0
    while rounds * BLOCK < settings.max_repeats and (
        rounds * BLOCK < settings.min_repeats or time.monotonic() - started < settings.min_seconds
    ):
        order = targets[rounds % len(targets) :] + targets[: rounds % len(targets)]
        for t in order:
            t.call()  # absorbs the previous target's lingering threads
            for _ in range(BLOCK):
                times[t.label].append(t.call())
                split = t.device_times()
                if split:
                    device[t.label].append(split)
        rounds += 1
    return times, device


def _cell(
    t: Target,
    b: int,
    s: int,
    seconds: list[float],
    device: list[dict[str, float]],
    flops: Flops | None,
    peaks: dict[str, Peak],
) -> Cell:
    lat = _percentiles(seconds)
    p50_s = lat.p50 / 1e3
    cell = Cell(
        backend=t.name,
        precision=t.precision,
        device=t.device,
        label=t.label,
        batch=b,
        hypotheses=s,
        repeats=len(seconds),
        latency_ms=lat,
        frames_per_s=b / p50_s,
        hypotheses_per_s=b * s / p50_s,
        peak_host_mb=peak_host_mb(t),
    )
    if device:
        cell.device_ms = {k: float(np.median([d[k] for d in device])) for k in device[0]}
    if flops:
        work = b * (2 * flops.avg_per_pose + 2 * s * flops.lifter_per_pose)
        cell.gflops = work / p50_s / 1e9
        peak = peaks.get("cuda" if t.device.startswith("cuda") else "cpu")
        if peak:
            cell.fraction_of_peak = cell.gflops / peak.gflops
    return cell
