"""Streaming: frames arrive one at a time at a camera's rate and are lifted as they come: the
pipeline alone (one person), or PoseStream with several people (tracking, lifting, smoothing).

A frame's latency runs from its arrival to its result. When a result comes later than the next
frame, the frames that arrived meanwhile are dropped except the newest (what a live system does
to stay current); they are counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from posedeploy.bench.report import Stream, StreamLatency
from posedeploy.bench.targets import BackendTarget, Target
from posedeploy.errors import InputError

PERSON_WIDTH_PX = 400.0  # the people of a replayed feed stand this far apart


def _replay(fps: float, frames: int, process: Callable[[int], object]) -> tuple[list[float], int, float]:
    """Frames arrive every 1/fps s; ``process(k)`` handles frame k. Returns the latencies (s), the
    frames dropped and the seconds the replay took."""
    period = 1.0 / fps
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
        process(k)
        latencies.append(time.perf_counter() - arrival)
        k += 1
    return latencies, dropped, time.perf_counter() - start


def _record(
    label: str,
    fps: float,
    frames: int,
    hypotheses: int,
    replay: tuple[list[float], int, float],
    people: int | None = None,
) -> Stream:
    latencies, dropped, elapsed = replay
    ms = np.asarray(latencies) * 1e3
    p50, p99 = float(np.percentile(ms, 50)), float(np.percentile(ms, 99))
    return Stream(
        backend=label,
        fps=fps,
        frames=frames,
        hypotheses=hypotheses,
        processed=len(latencies),
        dropped=dropped,
        achieved_fps=len(latencies) / elapsed,
        latency_ms=StreamLatency(p50, p99, float(ms.max())),
        jitter_ms=p99 - p50,
        people=people,
    )


def _check(fps: float, frames: int, hypotheses: int) -> None:
    if not fps > 0 or frames < 1 or hypotheses < 1:
        raise InputError(f"streaming needs fps > 0, frames >= 1, hypotheses >= 1 (got {fps}, {frames}, {hypotheses})")


def run_stream(target: Target, fps: float, frames: int, hypotheses: int) -> Stream:
    """The pipeline alone, one frame of one person at a time."""
    _check(fps, frames, hypotheses)
    target.prepare(1, hypotheses)
    target.call()  # warm-up, not a frame
    return _record(target.label, fps, frames, hypotheses, _replay(fps, frames, lambda k: target.call()))


def people_feed(people: int, frames: int, seed: int = 0) -> tuple[np.ndarray, tuple[float, float]]:
    """(frames, people, 17, 2) pixels: built-in motion sequences side by side in one wide image, and
    that image's size."""
    from posedeploy.data.synthetic import SEQUENCE_FRAMES, generate

    poses = generate(people * SEQUENCE_FRAMES, seed=seed)
    pixels = poses.pixels().reshape(people, SEQUENCE_FRAMES, 17, 2)
    back_and_forth = np.concatenate([np.arange(SEQUENCE_FRAMES), np.arange(SEQUENCE_FRAMES - 2, 0, -1)])
    steps = back_and_forth[np.arange(frames) % len(back_and_forth)]
    feed = pixels[:, steps].transpose(1, 0, 2, 3) + np.arange(people)[None, :, None, None] * [PERSON_WIDTH_PX, 0]
    return feed, (1000.0 + PERSON_WIDTH_PX * (people - 1), 1000.0)


def run_people_stream(
    target: BackendTarget, artifacts: Path, fps: float, people: int, frames: int, hypotheses: int
) -> Stream:
    """PoseStream (tracking, one batched lift, smoothing) fed ``people`` at a camera's rate."""
    from posedeploy.runtime.stream import PoseStream

    _check(fps, frames, hypotheses)
    feed, size = people_feed(people, frames)
    with PoseStream(
        artifacts, size, fps=fps, hypotheses=hypotheses, backend=target.backend_name, precision=target.precision
    ) as stream:
        stream.push(feed[0])  # warm-up, not a frame
        replay = _replay(fps, frames, lambda k: stream.push(feed[k], frame=k + 1))
    return _record(target.label, fps, frames, hypotheses, replay, people)
