"""MultiHypothesisLifter: 2D keypoints in, 3D hypotheses, pose and per-joint spread out — on any
backend, without PyTorch.

It validates and normalises the input, draws the noise (or takes given noise), splits B x S into
calls of at most ``max_poses`` lifted poses, runs the backend and reassembles the contract
outputs. When a request's S is split across calls, the pose and spread are computed here from
all its hypotheses (the same formulas as the graph), so results never depend on the chunking.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from posedeploy.artifacts import Artifacts, ExportConfig, read_manifest
from posedeploy.contract import (
    DEFAULT_MEMORY_BUDGET_MB,
    DRAWS,
    MAX_HYPOTHESES,
    VIEWS,
    check_hypotheses,
    check_noise,
    check_request,
    check_seed,
    draw_noise,
    normalise_keypoints,
)
from posedeploy.errors import InputError
from posedeploy.runtime.backend_choice import open_backend
from posedeploy.runtime.loading import AUTO, LoadOptions
from posedeploy.uncertainty import Calibration, radius

DEFAULT_HYPOTHESES = 200
DEFAULT_MAX_POSES = 16384  # lifted poses per backend call
MAX_MEMORY_BUDGET_MB = 2**30  # a petabyte: anything larger is a mistake, not a machine
UNITS = {"m": 1.0, "mm": 1000.0}


@dataclass
class LiftResult:
    """pose (B, 17, 3), spread (B, 17), hypotheses (B, S, 17, 3) or None: root-relative camera-frame
    coordinates in ``units``; sigma (B, 2, 17): the noise scale per view and joint, normalised units.

    With a calibration (the artifacts' manifest carries one when the checkpoint was calibrated),
    ``spread`` is each joint's expected RMS distance from ``pose`` to the true joint, and
    ``radius(p)`` the distance within which the true joint lies with probability p. Without one,
    ``spread`` is the raw RMS distance of the hypotheses to ``pose`` (on Human3.6M about half the
    true error) and ``radius(p)`` assumes an isotropic Gaussian of that RMS radius."""

    pose: np.ndarray
    spread: np.ndarray
    hypotheses: np.ndarray | None
    sigma: np.ndarray
    units: str
    calibration: Calibration | None = None

    @property
    def calibrated(self) -> bool:
        return self.calibration is not None

    def radius(self, p: float) -> np.ndarray:
        """(B, 17), in ``units``: per joint, the radius around ``pose`` holding the true joint with probability p."""
        return radius(self.spread, p, self.calibration)

    def as_dict(self) -> dict[str, np.ndarray]:
        out = {"sigma": self.sigma, "pose": self.pose, "spread": self.spread}
        if self.hypotheses is not None:
            out["hypotheses"] = self.hypotheses
        return out


def recommended_hypotheses(artifacts: Artifacts) -> int:
    """The S the artifacts' calibration recommends (the fewest within 10 % of S = 200 on ECE and
    AUSE, in the model card), else :data:`DEFAULT_HYPOTHESES`."""
    calibration = artifacts.config.uncertainty
    return calibration.hypotheses if calibration is not None and calibration.hypotheses else DEFAULT_HYPOTHESES


def _checked_budget(memory_budget_mb: object) -> int:
    """The memory budget in bytes, from a number of MB in (0, MAX_MEMORY_BUDGET_MB]."""
    real = isinstance(memory_budget_mb, (int, float, np.integer, np.floating)) and not isinstance(
        memory_budget_mb, bool
    )
    mb = float(memory_budget_mb) if real else float("nan")  # type: ignore[arg-type]  # checked to be a number
    if not 0 < mb <= MAX_MEMORY_BUDGET_MB:
        raise InputError(
            f"memory budget must be a number of MB in (0, {MAX_MEMORY_BUDGET_MB:,}], got {memory_budget_mb!r}"
        )
    return int(mb * 2**20)


def recommended_draws(artifacts: Artifacts) -> str:
    """The noise draws the artifacts' calibration was fitted with (random or antithetic), else random."""
    calibration = artifacts.config.uncertainty
    draws = calibration.fitted_on.get("draws") if calibration is not None else None
    return draws if draws in DRAWS else "random"


