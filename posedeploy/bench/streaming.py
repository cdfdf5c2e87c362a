"""Streaming: frames arrive one at a time at a camera's rate and are lifted as they come.

A frame's latency runs from its arrival to its result. When a result comes later than the next
frame, the frames that arrived meanwhile are dropped except the newest (what a live system does
to stay current); they are counted.
"""

from __future__ import annotations

import time

import numpy as np

from posedeploy.bench.report import Stream, StreamLatency
from posedeploy.bench.targets import Target
from posedeploy.errors import InputError


def run_stream(target: Target, fps: float, frames: int, hypotheses: int) -> Stream:
    if not fps > 0 or frames < 1 or hypotheses < 1:
        raise InputError(f"streaming needs fps > 0, frames >= 1, hypotheses >= 1 (got {fps}, {frames}, {hypotheses})")
    period = 1.0 / fps
    target.prepare(1, hypotheses)
    target.call()  # warm-up, not a frame
    latencies, dropped, k = [], 0, 0
    start = time.perf_counter()
    while k < frames:
        arrival = start + k * period
        wait = arrival - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        newest = min(frames - 1, int((time.perf_counter() - start) / period))
        if newest > k:  # we are late: skip to the newest frame
            dropped += newest - k
            k = newest
            arrival = start + k * period
        target.call()
        latencies.append(time.perf_counter() - arrival)
        k += 1
    elapsed = time.perf_counter() - start
    ms = np.asarray(latencies) * 1e3
    p50, p99 = float(np.percentile(ms, 50)), float(np.percentile(ms, 99))
    return Stream(
        backend=target.label,
        fps=fps,
        frames=frames,
        hypotheses=hypotheses,
        processed=len(latencies),
        dropped=dropped,
        achieved_fps=len(latencies) / elapsed,
        latency_ms=StreamLatency(p50, p99, float(ms.max())),
        jitter_ms=p99 - p50,
    )
