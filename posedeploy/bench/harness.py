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
from dataclasses import asdict, dataclass, field

import numpy as np

from posedeploy import __version__
from posedeploy.artifacts import Flops
from posedeploy.bench.targets import Target
from posedeploy.contract import check_request
from posedeploy.errors import InputError
from posedeploy.progress import progress
from posedeploy.records import to_json

SCHEMA = "posedeploy.bench/1"
CLIFF = 0.30  # relative rise of the cost per hypothesis that counts as a cliff
BLOCK = 3  # timed calls per target and round


@dataclass
class BenchSettings:
    batches: list[int] = field(default_factory=lambda: [1, 16, 64])
    hypotheses: list[int] = field(default_factory=lambda: [1, 50, 200])
    warmup: int = 3
    min_repeats: int = 10
    min_seconds: float = 2.0
    max_repeats: int = 1000

    def validate(self) -> None:
        for name in ("batches", "hypotheses"):
            values = getattr(self, name)
            if not values or any(not isinstance(v, int) or v < 1 for v in values):
                raise InputError(f"{name} must be whole numbers >= 1, got {values}")
        if self.min_repeats < 1 or self.warmup < 0 or self.min_seconds < 0:
            raise InputError("repeats must be >= 1, warm-up and seconds >= 0")
        for b in self.batches:  # every call draws its B x S noise and keeps its hypotheses
            for s in self.hypotheses:
                check_request(b, s, keep_hypotheses=True, noise_per_call=True)


def _percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1e3
    return {
        "p50": float(np.percentile(ms, 50)),
        "p90": float(np.percentile(ms, 90)),
        "p99": float(np.percentile(ms, 99)),
        "mean": float(ms.mean()),
        "min": float(ms.min()),
    }


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


def measure_peak_gflops(device: str = "cpu", size: int = 2048, repeats: int = 5) -> dict:
    """GFLOP/s of one large float32 matrix product on ``device`` (best of ``repeats``)."""
    if device == "cpu":
        a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
        b = np.random.default_rng(1).standard_normal((size, size), dtype=np.float32)
        a @ b
        best = min(_timed(lambda: a @ b) for _ in range(repeats))
        return {"device": "cpu", "gflops": 2 * size**3 / best / 1e9, "method": f"numpy float32 {size}x{size} matmul"}
    import torch

    a = torch.randn(size * 4, size * 4, device=device)
    a @ a
    torch.cuda.synchronize()
    best = min(_timed(lambda: (a @ a, torch.cuda.synchronize())) for _ in range(repeats))
    return {
        "device": device,
        "gflops": 2 * (size * 4) ** 3 / best / 1e9,
        "method": f"torch float32 {size * 4}^2 matmul",
    }


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def machine_summary() -> dict:
    from posedeploy.engines.machine import cpu_model, describe_machine

    summary = {
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


def fit_linear(cells: list[dict]) -> dict:
    """latency_p50 = a + b * (B * S): slope in microseconds per hypothesis, intercept in ms."""
    work = np.array([c["batch"] * c["hypotheses"] for c in cells], dtype=float)
    latency = np.array([c["latency_ms"]["p50"] for c in cells])
    if len(cells) < 2 or np.ptp(work) == 0:
        return {"slope_us_per_hypothesis": None, "intercept_ms": None, "r2": None, "cliffs": []}
    slope, intercept = np.polyfit(work, latency, 1)
    predicted = intercept + slope * work
    ss_res, ss_tot = float(((latency - predicted) ** 2).sum()), float(((latency - latency.mean()) ** 2).sum())
    per_hypothesis = latency / work
    cliffs = []
    for i, c in enumerate(cells):
        cheaper = per_hypothesis[work < work[i]]
        if cheaper.size and per_hypothesis[i] > (1 + CLIFF) * cheaper.min():
            cliffs.append(
                {
                    "batch": c["batch"],
                    "hypotheses": c["hypotheses"],
                    "excess": float(per_hypothesis[i] / cheaper.min() - 1),
                }
            )
    return {
        "slope_us_per_hypothesis": float(slope * 1e3),
        "intercept_ms": float(intercept),
        "r2": 1 - ss_res / ss_tot if ss_tot > 0 else 1.0,
        "cliffs": cliffs,
    }


def run_sweep(
    targets: list[Target],
    settings: BenchSettings,
    flops: Flops | None = None,
    peaks: dict[str, dict] | None = None,
    show_progress: bool = True,
) -> dict:
    """Time every target on every (B, S) cell; returns the report (see docs/PERFORMANCE.md)."""
    settings.validate()
    if not targets:
        raise InputError("nothing to benchmark: no backend could be loaded")
    cells = [(b, s) for s in settings.hypotheses for b in settings.batches]
    results = []
    with progress(len(cells) * len(targets), "bench", enabled=show_progress) as advance:
        for b, s in cells:
            for t in targets:
                t.prepare(b, s)
                for _ in range(settings.warmup):
                    t.call()
            times: dict[str, list[float]] = {t.label: [] for t in targets}
            device: dict[str, list[dict]] = {t.label: [] for t in targets}
            started, rounds = time.monotonic(), 0
            while rounds * BLOCK < settings.max_repeats and (
                rounds * BLOCK < settings.min_repeats or time.monotonic() - started < settings.min_seconds
            ):
                order = targets[rounds % len(targets) :] + targets[: rounds % len(targets)]
                for t in order:
                    t.call()  # absorbs the previous target's lingering threads
                    for _ in range(BLOCK):
                        times[t.label].append(t.call())
                        if t.device_times():
                            device[t.label].append(t.device_times())
                rounds += 1
            for t in targets:
                lat = _percentiles(times[t.label])
                p50_s = lat["p50"] / 1e3
                cell = {
                    "backend": t.name,
                    "precision": t.precision,
                    "device": t.device,
                    "label": t.label,
                    "batch": b,
                    "hypotheses": s,
                    "repeats": len(times[t.label]),
                    "latency_ms": lat,
                    "frames_per_s": b / p50_s,
                    "hypotheses_per_s": b * s / p50_s,
                    "peak_host_mb": peak_host_mb(t),
                }
                if device[t.label]:
                    keys = device[t.label][0].keys()
                    cell["device_ms"] = {k: float(np.median([d[k] for d in device[t.label]])) for k in keys}
                if flops:
                    work = b * (2 * flops.avg_per_pose + 2 * s * flops.lifter_per_pose)
                    cell["gflops"] = work / p50_s / 1e9
                    peak = (peaks or {}).get("cuda" if t.device.startswith("cuda") else "cpu")
                    if peak:
                        cell["fraction_of_peak"] = cell["gflops"] / peak["gflops"]
                results.append(cell)
                advance(1)
    baseline = {(c["batch"], c["hypotheses"]): c for c in results if c["backend"] == "torch"}
    for c in results:
        base = baseline.get((c["batch"], c["hypotheses"]))
        c["speedup_vs_torch"] = base["latency_ms"]["p50"] / c["latency_ms"]["p50"] if base else None
    fits = {
        label: fit_linear([c for c in results if c["label"] == label])
        for label in dict.fromkeys(c["label"] for c in results)
    }
    return {
        "schema": SCHEMA,
        "settings": asdict(settings),
        "flops": to_json(flops),
        "peaks": peaks or {},
        "results": results,
        "fits": fits,
    }