class MultiHypothesisLifter:
    """Load an exported artifact directory once; call it on numpy keypoints.

    >>> lifter = MultiHypothesisLifter("artifacts/")            # doctest: +SKIP
    >>> result = lifter(keypoints_px, image_size=(1000, 1002))  # doctest: +SKIP
    >>> result.pose.shape, result.spread.shape                  # doctest: +SKIP
    ((B, 17, 3), (B, 17))

    hypotheses and draws (random, or antithetic: each draw paired with its negation) default to what
    the artifacts' calibration was fitted with, else 200 random draws. When S is split across calls,
    antithetic pairs are formed within each call's draws.
    """

    def __init__(
        self,
        artifacts: str | Path,
        precision: str = "fp32",
        backend: str = AUTO,
        provider: str = "auto",
        hypotheses: int | None = None,
        seed: int | None = None,
        max_poses: int = DEFAULT_MAX_POSES,
        threads: int | None = None,
        cuda: str = "auto",
        noise: str = "host",
        memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
        draws: str | None = None,
    ):
        if not isinstance(artifacts, (str, os.PathLike)):
            raise InputError(f"artifacts must be the path of an exported artifact directory, got {artifacts!r}")
        self.artifacts = read_manifest(artifacts)
        self.calibration = self.artifacts.config.uncertainty
        self.hypotheses = check_hypotheses(recommended_hypotheses(self.artifacts) if hypotheses is None else hypotheses)
        if isinstance(max_poses, bool) or not isinstance(max_poses, (int, np.integer)) or max_poses < VIEWS:
            raise InputError(f"max_poses must be a whole number >= {VIEWS}, got {max_poses!r}")
        self.max_poses = int(max_poses)
        self.memory_budget = _checked_budget(memory_budget_mb)
        if threads is not None and (
            isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1
        ):
            raise InputError(f"threads must be a whole number >= 1 or None (all cores), got {threads!r}")
        threads = None if threads is None else int(threads)
        if noise == "device" and seed is not None:
            raise InputError(
                "a lifter that draws its noise on the device (noise='device') cannot be seeded; "
                "load it with noise='host' for reproducible draws"
            )
        seed = check_seed(seed)
        # Each call's working set: its inputs, outputs and the lifter's activations per pose.
        memory = self.artifacts.manifest.memory
        per_pose = memory.bytes_per_lifted_pose if memory else None
        if per_pose:
            affordable = self.memory_budget // per_pose
            if affordable < VIEWS:
                raise InputError(
                    f"a memory budget of {memory_budget_mb:g} MB cannot hold one pose and its mirror "
                    f"({VIEWS * per_pose / 2**20:.2f} MB); raise memory_budget_mb"
                )
            self.max_poses = min(self.max_poses, int(affordable))
        self._lock = threading.Lock()
        options = LoadOptions(precision, noise, provider, threads, cuda)
        self.backend = open_backend(self.artifacts, backend, options)
        self.precision, self.noise_source = precision, noise
        self.draws = recommended_draws(self.artifacts) if draws is None else draws
        if self.draws not in DRAWS:
            raise InputError(f"draws must be one of {', '.join(DRAWS)}, got {self.draws!r}")
        self._rng = np.random.default_rng(seed)

    @property
    def config(self) -> ExportConfig:
        return self.artifacts.config

    def describe(self) -> str:
        c = self.config
        return f"{c.lifter} + AVG '{c.avg}' (alpha {c.alpha}) on {self.backend.describe()}"

    def normalise(self, keypoints: np.ndarray, image_size: tuple[float, float] | None) -> np.ndarray:
        """(B, 17, 2) or (17, 2) keypoints, pixels with ``image_size`` = (w, h) or already normalised."""
        return normalise_keypoints(keypoints, image_size)

    def __call__(
        self,
        keypoints: np.ndarray,
        image_size: tuple[float, float] | None = None,
        noise: np.ndarray | None = None,
        hypotheses: int | None = None,
        seed: int | None = None,
        units: str = "mm",
        keep_hypotheses: bool = True,
    ) -> LiftResult:
        """Lift B poses. Noise: given (B, S, 2, 17, 2), else drawn — from ``seed`` when given,
        otherwise continuing this lifter's own generator; with ``noise='device'`` at construction,
        drawn inside the graph (not seedable)."""
        if not isinstance(units, str) or units not in UNITS:
            raise InputError(f"units must be one of {', '.join(UNITS)}, got {units!r}")
        if self.noise_source == "device" and (seed is not None or noise is not None):
            what = "cannot be seeded" if seed is not None else "cannot be given noise"
            raise InputError(
                f"this lifter draws its noise on the device, which {what}; load it with noise='host' for "
                f"reproducible draws"
            )
        seed = check_seed(seed)
        kp = self.normalise(keypoints, image_size)
        b = len(kp)
        if noise is not None:
            noise = check_noise(noise, b)
            s = noise.shape[1]
        else:
            s = check_hypotheses(self.hypotheses if hypotheses is None else hypotheses)
        self._check_size(b, s, keep_hypotheses)
        rng = np.random.default_rng(seed) if seed is not None else None
        rows_per_call, s_per_call = self._chunks(s)
        out = LiftResult(
            pose=np.empty((b, 17, 3), np.float32),
            spread=np.empty((b, 17), np.float32),
            hypotheses=np.empty((b, s, 17, 3), np.float32) if keep_hypotheses else None,
            sigma=np.empty((b, VIEWS, 17), np.float32),
            units=units,
        )
        for start in range(0, b, rows_per_call):
            rows = slice(start, min(b, start + rows_per_call))
            self._lift_rows(kp, rows, noise, rng, s, s_per_call, out)
        scale = UNITS[units]
        hyps = None if out.hypotheses is None else out.hypotheses * scale
        spread = out.spread if self.calibration is None else self.calibration.spread(out.spread, s)
        return LiftResult(
            pose=out.pose * scale,
            spread=spread * scale,
            hypotheses=hyps,
            sigma=out.sigma,
            units=units,
            calibration=self.calibration,
        )

    def _lift_rows(
        self,
        kp: np.ndarray,
        rows: slice,
        noise: np.ndarray | None,
        rng: np.random.Generator | None,
        s: int,
        s_per_call: int,
        out: LiftResult,
    ) -> None:
        """Lift ``rows`` in calls of ``s_per_call`` hypotheses into ``out`` (metres)."""
        n = rows.stop - rows.start
        total, squares = np.zeros((n, 17, 3)), np.zeros((n, 17))
        for i in range(0, s, s_per_call):
            k = min(s_per_call, s - i)
            if self.noise_source == "device":
                feed = {"keypoints": kp[rows], "slots": np.zeros(k, np.float32)}
            else:
                # Drawn chunk by chunk, in the contract's sample-major order: S is split only for
                # one pose at a time, so the draws are the same however the work is split.
                chunk = noise[rows, i : i + k] if noise is not None else self._draw(rng, n, k)
                feed = {"keypoints": kp[rows], "noise": chunk}
            result = self.backend.run(feed)
            if i == 0:
                out.sigma[rows] = result["sigma"]
            if k == s:
                out.pose[rows], out.spread[rows] = result["pose"], result["spread"]
            else:  # S split across calls: pose and spread from running sums over all S
                h = result["hypotheses"].astype(np.float64)
                total += h.sum(axis=1)
                squares += (h**2).sum(axis=(1, 3))
            if out.hypotheses is not None:
                out.hypotheses[rows, i : i + k] = result["hypotheses"]
        if s_per_call < s:
            mean = total / s
            out.pose[rows] = mean
            out.spread[rows] = np.sqrt(np.maximum(squares / s - (mean**2).sum(axis=-1), 0.0))

    def _draw(self, rng: np.random.Generator | None, n: int, k: int) -> np.ndarray:
        if rng is not None:
            return draw_noise(rng, n, k, self.draws)
        with self._lock:  # numpy Generators are not thread-safe; the lifter's own one is shared
            return draw_noise(self._rng, n, k, self.draws)

    def _check_size(self, b: int, s: int, keep_hypotheses: bool) -> None:
        """Refuse requests that cannot fit, saying what would."""
        try:
            check_request(b, s, keep_hypotheses, self.memory_budget / 2**20)
        except InputError as exc:
            hint = "; or pass keep_hypotheses=False (pose and spread need one call's worth), or raise memory_budget_mb"
            raise InputError(f"{exc}{hint if keep_hypotheses and s <= MAX_HYPOTHESES else ''}") from None

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
        rows = min(b_hi, max(1, self.max_poses // (VIEWS * s_per_call))) if s_per_call == s else 1
        if rows < b_lo:
            raise InputError(f"this engine needs batches of at least {b_lo} poses; rebuild with --batch 1:...")
        return rows, s_per_call

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> MultiHypothesisLifter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
