"""MultiHypothesisLifter: 2D keypoints in, 3D hypotheses, pose and per-joint spread out — on any
backend, without PyTorch.

It validates and normalises the input, draws the noise (or takes given noise), splits B x S into
calls of at most ``max_poses`` lifted poses, runs the backend and reassembles the contract
outputs. When a request's S is split across calls, the pose and spread are computed here from
all its hypotheses (the same formulas as the graph), so results never depend on the chunking.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from posedeploy.artifacts import GRAPHS, pipeline_graph, plan_filename, read_manifest
from posedeploy.contract import INPUTS, OUTPUTS, RNG_INPUTS, VIEWS, check_hypotheses, check_keypoints, check_noise, draw_noise
from posedeploy.data.camera import normalize_screen_coordinates
from posedeploy.errors import ArtifactError, InputError
from posedeploy.runtime.backend import Backend

DEFAULT_HYPOTHESES = 200
DEFAULT_MAX_POSES = 16384  # lifted poses per backend call
UNITS = {"m": 1.0, "mm": 1000.0}
# Normalised coordinates lie within a few units of 0; values this large are pixels.
PIXEL_HINT = 8.0


@dataclass
class LiftResult:
    """pose (B, 17, 3), spread (B, 17), hypotheses (B, S, 17, 3) or None: root-relative camera-frame
    coordinates in ``units``; sigma (B, 2, 17): the noise scale per view and joint, normalised units."""

    pose: np.ndarray
    spread: np.ndarray
    hypotheses: np.ndarray | None
    sigma: np.ndarray
    units: str

    def as_dict(self) -> dict[str, np.ndarray]:
        out = {"sigma": self.sigma, "pose": self.pose, "spread": self.spread}
        if self.hypotheses is not None:
            out["hypotheses"] = self.hypotheses
        return out


BACKENDS = ("onnxruntime", "tensorrt")


def find_plan(artifacts, graph: str) -> Path:
    """The engine of ``graph`` in the artifact directory: built by posedeploy build from the
    current export (a plan from an older export is refused, not silently used)."""
    from posedeploy.engines.manifest import read_engine_manifest

    candidates = [artifacts.root / plan_filename(graph, rtx) for rtx in (False, True)]
    plans = [p for p in candidates if p.is_file()]
    if not plans:
        raise ArtifactError(
            f"{artifacts.root} has no engine for {GRAPHS[graph]}; build one here with posedeploy build "
            f"--artifacts {artifacts.root}" + (" --precision fp32" if not graph.endswith("fp16") else "")
            + (" --in-graph-noise" if ".rng" in graph else "")
        )
    plan = plans[0]
    manifest = read_engine_manifest(plan)
    graph = artifacts.manifest["files"].get(manifest["onnx"]["file"], {})
    if graph.get("sha256") != manifest["onnx"]["sha256"]:
        raise ArtifactError(f"{plan.name} was built from an earlier export of {manifest['onnx']['file']}; rebuild it")
    return plan


def open_backend(artifacts, precision: str = "fp32", backend: str = "onnxruntime", provider: str = "auto",
                 threads: int | None = None, cuda: str = "auto", noise: str = "host") -> Backend:  # fmt: skip
    """The verified pipeline of an artifact directory, loaded on ``backend``."""
    graph = pipeline_graph(precision, noise)
    if backend not in BACKENDS:
        raise InputError(f"unknown backend '{backend}'; expected one of {', '.join(BACKENDS)}")
    if backend == "tensorrt":
        from posedeploy.runtime.tensorrt_backend import TensorRTBackend

        return TensorRTBackend(find_plan(artifacts, graph), cuda=cuda)
    path = artifacts.path(graph)
    from posedeploy.runtime.onnxruntime_backend import OnnxRuntimeBackend

    loaded = OnnxRuntimeBackend(path, provider=provider, threads=threads)
    meta = loaded.metadata
    if meta.get("graph") != graph or meta.get("checkpoint_sha256") != artifacts.manifest["checkpoint"]["sha256"]:
        loaded.close()
        raise ArtifactError(f"{path} was not exported with this manifest (graph or checkpoint differs); re-export")
    inputs = RNG_INPUTS if noise == "device" else INPUTS
    if [s.name for s in loaded.inputs] != list(inputs) or [s.name for s in loaded.outputs] != list(OUTPUTS):
        loaded.close()
        raise ArtifactError(f"{path} does not have the pipeline contract's inputs {inputs} and outputs {OUTPUTS}")
    return loaded


class MultiHypothesisLifter:
    """Load an exported artifact directory once; call it on numpy keypoints.

    >>> lifter = MultiHypothesisLifter("artifacts/")            # doctest: +SKIP
    >>> result = lifter(keypoints_px, image_size=(1000, 1002))  # doctest: +SKIP
    >>> result.pose.shape, result.spread.shape                  # doctest: +SKIP
    ((B, 17, 3), (B, 17))
    """

    def __init__(self, artifacts: str | Path, precision: str = "fp32", backend: str = "onnxruntime",
                 provider: str = "auto", hypotheses: int = DEFAULT_HYPOTHESES, seed: int | None = None,
                 max_poses: int = DEFAULT_MAX_POSES, threads: int | None = None, cuda: str = "auto",
                 noise: str = "host"):  # fmt: skip
        self.artifacts = read_manifest(artifacts)
        self.hypotheses = check_hypotheses(hypotheses)
        if isinstance(max_poses, bool) or not isinstance(max_poses, (int, np.integer)) or max_poses < VIEWS:
            raise InputError(f"max_poses must be a whole number >= {VIEWS}, got {max_poses!r}")
        self.max_poses = int(max_poses)
        self.backend = open_backend(self.artifacts, precision, backend, provider, threads, cuda, noise)
        self.precision, self.noise_source = precision, noise
        self._rng = np.random.default_rng(seed)

    @property
    def config(self) -> dict:
        return self.artifacts.config

    def describe(self) -> str:
        c = self.config
        return f"{c['lifter']} + AVG '{c['avg']}' (alpha {c['alpha']}) on {self.backend.describe()}"

    def normalise(self, keypoints: np.ndarray, image_size: tuple[float, float] | None) -> np.ndarray:
        """(B, 17, 2) or (17, 2) keypoints, pixels with ``image_size`` = (w, h) or already normalised."""
        keypoints = np.asarray(keypoints)
        if keypoints.ndim == 2:
            keypoints = keypoints[None]
        keypoints = check_keypoints(keypoints)
        if image_size is None:
            largest = float(np.abs(keypoints).max())
            if largest > PIXEL_HINT:
                raise InputError(
                    f"keypoints look like pixels (largest |value| {largest:.0f}); pass image_size=(width, height), "
                    f"or normalise them (x / w * 2 - [1, h / w])"
                )
            return keypoints
        if len(image_size) != 2 or not all(np.isfinite(v) and v > 0 for v in image_size):
            raise InputError(f"image size must be two positive numbers (width, height), got {image_size}")
        w, h = (float(v) for v in image_size)
        return normalize_screen_coordinates(keypoints.astype(np.float64), w, h).astype(np.float32)

    def __call__(self, keypoints: np.ndarray, image_size: tuple[float, float] | None = None,
                 noise: np.ndarray | None = None, hypotheses: int | None = None, seed: int | None = None,
                 units: str = "mm", keep_hypotheses: bool = True) -> LiftResult:  # fmt: skip
        """Lift B poses. Noise: given (B, S, 2, 17, 2), else drawn — from ``seed`` when given,
        otherwise continuing this lifter's own generator; with ``noise='device'`` at construction,
        drawn inside the graph (not seedable)."""
        if units not in UNITS:
            raise InputError(f"units must be one of {', '.join(UNITS)}, got '{units}'")
        kp = self.normalise(keypoints, image_size)
        b = len(kp)
        device_noise = self.noise_source == "device"
        if noise is not None and device_noise:
            raise InputError("this lifter draws its noise on the device; load it with noise='host' to give noise")
        if noise is not None:
            noise = check_noise(noise, b)
            s = noise.shape[1]
        else:
            s = check_hypotheses(self.hypotheses if hypotheses is None else hypotheses)
        rng = np.random.default_rng(seed) if seed is not None else self._rng
        rows_per_call, s_per_call = self._chunks(s)

        sigma = np.empty((b, VIEWS, 17), np.float32)
        pose = np.empty((b, 17, 3), np.float32)
        spread = np.empty((b, 17), np.float32)
        hyps_out = np.empty((b, s, 17, 3), np.float32) if keep_hypotheses else None
        for start in range(0, b, rows_per_call):
            rows = slice(start, min(b, start + rows_per_call))
            if device_noise:
                parts = [
                    self.backend.run({"keypoints": kp[rows], "slots": np.zeros(min(s_per_call, s - i), np.float32)})
                    for i in range(0, s, s_per_call)
                ]
            else:
                chunk = noise[rows] if noise is not None else draw_noise(rng, rows.stop - rows.start, s)
                parts = [
                    self.backend.run({"keypoints": kp[rows], "noise": chunk[:, i : i + s_per_call]})
                    for i in range(0, s, s_per_call)
                ]
            sigma[rows] = parts[0]["sigma"]
            if len(parts) == 1:
                hyps, pose[rows], spread[rows] = parts[0]["hypotheses"], parts[0]["pose"], parts[0]["spread"]
            else:
                hyps = np.concatenate([p["hypotheses"] for p in parts], axis=1)
                pose[rows] = hyps.mean(axis=1)
                spread[rows] = np.sqrt(((hyps - pose[rows][:, None]) ** 2).sum(-1).mean(1))
            if hyps_out is not None:
                hyps_out[rows] = hyps
        scale = UNITS[units]
        return LiftResult(
            pose=pose * scale, spread=spread * scale,
            hypotheses=None if hyps_out is None else hyps_out * scale, sigma=sigma, units=units,
        )  # fmt: skip

    def _chunks(self, s: int) -> tuple[int, int]:
        """Poses per call and hypotheses per call: within max_poses and the backend's limits."""
        limits = self.backend.limits or {"batch": (1, 1 << 62), "hypotheses": (1, 1 << 62)}
        (b_lo, b_hi), (s_lo, s_hi) = limits["batch"], limits["hypotheses"]
        s_per_call = min(s, max(1, self.max_poses // VIEWS), s_hi)
        last = s % s_per_call or s_per_call
        if s_per_call < s_lo or last < s_lo:
            raise InputError(
                f"S={s} cannot be split into calls of {s_lo}..{s_hi} hypotheses that this {self.backend.name} "
                f"engine accepts; ask for another S or rebuild with --hypotheses 1:{s}:{max(s, s_hi)}"
            )
        rows = min(b_hi, max(1, self.max_poses // (VIEWS * s_per_call)))
        if rows < b_lo:
            raise InputError(f"this engine needs batches of at least {b_lo} poses; rebuild with --batch 1:...")
        return rows, s_per_call

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> "MultiHypothesisLifter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
