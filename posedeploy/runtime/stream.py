"""PoseStream: a live feed of 2D keypoints in, tracked, lifted and smoothed 3D people out (no torch).

Each :meth:`PoseStream.push` takes the people of one frame, (N, 17, 2) pixels in the H36M-17 joint
order, with optional per-joint scores. People are kept as tracks (posedeploy/tracking.py), all of a
frame's people are lifted in one batched call, and each track's joints go through a causal
constant-velocity Kalman filter (posedeploy/smoothing.py). With ``lag=1`` (the default) a frame's
results come back with the next push, corrected by that next frame: one frame of latency for much
less jitter; with ``lag=0`` they come back at once, filtered.

A joint that is missing (non-finite) or scored below ``min_confidence`` is lifted from the track's
last seen position of that joint and is no measurement for the filter. A person with more than
``max_missing`` such joints that the track cannot fill is tracked but not lifted in that frame.
Memory is bounded: a track unseen for ``max_gap_s`` seconds ends, and each keeps two frames of state.

Threads: :meth:`push` may be called from any thread (calls are serialised); :attr:`latest` returns
the results of the last push and is safe to read from another thread while one pushes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from posedeploy.errors import InputError
from posedeploy.runtime.lifter import MultiHypothesisLifter
from posedeploy.skeleton import NUM_JOINTS
from posedeploy.smoothing import DEFAULT_FPS, DEFAULT_SMOOTHING, JointFilter, SmoothingParams, gap_frames
from posedeploy.tracking import Tracker
from posedeploy.uncertainty import Calibration, radius

MAX_PEOPLE = 256  # per frame: more is a malformed input, not a crowd this runtime is sized for


@dataclass(frozen=True)
class PersonResult:
    """One person in one frame: millimetres, root-relative camera frame."""

    track_id: int
    frame: int  # the frame these numbers describe (with lag 1: the frame before the last push)
    pose: np.ndarray  # (17, 3): that frame's lift
    smoothed: np.ndarray  # (17, 3): the filter's estimate of the same frame
    spread: np.ndarray  # (17,): as LiftResult.spread
    observed: np.ndarray  # (17,) bool: False where the joint was missing and filled from the track
    calibration: Calibration | None = None

    def radius(self, p: float) -> np.ndarray:
        """(17,) mm: per joint, the radius around ``pose`` holding the true joint with probability p."""
        return radius(self.spread, p, self.calibration)


@dataclass
class _Track:
    filter: JointFilter
    last_2d: np.ndarray  # (17, 2) normalised; NaN where never seen
    pending: tuple[int, np.ndarray, np.ndarray, np.ndarray] | None = None  # frame, pose, spread, observed


@dataclass
class _Frame:
    """One push, checked: keypoints normalised, each joint seen or not."""

    number: int
    keypoints: np.ndarray  # (N, 17, 2) normalised, NaN where missing
    seen: np.ndarray  # (N, 17)
    scores: np.ndarray | None
    tracks: list[int] = field(default_factory=list)


class PoseStream:
    """Push one frame's people at a time; get tracked, lifted and smoothed people back."""

    def __init__(
        self,
        artifacts: str | Path,
        image_size: tuple[float, float],
        fps: float = DEFAULT_FPS,
        lag: int = 1,
        smoothing: SmoothingParams | None = None,
        hypotheses: int | None = None,
        backend: str = "auto",
        precision: str = "fp32",
        min_confidence: float = 0.3,
        max_missing: int = 4,
        max_gap_s: float = 1.0,
        seed: int | None = 0,
    ) -> None:
        if lag not in (0, 1):
            raise InputError(f"lag must be 0 or 1 frames, got {lag!r}")
        if isinstance(max_missing, bool) or not isinstance(max_missing, int) or not 0 <= max_missing < NUM_JOINTS:
            raise InputError(f"max missing must be a whole number of joints in [0, {NUM_JOINTS}), got {max_missing!r}")
        if not (isinstance(min_confidence, int | float) and 0 <= min_confidence <= 1):
            raise InputError(f"min confidence must be in [0, 1], got {min_confidence!r}")
        self.params = (smoothing or DEFAULT_SMOOTHING).at_fps(fps)  # checks fps
        self.max_gap = gap_frames(max_gap_s, fps)
        self.lag, self.image_size = lag, image_size
        self.min_confidence, self.max_missing = float(min_confidence), max_missing
        self.lifter = MultiHypothesisLifter(artifacts, hypotheses=hypotheses, backend=backend, precision=precision)
        self.lifter.normalise(np.full((1, NUM_JOINTS, 2), 100.0), image_size)  # a bad image size is refused now
        self._tracker = Tracker(max_gap=self.max_gap)
        self._tracks: dict[int, _Track] = {}
        self._lock = threading.Lock()
        self._latest: tuple[PersonResult, ...] = ()
        self._frame = -1
        self._seed = seed

    @property
    def latest(self) -> tuple[PersonResult, ...]:
        return self._latest

    @property
    def tracks(self) -> int:
        """Tracks alive now (bounded: each ends ``max_gap_s`` after it was last seen)."""
        return len(self._tracks)

    def close(self) -> None:
        self.lifter.close()

    def __enter__(self) -> PoseStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def push(
        self, keypoints: np.ndarray, scores: np.ndarray | None = None, frame: int | None = None
    ) -> list[PersonResult]:
        """The people of the next frame: (N, 17, 2) pixels, optional (N, 17) scores in [0, 1], and
        optionally the frame's number (increasing; default: one more than the last). Numbers skipped
        (frames the caller dropped) are frames without a measurement for the filters."""
        with self._lock:
            checked = self._check(keypoints, scores, frame)
            checked.tracks = self._tracker.update(checked.number, checked.keypoints, checked.scores)
            self._end_lost_tracks()
            results = self._lift_and_filter(checked)
            self._frame = checked.number
            self._latest = tuple(results)
            return results

    def _check(self, keypoints: np.ndarray, scores: np.ndarray | None, frame: int | None) -> _Frame:
        kp = np.asarray(keypoints, dtype=np.float64)
        if kp.ndim != 3 or kp.shape[1:] != (NUM_JOINTS, 2) or len(kp) > MAX_PEOPLE:
            raise InputError(
                f"a frame's people must be (N, {NUM_JOINTS}, 2) pixel keypoints with N <= {MAX_PEOPLE}, "
                f"got shape {kp.shape}"
            )
        number = self._frame + 1 if frame is None else frame
        if isinstance(number, bool) or not isinstance(number, int | np.integer) or number <= self._frame:
            raise InputError(f"frames must come in increasing order: frame {frame!r} after frame {self._frame}")
        seen = np.asarray(np.isfinite(kp).all(axis=-1), dtype=bool)
        if scores is not None:
            sc = np.asarray(scores, dtype=np.float64)
            if sc.shape != kp.shape[:2]:
                raise InputError(f"scores must be (N, {NUM_JOINTS}) = {kp.shape[:2]}, got shape {sc.shape}")
            if not (np.isfinite(sc) & (sc >= 0) & (sc <= 1)).all():
                raise InputError("scores must be numbers in [0, 1] (NaN, inf and values outside are refused)")
            seen = seen & (sc >= self.min_confidence)
        else:
            sc = None
        normalised = np.full(kp.shape, np.nan)
        if seen.any():
            normalised[seen] = self.lifter.normalise(np.where(seen[..., None], kp, 0.0), self.image_size)[seen]
        return _Frame(int(number), normalised, seen, sc)

    def _end_lost_tracks(self) -> None:
        alive = set(self._tracker.active)
        for track_id in [t for t in self._tracks if t not in alive]:
            del self._tracks[track_id]

    def _lift_and_filter(self, f: _Frame) -> list[PersonResult]:
        lift_rows, lift_ids, observed = [], [], []
        for n, track_id in enumerate(f.tracks):
            if track_id < 0:
                continue
            track = self._tracks.setdefault(
                track_id, _Track(JointFilter(self.params, NUM_JOINTS, self.lag), np.full((NUM_JOINTS, 2), np.nan))
            )
            track.last_2d[f.seen[n]] = f.keypoints[n][f.seen[n]]
            filled = track.last_2d.copy()
            if np.isnan(filled).any(axis=-1).sum() > self.max_missing:
                continue  # not enough of this person seen yet to lift
            known = ~np.isnan(filled).any(axis=-1)
            filled[~known] = filled[known].mean(axis=0)  # never seen: the body's centre, not a measurement
            lift_rows.append(filled)
            lift_ids.append(track_id)
            observed.append(f.seen[n] & known)
        lifted = {}
        if lift_rows:
            seed = None if self._seed is None else self._seed + f.number
            out = self.lifter(np.stack(lift_rows).astype(np.float32), units="mm", seed=seed)
            lifted = {t: (out.pose[i], out.spread[i], observed[i]) for i, t in enumerate(lift_ids)}
        skipped = f.number - self._frame - 1 if self._frame >= 0 else 0
        results: list[PersonResult] = []
        for track_id, track in self._tracks.items():
            if track.filter.frames:
                for _ in range(skipped):  # frame numbers skipped between two pushes: time passed unmeasured
                    self._step(track_id, track, None, results)
            self._step(track_id, track, (f.number, *lifted[track_id]) if track_id in lifted else None, results)
        return results

    def _step(
        self,
        track_id: int,
        track: _Track,
        current: tuple[int, np.ndarray, np.ndarray, np.ndarray] | None,
        results: list[PersonResult],
    ) -> None:
        """One frame of one track's filter (``current``: that frame's lift, or None when it was not lifted);
        the result it completes, if any, goes into ``results``."""
        if current is not None:
            estimate = track.filter.push(current[1], current[3])
        else:  # the filter predicts through a frame without a measurement
            estimate = track.filter.push(np.full((NUM_JOINTS, 3), np.nan))
        described = current if self.lag == 0 else track.pending
        if described is not None and estimate is not None:
            number, pose, spread, seen = described
            calibration = self.lifter.calibration
            results.append(PersonResult(track_id, number, pose, estimate.astype(np.float32), spread, seen, calibration))
        track.pending = current
