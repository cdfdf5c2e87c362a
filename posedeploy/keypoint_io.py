"""2D keypoints in the formats detectors and datasets write, as H36M-17 sequences (numpy only).

Formats (by file extension and content):
- ``.npy``: a plain (F, 17, 2) or (F, 17, 3) array: x, y (pixels or normalised), optional confidence.
- ``.npz``: VideoPose3D 2D keypoints (``positions_2d`` = {video: {action: [one array per camera]}},
  ``metadata`` with ``video_metadata`` = {video: {w, h}} where known), or an archive with one array
  named ``keypoints`` (and optionally ``frame_ids``). 16-joint Stacked Hourglass arrays are
  completed to 17 joints as in posedeploy.data.h36m.
- ``.json``: COCO-17 keypoints as 2D detectors write them, mapped to H36M-17 (:data:`COCO_TO_H36M`):
  the COCO results format (a list of ``{"image_id", "keypoints": [x, y, v] * 17, "score"}``) or
  MMPose's prediction files (``{"instance_info": [{"frame_id", "instances": [{"keypoints",
  "keypoint_scores"}]}]}``, or that list alone). One person per frame: the highest-scoring one.

Missing joints — confidence below ``min_confidence``, or non-finite coordinates — are filled by
linear interpolation over time from the frames where the joint was seen. A frame is skipped (and
reported) when more than ``max_missing`` of its 17 joints are missing, or a missing joint was
never seen in any frame; frames with no joints at all are always skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, SupportsFloat, cast

import numpy as np
from numpy.typing import ArrayLike

from posedeploy.data.h36m import NECK_NOSE_FRACTION, complete_sh16
from posedeploy.errors import InputError, PoseDeployError
from posedeploy.safe_npz import load_npy, load_npz
from posedeploy.skeleton import NUM_JOINTS

COCO_JOINTS = 17
# COCO-17 order: 0 nose, 1 l_eye, 2 r_eye, 3 l_ear, 4 r_ear, 5 l_shoulder, 6 r_shoulder, 7 l_elbow,
# 8 r_elbow, 9 l_wrist, 10 r_wrist, 11 l_hip, 12 r_hip, 13 l_knee, 14 r_knee, 15 l_ankle, 16 r_ankle.
# H36M-17 joints taken directly from one COCO joint:
COCO_TO_H36M: dict[int, int] = {
    1: 12,
    2: 14,
    3: 16,
    4: 11,
    5: 13,
    6: 15,
    9: 0,
    11: 5,
    12: 7,
    13: 9,
    14: 6,
    15: 8,
    16: 10,
}
# The others are built: pelvis = mean of the hips; thorax = mean of the shoulders; spine = mean of
# pelvis and thorax; head = thorax + (nose - thorax) / 0.444, since the H36M neck/nose joint lies
# NECK_NOSE_FRACTION of the way from thorax to head.
HEAD_FROM_NOSE = 1 / NECK_NOSE_FRACTION


@dataclass
class KeypointSequence:
    """One sequence of frames: keypoints (F, 17, 2), per-joint confidence (F, 17) or None."""

    keypoints: np.ndarray
    confidence: np.ndarray | None
    frame_ids: np.ndarray
    name: str = "sequence"
    image_size: tuple[float, float] | None = None
    skipped: list[tuple[int | str, str]] = field(
        default_factory=list
    )  # (frame id, reason) of frames removed by cleaning


def coco_to_h36m(coco: np.ndarray) -> np.ndarray:
    """(..., 17, C) COCO-17 joints -> (..., 17, C) H36M-17 joints (C: x, y[, confidence])."""
    h36m = np.empty(coco.shape[:-2] + (NUM_JOINTS, coco.shape[-1]), dtype=np.float64)
    for h, c in COCO_TO_H36M.items():
        h36m[..., h, :] = coco[..., c, :]
    pelvis = (coco[..., 11, :] + coco[..., 12, :]) / 2
    thorax = (coco[..., 5, :] + coco[..., 6, :]) / 2
    h36m[..., 0, :], h36m[..., 8, :] = pelvis, thorax
    h36m[..., 7, :] = (pelvis + thorax) / 2
    h36m[..., 10, :] = thorax + (coco[..., 0, :] - thorax) * HEAD_FROM_NOSE
    if coco.shape[-1] == 3:  # a built joint is as sure as its least sure source
        conf = coco[..., 2]
        h36m[..., 0, 2] = np.minimum(conf[..., 11], conf[..., 12])
        h36m[..., 8, 2] = np.minimum(conf[..., 5], conf[..., 6])
        h36m[..., 7, 2] = np.minimum(h36m[..., 0, 2], h36m[..., 8, 2])
        h36m[..., 10, 2] = np.minimum(h36m[..., 8, 2], conf[..., 0])
    return h36m


def _split(
    array: np.ndarray, name: str, frame_ids: ArrayLike | None = None, image_size: tuple[float, float] | None = None
) -> KeypointSequence:
    array = np.asarray(array)
    if array.dtype.kind not in "fiu":  # a cast would drop imaginary parts or turn dates into numbers
        raise InputError(f"{name}: keypoints must be real numbers, got dtype {array.dtype}")
    array = array.astype(np.float64)
    if array.ndim != 3 or array.shape[1] not in (16, 17) or array.shape[2] not in (2, 3):
        raise InputError(f"{name}: keypoints must have shape (F, 17, 2) or (F, 17, 3), got {array.shape}")
    if len(array) == 0:
        raise InputError(f"{name}: no frames")
    if array.shape[1] == 16:
        xy = complete_sh16(array[..., :2])
        if array.shape[2] == 3:  # the estimated neck/nose is as sure as the less sure of thorax and head
            conf = np.insert(array[..., 2], 9, np.minimum(array[..., 8, 2], array[..., 9, 2]), axis=-1)
            array = np.concatenate([xy, conf[..., None]], axis=-1)
        else:
            array = xy
    ids = np.arange(len(array)) if frame_ids is None else np.asarray(frame_ids)
    if len(ids) != len(array):
        raise InputError(f"{name}: {len(ids)} frame ids for {len(array)} frames")
    confidence = array[..., 2] if array.shape[2] == 3 else None
    return KeypointSequence(array[..., :2], confidence, ids, name, image_size)


def _read_npz(path: Path) -> list[KeypointSequence]:
    archive = load_npz(path)  # never runs code from the file, whatever its members are called
    if "keypoints" in archive:
        return [_split(archive["keypoints"], path.name, archive.get("frame_ids"))]
    if "positions_2d" not in archive:
        raise InputError(f"{path} has neither 'keypoints' nor 'positions_2d' (found: {', '.join(archive)})")
    videos = archive["positions_2d"].item()
    meta = archive["metadata"].item() if "metadata" in archive else {}
    if not isinstance(videos, dict):
        raise InputError(f"{path}: positions_2d must be a dict of videos, got {type(videos).__name__}")
    sizes = meta.get("video_metadata", {}) if isinstance(meta, dict) else {}
    out = []
    for video, actions in videos.items():
        size = sizes.get(video)
        image_size = (float(size["w"]), float(size["h"])) if size else None
        for action, cameras in actions.items():
            for cam, array in enumerate(cameras):
                out.append(_split(array, f"{video}/{action}/{cam}", image_size=image_size))
    if not out:
        raise InputError(f"{path}: positions_2d holds no sequences")
    return out


def _instances_coco(items: list[object]) -> dict[int | str, list[tuple[float, np.ndarray]]]:
    frames: dict[int | str, list[tuple[float, np.ndarray]]] = {}
    for item in items:
        if not isinstance(item, dict) or "keypoints" not in item:
            raise InputError("COCO results entries need 'keypoints' (and 'image_id')")
        kp = np.asarray(item["keypoints"], dtype=np.float64)
        if kp.size != COCO_JOINTS * 3:
            raise InputError(f"COCO keypoints must be 17 x (x, y, v) = 51 numbers, got {kp.size}")
        frames.setdefault(item.get("image_id", len(frames)), []).append(
            (_score(item.get("score", 1.0)), kp.reshape(17, 3))
        )
    return frames


def _score(value: SupportsFloat | str) -> float:
    """A detection's score for choosing the person: a non-finite one (NaN, "nan", inf) is no confidence
    at all, so it ranks below every real score instead of winning a comparison that NaN never loses."""
    score = float(value)
    return score if np.isfinite(score) else -np.inf


def _most_confident(detections: list[tuple[float, np.ndarray]]) -> np.ndarray:
    """The keypoints of the highest-scoring detection (the first of equals)."""
    best = max(range(len(detections)), key=lambda i: (detections[i][0], -i))
    return detections[best][1]


def _instances_mmpose(frames_list: list[dict[str, Any]]) -> dict[int | str, list[tuple[float, np.ndarray]]]:
    frames: dict[int | str, list[tuple[float, np.ndarray]]] = {}
    for i, frame in enumerate(frames_list):
        fid = frame.get("frame_id", frame.get("img_id", i))
        for inst in frame.get("instances", []):
            kp = np.asarray(inst["keypoints"], dtype=np.float64).reshape(-1, 2)
            if len(kp) != COCO_JOINTS:
                raise InputError(f"MMPose instance in frame {fid} has {len(kp)} keypoints, expected 17 (COCO)")
            scores = np.asarray(inst.get("keypoint_scores", np.ones(COCO_JOINTS)), dtype=np.float64).reshape(-1)
            if len(scores) != COCO_JOINTS:
                raise InputError(f"MMPose instance in frame {fid} has {len(scores)} keypoint scores, expected 17")
            # Without a box score, the joints' mean; a joint without a finite score counts as unseen (0).
            score = _score(
                inst["bbox_score"]
                if "bbox_score" in inst
                else np.mean(np.nan_to_num(scores, nan=0.0, posinf=0.0, neginf=0.0))
            )
            frames.setdefault(fid, []).append((score, np.concatenate([kp, scores[:, None]], axis=1)))
        frames.setdefault(fid, [])
    return frames


def _read_json(path: Path) -> list[KeypointSequence]:
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not valid JSON: {exc}") from None
    if isinstance(data, dict) and "instance_info" in data:
        frames = _instances_mmpose(data["instance_info"])
    elif isinstance(data, list) and data and isinstance(data[0], dict) and "instances" in data[0]:
        frames = _instances_mmpose(data)
    elif isinstance(data, list) and data:
        frames = _instances_coco(data)
    else:
        raise InputError(f"{path}: expected COCO results (a list) or MMPose predictions, found nothing to read")
    if not any(frames.values()):
        raise InputError(f"{path}: no person was detected in any of its {len(frames)} frames; nothing to lift")
    ids = sorted(frames, key=lambda f: (isinstance(f, str), f))
    coco = np.full((len(ids), COCO_JOINTS, 3), np.nan)
    for i, fid in enumerate(ids):
        if frames[fid]:
            coco[i] = _most_confident(frames[fid])
    h36m = coco_to_h36m(coco)
    return [KeypointSequence(h36m[..., :2], h36m[..., 2], np.array(ids), path.name)]


FORMATS = {".npy": "keypoint array", ".npz": "VideoPose3D / keypoint archive", ".json": "COCO / MMPose"}


def read_keypoints(path: str | Path) -> list[KeypointSequence]:
    """Every sequence in a keypoint file (see the module docstring for the formats)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"keypoint file not found: {path}")
    if path.stat().st_size == 0:
        raise InputError(f"{path} is empty")
    suffix = path.suffix.lower()
    readers = {
        ".npy": lambda: [_split(load_npy(path), path.name)],
        ".npz": lambda: _read_npz(path),
        ".json": lambda: _read_json(path),
    }
    if suffix not in readers:
        raise InputError(
            f"unknown keypoint file type '{suffix}'; expected .npy, .npz (VideoPose3D) or .json (COCO / MMPose)"
        )
    try:
        return readers[suffix]()
    except PoseDeployError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RecursionError) as exc:
        # Parseable but malformed content (a field of the wrong type, a list where a dict belongs,
        # JSON nested too deep): the file is the problem, not the program.
        raise InputError(
            f"{path}: malformed {FORMATS[suffix]} content ({type(exc).__name__}: {str(exc)[:200]})"
        ) from None


