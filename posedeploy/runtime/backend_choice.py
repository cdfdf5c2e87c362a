"""``--backend auto``: the fastest installed backend for an artifact on this machine.

Which backend wins depends on the lifter and the CPU (OpenVINO runs HTNet's pipeline 1.35x faster
than ONNX Runtime on our 2-core CPU, MGCN-lw's 0.5-1.1x as fast), so it is measured, not assumed:
each installed backend that can load the pipeline lifts one pose with 200 hypotheses a few times,
and the one with the lowest median wins. The result is cached per machine, artifact, precision,
noise source and thread count, so the probe runs once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from posedeploy.artifacts import Artifacts
from posedeploy.contract import draw_noise
from posedeploy.errors import InputError, MissingDependencyError, PoseDeployError
from posedeploy.extras import installed
from posedeploy.files import cache_root, write_json
from posedeploy.runtime.backend import Backend
from posedeploy.runtime.loading import AUTO, BACKENDS, REGISTRY, LoadOptions, load_backend

logger = logging.getLogger(__name__)

PROBE_HYPOTHESES = 200
PROBE_WARMUP, PROBE_ROUNDS, PROBE_CALLS = 5, 5, 3
CACHE_FILE = "backend_choice.json"


# Names the backend 'auto' takes without measuring (a fleet pinned to one, a test run per backend).
FORCE_ENV = "POSEDEPLOY_BACKEND"


@dataclass
class Choice:
    backend: str
    probe_ms: dict[str, float]  # median latency of each backend that loaded
    cached: bool
    forced: bool = False

    def describe(self) -> str:
        if self.forced:
            return f"backend auto: {self.backend} (set by {FORCE_ENV})"
        times = ", ".join(f"{name} {ms:.2f} ms" for name, ms in sorted(self.probe_ms.items(), key=lambda kv: kv[1]))
        how = "cached probe" if self.cached else "probe"
        return f"backend auto: {self.backend} ({how}, 1 pose x {PROBE_HYPOTHESES} hypotheses: {times})"


def installed_backends() -> list[str]:
    return [name for name, kind in REGISTRY.items() if any(installed(m) for m in kind.modules)]


def _versions() -> dict[str, str]:
    from importlib import metadata

    found = {}
    for dist in ("onnxruntime", "onnxruntime-gpu", "openvino", "tensorrt", "tensorrt-rtx"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return found


def cache_key(artifacts: Artifacts, precision: str, noise: str, threads: int | None) -> str:
    from posedeploy.engines.machine import cpu_model, describe_machine

    graphs = {name: entry.sha256 for name, entry in sorted(artifacts.manifest.files.items())}
    what = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "gpus": [g.name for g in describe_machine().gpus],
        "versions": _versions(),
        "graphs": graphs,
        "precision": precision,
        "noise": noise,
        "threads": threads,
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return {}  # no cache yet, or an unreadable one: probe again and rewrite it
    return cache if isinstance(cache, dict) else {}


def _probe_feed(names: list[str], hypotheses: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    feed = {"keypoints": rng.uniform(-0.5, 0.5, (1, 17, 2)).astype(np.float32)}
    if "noise" in names:
        feed["noise"] = draw_noise(rng, 1, hypotheses)
    else:
        feed["slots"] = np.zeros(hypotheses, np.float32)
    return feed


def probe(backends: dict[str, Backend], hypotheses: int = PROBE_HYPOTHESES) -> dict[str, float]:
    """Median milliseconds of one call lifting one pose with ``hypotheses`` hypotheses, per backend.

    The backends take turns, round after round, after a warm-up each, so that a passing load or a
    slow start does not decide the choice: timed one after the other with two warm-up calls, ONNX
    Runtime on the shipped MGCN-lw once read 28.7 ms where the bench measured 17.2 ms, and lost."""
    feeds = {name: _probe_feed([spec.name for spec in b.inputs], hypotheses) for name, b in backends.items()}
    for name, backend in backends.items():
        for _ in range(PROBE_WARMUP):
            backend.run(feeds[name])
    times: dict[str, list[float]] = {name: [] for name in backends}
    for _ in range(PROBE_ROUNDS):
        for name, backend in backends.items():
            for _ in range(PROBE_CALLS):
                start = time.perf_counter()
                backend.run(feeds[name])
                times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(t) for name, t in times.items()}


def _cached_choice(hit: object, candidates: list[str]) -> Choice | None:
    """A cache entry as a Choice, if it is one this version wrote for a backend still installed."""
    if not isinstance(hit, dict) or hit.get("backend") not in candidates or not isinstance(hit.get("probe_ms"), dict):
        return None
    timings = hit["probe_ms"]
    numbers = all(
        isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
        for k, v in timings.items()
    )
    if not numbers or hit["backend"] not in timings:
        return None  # edited or damaged: measure again
    return Choice(hit["backend"], {k: float(v) for k, v in timings.items()}, cached=True)


def open_backend(
    artifacts: Artifacts, backend: str = AUTO, options: LoadOptions | None = None, cache_dir: Path | None = None
) -> Backend:
    """The verified pipeline of an artifact directory, loaded on ``backend``, or on the fastest
    here for 'auto' (a cached choice that can no longer load it is measured again)."""
    options = options or LoadOptions()
    if backend != AUTO:
        return load_backend(artifacts, backend, options)
    choice = choose_backend(artifacts, options.precision, options.noise, options.threads, cache_dir)
    try:
        loaded = load_backend(artifacts, choice.backend, options)
    except PoseDeployError as exc:
        if not choice.cached:
            raise
        logger.info(
            f"backend auto: the cached choice, {choice.backend}, cannot load this artifact any more ({exc}); "
            "measuring again"
        )
        choice = choose_backend(artifacts, options.precision, options.noise, options.threads, cache_dir, refresh=True)
        loaded = load_backend(artifacts, choice.backend, options)
    logger.info(choice.describe())
    return loaded


def choose_backend(
    artifacts: Artifacts,
    precision: str = "fp32",
    noise: str = "host",
    threads: int | None = None,
    cache_dir: Path | None = None,
    refresh: bool = False,
) -> Choice:
    """The fastest backend that loads this artifact's pipeline here, measured once and cached
    (``refresh``: measured again whatever the cache holds)."""
    forced = os.environ.get(FORCE_ENV)
    if forced:
        if forced not in BACKENDS:
            raise InputError(
                f"{FORCE_ENV}={forced!r} names no backend; expected one of {', '.join(BACKENDS)}, or unset it"
            )
        return Choice(forced, {}, cached=False, forced=True)
    candidates = installed_backends()
    path = (cache_dir or cache_root()) / CACHE_FILE
    key = cache_key(artifacts, precision, noise, threads)
    cache = _read_cache(path)
    cached = None if refresh else _cached_choice(cache.get(key), candidates)
    if cached is not None:
        return cached
    if not candidates:
        raise MissingDependencyError("onnxruntime", "cpu", "Running an exported pipeline")
    loaded, failures = {}, []
    try:
        for name in candidates:
            try:
                backend = load_backend(artifacts, name, LoadOptions(precision, noise, threads=threads))
            except PoseDeployError as exc:  # not usable for this artifact here (no engine, no GPU, ...)
                failures.append(exc)
                continue
            computed = backend.computed_precision(precision)
            if computed == precision:
                loaded[name] = backend
            else:  # e.g. OpenVINO asked for fp16 on a CPU without it
                failures.append(InputError(f"{name} computes in {computed} here, not {precision}"))
                backend.close()
        if not loaded:
            raise failures[0]  # the preferred backend's reason (a broken file fails them all alike)
        timings = probe(loaded)
    finally:
        for backend in loaded.values():
            backend.close()
    choice = Choice(min(timings, key=timings.__getitem__), timings, cached=False)
    cache[key] = {"backend": choice.backend, "probe_ms": timings, "artifact": str(artifacts.root), "when": time.time()}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, cache)
    except OSError as exc:  # a read-only home must not stop inference: probe again next time
        logger.warning(f"backend auto: could not cache the choice in {path} ({exc.strerror or exc})")
    return choice
