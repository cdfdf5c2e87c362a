"""PoseSet: aligned 2D inputs and 3D targets, the one in-memory form every stage consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from posedeploy.errors import InputError
from posedeploy.skeleton import check_joints


@dataclass
class PoseSet:
    """N samples of one 2D pose and its 3D pose.

    keypoints: float32 (N, 17, 2), normalised screen coordinates (x/w*2 - [1, h/w]).
    poses_3d:  float32 (N, 17, 3), camera frame, root-relative (root = 0), metres.
    actions / subjects / cameras: (N,) str labels; frames: (N,) int frame index in its sequence.
    intrinsics: optional float64 (N, 4) fx, fy, cx, cy in pixels; image_sizes: optional (N, 2) w, h
    (what reprojection-based aggregation needs to go back to pixels).
    """

    keypoints: np.ndarray
    poses_3d: np.ndarray
    actions: np.ndarray
    subjects: np.ndarray
    cameras: np.ndarray
    frames: np.ndarray
    source: str = "unknown"
    meta: dict[str, Any] = field(default_factory=dict)
    intrinsics: np.ndarray | None = None
    image_sizes: np.ndarray | None = None

    def __post_init__(self) -> None:
        check_joints(self.keypoints, "keypoints", 2)
        check_joints(self.poses_3d, "poses_3d", 3)
        n = len(self.keypoints)
        for name in ("poses_3d", "actions", "subjects", "cameras", "frames", "intrinsics", "image_sizes"):
            if getattr(self, name) is not None and len(getattr(self, name)) != n:
                raise InputError(f"PoseSet.{name} has {len(getattr(self, name))} rows, expected {n}")

    def __len__(self) -> int:
        return len(self.keypoints)

    def take(self, index: np.ndarray) -> PoseSet:
        """The samples at ``index`` (an integer array or a boolean mask)."""
        return PoseSet(
            keypoints=self.keypoints[index],
            poses_3d=self.poses_3d[index],
            actions=self.actions[index],
            subjects=self.subjects[index],
            cameras=self.cameras[index],
            frames=self.frames[index],
            source=self.source,
            meta=dict(self.meta),
            intrinsics=None if self.intrinsics is None else self.intrinsics[index],
            image_sizes=None if self.image_sizes is None else self.image_sizes[index],
        )

    def shares_subjects(self, other: PoseSet) -> bool:
        """Whether any subject of ``other`` is among this set's."""
        return bool(np.isin(other.subjects, self.subjects).any())

    def join(self, other: PoseSet) -> PoseSet:
        """This set's samples followed by ``other``'s (of the same source, e.g. two splits)."""
        if other.source != self.source:
            raise InputError(f"cannot join poses of {self.source} and of {other.source}")
        if (self.intrinsics is None) != (other.intrinsics is None) or (self.image_sizes is None) != (
            other.image_sizes is None
        ):
            raise InputError("cannot join a set with camera intrinsics and image sizes to one without")
        columns = {
            name: np.concatenate([getattr(self, name), getattr(other, name)])
            for name in (
                "keypoints",
                "poses_3d",
                "actions",
                "subjects",
                "cameras",
                "frames",
                "intrinsics",
                "image_sizes",
            )
            if getattr(self, name) is not None
        }
        # What both halves agree on holds for the whole; their splits and subjects add up.
        meta = {k: v for k, v in self.meta.items() if other.meta.get(k, None) == v}
        for key, add in (("split", lambda a, b: f"{a}+{b}"), ("subjects", lambda a, b: list(dict.fromkeys([*a, *b])))):
            if key in self.meta and key in other.meta:
                meta[key] = add(self.meta[key], other.meta[key])
        return PoseSet(**columns, source=self.source, meta=meta)

    def every(self, step: int) -> PoseSet:
        """An evenly spaced subsample: every ``step``-th sample, in order."""
        if step < 1:
            raise InputError(f"subsample step must be >= 1, got {step}")
        if step == 1:
            return self
        subset = self.take(np.arange(0, len(self), step))
        subset.meta["stride"] = step * self.meta.get("stride", 1)
        return subset

    def pixels(self) -> np.ndarray:
        """The 2D keypoints in pixels (needs image_sizes)."""
        if self.image_sizes is None:
            raise ValueError("this PoseSet has no image sizes")
        w, h = self.image_sizes[:, 0, None, None], self.image_sizes[:, 1, None, None]
        pixels: np.ndarray = (self.keypoints + np.concatenate([np.ones_like(w), h / w], axis=-1)) * w / 2
        return pixels

    def action_names(self) -> list[str]:
        """The distinct actions, in order of first appearance."""
        return list(dict.fromkeys(self.actions.tolist()))