def clean(seq: KeypointSequence, min_confidence: float = 0.3, max_missing: int = 4) -> KeypointSequence:
    """Fill missing joints by interpolation over time; skip frames that cannot be filled (see module doc)."""
    kp = np.array(seq.keypoints, dtype=np.float64)
    missing = cast(np.ndarray, ~np.isfinite(kp).all(axis=-1))  # (F, 17): kp has 3 dimensions
    if seq.confidence is not None:
        conf = np.nan_to_num(seq.confidence, nan=0.0)
        missing |= conf < min_confidence
    reasons = {}
    for f in np.nonzero(missing.all(axis=1))[0]:
        reasons[f] = "no joints"
    for f in np.nonzero(missing.sum(axis=1) > max_missing)[0]:
        reasons.setdefault(f, f"{int(missing[f].sum())} of 17 joints missing (more than {max_missing})")
    frames = np.arange(len(kp))
    for j in range(NUM_JOINTS):
        seen = ~missing[:, j]
        if seen.all():
            continue
        if not seen.any():
            for f in frames:
                reasons.setdefault(f, f"joint {j} never seen")
            continue
        for c in range(2):
            kp[~seen, j, c] = np.interp(frames[~seen], frames[seen], kp[seen, j, c])
    keep = np.array([f not in reasons for f in frames], dtype=bool)
    skipped = list(seq.skipped) + [(seq.frame_ids[f].item(), reasons[f]) for f in sorted(reasons)]
    return KeypointSequence(kp[keep].astype(np.float32), None, seq.frame_ids[keep], seq.name, seq.image_size, skipped)
