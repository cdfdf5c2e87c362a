"""Temporal smoothing of lifted 3D joints (numpy only).

Each coordinate of each joint is a constant-velocity Kalman filter: the joint moves at a velocity
that changes by white-noise acceleration of spectral density ``accel`` (mm^2/s^3), and every frame
measures its position with independent noise of standard deviation ``measurement_mm``. Stating the
model in seconds, with the frame rate given, keeps one set of parameters right at 10 Hz (Human3.6M
here) and at a camera's 30 or 60 frames/s.

- Offline (a whole sequence): the filter forward, then a Rauch-Tung-Striebel pass backward.
- Causal (a live stream): ``lag=0`` returns the filtered estimate of the frame just pushed; ``lag=1``
  waits one frame and returns the previous frame's estimate, corrected by the frame after it (a
  fixed-lag smoother of lag 1), which removes much more jitter for one frame of latency.

A joint that was not observed in a frame (missing, or too uncertain to trust) is a frame without a
measurement for its filter: the filter predicts through it. Before a joint's first observation there
is no estimate, and its given value is passed through unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from posedeploy.errors import InputError

# The velocity is unknown when a joint is first seen: a prior standard deviation of 1 m/s, about the
# speed of a hand in ordinary motion, lets the first few frames set it.
INITIAL_SPEED_MM_S = 1000.0


@dataclass(frozen=True)
class SmoothingParams:
    """The filter's model: acceleration noise, measurement noise and the frame rate."""

    accel: float  # spectral density of the white-noise acceleration, mm^2/s^3
    measurement_mm: float  # standard deviation of one frame's measured position, mm
    fps: float  # frames per second of the sequence or stream

    def __post_init__(self) -> None:
        for name in ("accel", "measurement_mm", "fps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise InputError(f"smoothing {name} must be a finite number > 0, got {value!r}")

    def at_fps(self, fps: float) -> SmoothingParams:
        return SmoothingParams(self.accel, self.measurement_mm, fps)


# Chosen on Human3.6M S8 (SH detections, the shipped default checkpoint as `run` lifts it, 10 Hz), by
# the lowest mean of the offline and the lag-1 MPJPE over a grid of acceleration noise at a constant
# 50 mm measurement noise (only their ratio matters): docs/RESULTS.md, "Temporal smoothing".
DEFAULT_SMOOTHING = SmoothingParams(accel=1.5e6, measurement_mm=50.0, fps=10.0)
DEFAULT_FPS = 30.0  # a video camera's, when neither the caller nor the file says


def gap_frames(max_gap_s: float, fps: float) -> int:
    """A gap limit in seconds as whole frames at ``fps``: how long a track may go unseen and continue."""
    if (
        isinstance(max_gap_s, bool)
        or not isinstance(max_gap_s, int | float)
        or not math.isfinite(max_gap_s)
        or max_gap_s < 0
    ):
        raise InputError(f"max gap must be a finite number of seconds >= 0, got {max_gap_s!r}")
    return int(round(max_gap_s * fps))


@dataclass
class _State:
    """Position, velocity and their covariance (p00, p01, p11) per coordinate; NaN where unseen."""

    pos: np.ndarray
    vel: np.ndarray
    p00: np.ndarray
    p01: np.ndarray
    p11: np.ndarray

    def copy(self) -> _State:
        return _State(*(a.copy() for a in (self.pos, self.vel, self.p00, self.p01, self.p11)))


def _predict(s: _State, params: SmoothingParams) -> _State:
    dt, q = 1.0 / params.fps, params.accel
    return _State(
        s.pos + dt * s.vel,
        s.vel.copy(),
        s.p00 + 2 * dt * s.p01 + dt * dt * s.p11 + q * dt**3 / 3,
        s.p01 + dt * s.p11 + q * dt * dt / 2,
        s.p11 + q * dt,
    )


def _update(s: _State, z: np.ndarray, observed: np.ndarray, r: np.ndarray) -> _State:
    """Fold in the measurements ``z`` (variance ``r``) where ``observed``; a coordinate seen for the
    first time starts there."""
    out = s.copy()
    start = observed & np.isnan(s.pos)
    out.pos[start], out.vel[start] = z[start], 0.0
    out.p00[start], out.p01[start], out.p11[start] = r[start], 0.0, INITIAL_SPEED_MM_S**2
    fold = observed & ~start
    innovation_var = s.p00[fold] + r[fold]
    k0, k1 = s.p00[fold] / innovation_var, s.p01[fold] / innovation_var
    innovation = z[fold] - s.pos[fold]
    out.pos[fold] = s.pos[fold] + k0 * innovation
    out.vel[fold] = s.vel[fold] + k1 * innovation
    out.p00[fold] = (1 - k0) * s.p00[fold]
    out.p01[fold] = (1 - k0) * s.p01[fold]
    out.p11[fold] = s.p11[fold] - k1 * s.p01[fold]
    return out


def _smoothed(
    filtered: _State, predicted_next: _State, next_pos: np.ndarray, next_vel: np.ndarray, dt: float
) -> tuple[np.ndarray, np.ndarray]:
    """One Rauch-Tung-Striebel step: the estimate at t from the filtered one at t and the smoothed one at t+1."""
    # G = P_f F^T P_p^-1, with F^T = [[1, 0], [dt, 1]] and P_p the 2 x 2 predicted covariance at t+1.
    a, b = filtered.p00 + dt * filtered.p01, filtered.p01
    c, d = filtered.p01 + dt * filtered.p11, filtered.p11
    det = predicted_next.p00 * predicted_next.p11 - predicted_next.p01**2
    i00, i01, i11 = predicted_next.p11 / det, -predicted_next.p01 / det, predicted_next.p00 / det
    dp, dv = next_pos - predicted_next.pos, next_vel - predicted_next.vel
    pos = filtered.pos + (a * i00 + b * i01) * dp + (a * i01 + b * i11) * dv
    vel = filtered.vel + (c * i00 + d * i01) * dp + (c * i01 + d * i11) * dv
    return pos, vel


def _empty(shape: tuple[int, ...]) -> _State:
    nan = np.full(shape, np.nan)
    return _State(nan, nan.copy(), nan.copy(), nan.copy(), nan.copy())


def check_poses(
    poses: np.ndarray, observed: np.ndarray | None, params: SmoothingParams, noise_mm: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(T, J, 3) poses in mm, an optional (T, J) observed mask and optional (T, J) per-joint measurement
    noise in mm (e.g. a calibrated spread over sqrt(3)) -> float64 poses, the (T, J, 3) mask of the
    coordinates to fold in (a non-finite one is unobserved) and their (T, J, 3) measurement variance."""
    p = np.asarray(poses, dtype=np.float64)
    if p.ndim != 3 or p.shape[-1] != 3:
        raise InputError(f"poses to smooth must be (frames, joints, 3), got shape {p.shape}")
    seen = np.asarray(np.isfinite(p).all(axis=-1), dtype=bool)
    if observed is not None:
        mask = np.asarray(observed)
        if mask.shape != p.shape[:2] or mask.dtype != bool:
            raise InputError(f"observed must be a (frames, joints) boolean mask, got {mask.dtype} {mask.shape}")
        seen = seen & mask
    if noise_mm is None:
        variance = np.full(p.shape, params.measurement_mm**2)
    else:
        noise = np.asarray(noise_mm, dtype=np.float64)
        if noise.shape != p.shape[:2]:
            raise InputError(f"measurement noise must be (frames, joints) mm, got shape {noise.shape}")
        seen = seen & np.isfinite(noise) & (noise > 0)
        variance = np.repeat(np.where(seen, noise, 1.0)[..., None] ** 2, 3, axis=-1)
    return p, np.repeat(seen[..., None], 3, axis=-1), variance


def smooth_sequence(
    poses: np.ndarray,
    params: SmoothingParams,
    observed: np.ndarray | None = None,
    lag: int | None = None,
    noise_mm: np.ndarray | None = None,
) -> np.ndarray:
    """Smooth a (T, J, 3) sequence of joints in mm. ``lag=None``: offline (filter + RTS); ``lag=0``: the
    causal filter; ``lag=1``: each frame corrected by the next (what a live stream returns one frame late).
    ``noise_mm``: (T, J) per-frame measurement noise instead of ``params.measurement_mm``.
    Returns (T, J, 3) float64; a joint's given values before its first observation pass through."""
    if lag not in (None, 0, 1):
        raise InputError(f"lag must be None (offline), 0 or 1 frames, got {lag!r}")
    p, mask, variance = check_poses(poses, observed, params, noise_mm)
    T = len(p)
    filtered: list[_State] = []
    predicted: list[_State] = []  # predicted[t]: the prediction for frame t from frame t-1
    state = _empty(p.shape[1:])
    for t in range(T):
        prior = _predict(state, params) if t else state
        predicted.append(prior)
        state = _update(prior, np.nan_to_num(p[t]), mask[t], variance[t])
        filtered.append(state)
    out = np.stack([f.pos for f in filtered])
    dt = 1.0 / params.fps
    if lag == 1:
        for t in range(T - 1):
            out[t] = _smoothed(filtered[t], predicted[t + 1], filtered[t + 1].pos, filtered[t + 1].vel, dt)[0]
    elif lag is None and T > 1:
        pos, vel = filtered[-1].pos, filtered[-1].vel
        for t in range(T - 2, -1, -1):
            pos, vel = _smoothed(filtered[t], predicted[t + 1], pos, vel, dt)
            out[t] = pos
    unseen = np.isnan(out)
    out[unseen] = p[unseen]
    return out


class JointFilter:
    """The causal filter of one track, a frame at a time: bounded memory (two frames of state)."""

    def __init__(self, params: SmoothingParams, joints: int, lag: int = 1) -> None:
        if lag not in (0, 1):
            raise InputError(f"a live filter's lag must be 0 or 1 frames, got {lag!r}")
        self.params, self.lag = params, lag
        self._state = _empty((joints, 3))
        self._previous: tuple[_State, np.ndarray] | None = None  # filtered state and given pose of the last frame
        self.frames = 0

    def push(
        self, pose: np.ndarray, observed: np.ndarray | None = None, noise_mm: np.ndarray | None = None
    ) -> np.ndarray | None:
        """Fold in one (J, 3) pose in mm (``observed``, ``noise_mm``: (J,), as in :func:`smooth_sequence`).
        Returns the estimate of this frame (lag 0) or of the previous one (lag 1; None after the first frame)."""
        p, mask, variance = check_poses(
            np.asarray(pose)[None],
            None if observed is None else np.asarray(observed)[None],
            self.params,
            None if noise_mm is None else np.asarray(noise_mm)[None],
        )
        prior = _predict(self._state, self.params) if self.frames else self._state
        state = _update(prior, np.nan_to_num(p[0]), mask[0], variance[0])
        previous, self._previous = self._previous, (state, p[0])
        self._state, self.frames = state, self.frames + 1
        if self.lag == 0:
            return _pass_unseen(state.pos, p[0])
        if previous is None:
            return None
        dt = 1.0 / self.params.fps
        return _pass_unseen(_smoothed(previous[0], prior, state.pos, state.vel, dt)[0], previous[1])

    def flush(self) -> np.ndarray | None:
        """The last frame's filtered estimate, which a lag-1 filter has not returned yet."""
        if self.lag == 0 or self._previous is None:
            return None
        state, pose = self._previous
        self._previous = None
        return _pass_unseen(state.pos, pose)


def _pass_unseen(estimate: np.ndarray, given: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(estimate), given, estimate)


def smooth_track(
    poses: np.ndarray,
    timeline: np.ndarray,
    params: SmoothingParams,
    observed: np.ndarray | None = None,
    lag: int | None = None,
    max_gap: int = 10,
) -> np.ndarray:
    """One person's (F, J, 3) poses in mm at the frame positions ``timeline`` (increasing whole numbers):
    the frames in between are frames without a measurement, and a gap of more than ``max_gap`` frames
    starts the filter afresh (a person who came back is not assumed to have moved smoothly meanwhile)."""
    t = np.asarray(timeline)
    if t.shape != (len(poses),) or t.dtype.kind not in "iu" or (np.diff(t) <= 0).any():
        raise InputError(f"a track's frame positions must be {len(poses)} increasing whole numbers")
    seen = np.ones(np.shape(poses)[:2], bool) if observed is None else np.asarray(observed, bool)
    out = np.empty(np.shape(poses), np.float64)
    cuts = np.nonzero(np.diff(t) > max_gap + 1)[0] + 1
    for part in np.split(np.arange(len(t)), cuts):
        if len(part) == 0:
            continue
        local = t[part] - t[part[0]]
        dense = np.full((local[-1] + 1, *out.shape[1:]), np.nan)
        dense_seen = np.zeros(dense.shape[:2], bool)
        dense[local], dense_seen[local] = poses[part], seen[part]
        out[part] = smooth_sequence(dense, params, dense_seen, lag)[local]
    return out
