"""People kept as tracks across frames (numpy only).

A detector reports the people of each frame in no particular order. Where the file names each
person's track (``track_id``), that id is kept. Otherwise :class:`Tracker` associates each frame's
people with the tracks of the frames before by their keypoints: the cost of a pair is the mean
distance of the joints both have seen, over the track's size (the diagonal of its keypoints' box),
after moving the track's last keypoints on by its last velocity; pairs are taken cheapest first
(greedy: with a handful of people it agrees with the optimal assignment but for near ties), and a
person no track is close enough to starts a new one. A track that has gone unseen for more than
``max_gap`` frames ends: a person who comes back after that is a new track.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from posedeploy.errors import InputError

# Joints with a confidence below this do not count in the association cost.
MIN_JOINT_CONFIDENCE = 0.3
# A box smaller than this many pixels (or normalised units x 1000) on its diagonal is taken as this big,
# so that a detection collapsed to a point does not make every distance infinite.
MIN_SCALE = 1e-3


@dataclass
class _Track:
    track_id: int
    keypoints: np.ndarray  # (J, 2) last seen; NaN where that joint was never seen
    velocity: np.ndarray  # (J, 2) per frame; 0 until seen twice
    last_frame: int
    scale: float


@dataclass
class Tracker:
    """Track ids for each frame's people, one frame at a time (frames in increasing order)."""

    max_gap: int = 10  # frames a track may go unseen and still continue
    max_cost: float = 0.5  # the largest cost (distance / track size) still the same person
    _tracks: list[_Track] = field(default_factory=list)
    _next_id: int = 0
    _last_frame: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.max_gap, bool) or not isinstance(self.max_gap, int) or self.max_gap < 0:
            raise InputError(f"max gap must be a whole number of frames >= 0, got {self.max_gap!r}")
        if not (isinstance(self.max_cost, int | float) and math.isfinite(self.max_cost) and self.max_cost > 0):
            raise InputError(f"max cost must be a finite number > 0, got {self.max_cost!r}")

    @property
    def active(self) -> list[int]:
        return [t.track_id for t in self._tracks]

    def update(self, frame: int, keypoints: np.ndarray, confidence: np.ndarray | None = None) -> list[int]:
        """The track id of each of the (N, J, 2) people of ``frame`` (N may be 0); tracks unseen for
        more than ``max_gap`` frames are ended first."""
        kp = np.asarray(keypoints, dtype=np.float64)
        if kp.ndim != 3 or kp.shape[-1] != 2:
            raise InputError(f"a frame's people must be (people, joints, 2) keypoints, got shape {kp.shape}")
        if self._last_frame is not None and frame <= self._last_frame:
            raise InputError(f"frames must come in increasing order: frame {frame} after frame {self._last_frame}")
        self._last_frame = frame
        seen = np.asarray(np.isfinite(kp).all(axis=-1), dtype=bool)
        if confidence is not None:
            seen = seen & (np.nan_to_num(np.asarray(confidence, dtype=np.float64), nan=0.0) >= MIN_JOINT_CONFIDENCE)
        self._tracks = [t for t in self._tracks if frame - t.last_frame <= self.max_gap + 1]
        cost = np.array([[self._cost(t, frame, kp[n], seen[n]) for n in range(len(kp))] for t in self._tracks])
        ids: list[int | None] = [None] * len(kp)
        if cost.size:
            taken_tracks: set[int] = set()
            for flat in np.argsort(cost, axis=None, kind="stable"):
                ti, n = divmod(int(flat), len(kp))
                if cost[ti, n] > self.max_cost:
                    break
                if ti in taken_tracks or ids[n] is not None:
                    continue
                taken_tracks.add(ti)
                ids[n] = self._tracks[ti].track_id
                self._follow(self._tracks[ti], frame, kp[n], seen[n])
        for n in range(len(kp)):
            if ids[n] is None and seen[n].any():
                ids[n] = self._start(frame, kp[n], seen[n])
        return [-1 if i is None else i for i in ids]

    def _cost(self, track: _Track, frame: int, kp: np.ndarray, seen: np.ndarray) -> float:
        both = seen & np.isfinite(track.keypoints).all(axis=-1)
        if not both.any():
            return math.inf
        predicted = track.keypoints + track.velocity * (frame - track.last_frame)
        return float(np.linalg.norm(kp[both] - predicted[both], axis=-1).mean() / track.scale)

    def _start(self, frame: int, kp: np.ndarray, seen: np.ndarray) -> int:
        track_id, self._next_id = self._next_id, self._next_id + 1
        points = np.where(seen[:, None], kp, np.nan)
        self._tracks.append(_Track(track_id, points, np.zeros_like(kp), frame, _scale(kp[seen])))
        return track_id

    @staticmethod
    def _follow(track: _Track, frame: int, kp: np.ndarray, seen: np.ndarray) -> None:
        steps = frame - track.last_frame
        was_seen = np.isfinite(track.keypoints).all(axis=-1)
        moved = seen & was_seen
        track.velocity[moved] = (kp[moved] - track.keypoints[moved]) / steps
        track.keypoints[seen] = kp[seen]
        track.last_frame, track.scale = frame, _scale(kp[seen])


def _scale(points: np.ndarray) -> float:
    if len(points) == 0:
        return MIN_SCALE
    return max(float(np.linalg.norm(points.max(axis=0) - points.min(axis=0))), MIN_SCALE)
