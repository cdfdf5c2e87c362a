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
  "keypoint_scores"}]}]}``, or that list alone).

Several people: every person of a COCO or MMPose file, and (F, N, 17, 2|3) arrays (``.npy``, or
``keypoints`` in an ``.npz``; a person absent from a frame is a row of NaN). Each person becomes a
track (posedeploy/tracking.py): the file's ``track_id`` where every person has one (an ``.npz``:
``track_ids`` (F, N), -1 for an absent person), otherwise associated across frames by keypoints.
Each track is one :class:`KeypointSequence`. Frames are taken in the order of their ids (JSON: the
entries that share an id are the people of one frame; arrays: the ids must increase). A person count
that changes from frame to frame is normal; a non-finite coordinate is a missing joint.

A file's scores are only compared with ``min_confidence`` (so COCO's visibility flags 0, 1, 2 read as
unseen, seen, seen, and a NaN score as unseen). Missing joints — confidence below
``min_confidence``, or non-finite coordinates — are filled by
linear interpolation over time from the frames where the joint was seen. A frame is skipped (and
reported) when more than ``max_missing`` of its 17 joints are missing, or a missing joint was
never seen in any frame; frames with no joints at all are always skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
from numpy.typing import ArrayLike

from posedeploy.data.h36m import NECK_NOSE_FRACTION, complete_sh16
from posedeploy.errors import InputError, PoseDeployError
from posedeploy.safe_npz import load_npy, load_npz
from posedeploy.skeleton import NUM_JOINTS
from posedeploy.tracking import MIN_JOINT_CONFIDENCE, Tracker

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
MAX_GAP = 10  # frames a person may go unseen and keep their track (posedeploy run: --max-gap seconds)


@dataclass
class KeypointSequence:
    """One person's frames: keypoints (F, 17, 2), per-joint confidence (F, 17) or None."""

    keypoints: np.ndarray
    confidence: np.ndarray | None
    frame_ids: np.ndarray
    name: str = "sequence"
    image_size: tuple[float, float] | None = None
    skipped: list[tuple[int | str, str]] = field(
        default_factory=list
    )  # (frame id, reason) of frames removed by cleaning
    track_id: int | None = None  # the person's track, where the file holds several people
    # Each frame's place in the file's timeline (0, 1, ...), so that the frames a person was not seen
    # in are gaps in time; None: consecutive.
    frame_index: np.ndarray | None = None
    observed: np.ndarray | None = None  # (F, 17) after cleaning: False where a joint was filled in

    def timeline(self) -> np.ndarray:
        return np.arange(len(self.keypoints)) if self.frame_index is None else self.frame_index


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


def _as_keypoints(array: np.ndarray, name: str) -> np.ndarray:
    """(F, 17|16, 2|3) or (F, N, 17|16, 2|3) real numbers -> float64 with 17 joints (16-joint Stacked
    Hourglass arrays completed as in posedeploy.data.h36m)."""
    array = np.asarray(array)
    if array.dtype.kind not in "fiu":  # a cast would drop imaginary parts or turn dates into numbers
        raise InputError(f"{name}: keypoints must be real numbers, got dtype {array.dtype}")
    array = array.astype(np.float64)
    if array.ndim not in (3, 4) or array.shape[-2] not in (16, 17) or array.shape[-1] not in (2, 3):
        raise InputError(
            f"{name}: keypoints must have shape (F, 17, 2) or (F, 17, 3), or (F, N, 17, 2|3) for N people, "
            f"got {array.shape}"
        )
    if len(array) == 0:
        raise InputError(f"{name}: no frames")
    if array.shape[-2] == 16:
        xy = complete_sh16(array[..., :2])
        if array.shape[-1] == 3:  # the estimated neck/nose is as sure as the less sure of thorax and head
            conf = np.insert(array[..., 2], 9, np.minimum(array[..., 8, 2], array[..., 9, 2]), axis=-1)
            array = np.concatenate([xy, conf[..., None]], axis=-1)
        else:
            array = xy
    return array


def _frame_ids(frame_ids: ArrayLike | None, frames: int, name: str) -> np.ndarray:
    ids = np.arange(frames) if frame_ids is None else np.asarray(frame_ids)
    if ids.ndim != 1 or len(ids) != frames:
        raise InputError(f"{name}: {ids.size} frame ids for {frames} frames")
    if ids.dtype.kind in "iuf" and (np.diff(ids) <= 0).any():
        bad = int(np.argmax(np.diff(ids) <= 0)) + 1
        raise InputError(f"{name}: frame ids must increase; frame {bad} has id {ids[bad]} after {ids[bad - 1]}")
    return ids


def _split(
    array: np.ndarray,
    name: str,
    frame_ids: ArrayLike | None = None,
    image_size: tuple[float, float] | None = None,
    track_ids: ArrayLike | None = None,
    max_gap: int = MAX_GAP,
) -> list[KeypointSequence]:
    """One array of keypoints -> its people's sequences (one, for an (F, 17, C) array)."""
    array = _as_keypoints(array, name)
    ids = _frame_ids(frame_ids, len(array), name)
    if array.ndim == 3:
        confidence = array[..., 2] if array.shape[-1] == 3 else None
        return [KeypointSequence(array[..., :2], confidence, ids, name, image_size)]
    present = np.isfinite(array[..., :2]).any(axis=(-1, -2))  # (F, N): a row of NaN is nobody
    people = [frame[present[f]] for f, frame in enumerate(array)]
    file_ids: list[list[int | None]] = [[None] * len(p) for p in people]
    if track_ids is not None:
        given = np.asarray(track_ids)
        if given.shape != array.shape[:2] or given.dtype.kind not in "iu":
            raise InputError(
                f"{name}: track_ids must be whole numbers of shape (F, N) = {array.shape[:2]}, "
                f"got {given.dtype} {given.shape}"
            )
        if (given[present] < 0).any():
            raise InputError(f"{name}: a person present in a frame has a negative track id (-1 marks absent people)")
        file_ids = [[int(i) for i in given[f][present[f]]] for f in range(len(array))]
    return _tracks(people, file_ids, ids, name, image_size, max_gap)


def _tracks(
    people: list[np.ndarray],
    file_ids: list[list[int | None]],
    frame_ids: np.ndarray,
    name: str,
    image_size: tuple[float, float] | None = None,
    max_gap: int = MAX_GAP,
) -> list[KeypointSequence]:
    """Each frame's (N, 17, 2|3) people -> one sequence per track: the file's ids where every person
    has one, otherwise :class:`~posedeploy.tracking.Tracker`'s."""
    given = [i for frame in file_ids for i in frame]
    if given and all(i is not None for i in given):
        for f, listed in enumerate(file_ids):
            if len(set(listed)) != len(listed):
                twice = next(i for i in listed if listed.count(i) > 1)
                raise InputError(f"{name}: frame {_plain_id(frame_ids[f])} has track id {twice} for two people")
        assigned: list[list[int]] = [[int(i) for i in listed if i is not None] for listed in file_ids]
    else:
        tracker = Tracker(max_gap=max_gap)
        assigned = [
            tracker.update(f, p[..., :2], p[..., 2] if p.shape[-1] == 3 else None) for f, p in enumerate(people)
        ]
    by_track: dict[int, list[tuple[int, np.ndarray]]] = {}
    for f, (frame, tracks) in enumerate(zip(people, assigned, strict=True)):
        for person, track in zip(frame, tracks, strict=True):
            if track >= 0:
                by_track.setdefault(track, []).append((f, person))
    if not by_track:
        detected = sum(len(frame) for frame in people)
        if detected:
            raise InputError(
                f"{name}: {detected} detection(s), none with a joint seen (a finite position with confidence >= "
                f"{MIN_JOINT_CONFIDENCE:g}); nothing to lift"
            )
        raise InputError(f"{name}: no person was detected in any of its {len(people)} frames; nothing to lift")
    out = []
    for track in sorted(by_track, key=lambda k: (by_track[k][0][0], k)):  # in order of appearance
        index = np.array([f for f, _ in by_track[track]])
        kp = np.stack([person for _, person in by_track[track]])
        label = f"{name} track {track}" if len(by_track) > 1 else name
        confidence = kp[..., 2] if kp.shape[-1] == 3 else None
        out.append(KeypointSequence(kp[..., :2], confidence, frame_ids[index], label, image_size, [], track, index))
    return out


def _plain_id(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value


def _read_npz(path: Path, max_gap: int = MAX_GAP) -> list[KeypointSequence]:
    archive = load_npz(path)  # never runs code from the file, whatever its members are called
    if "keypoints" in archive:
        keypoints, frame_ids, track_ids = archive["keypoints"], archive.get("frame_ids"), archive.get("track_ids")
        return _split(keypoints, path.name, frame_ids, track_ids=track_ids, max_gap=max_gap)
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
                out += _split(array, f"{video}/{action}/{cam}", image_size=image_size)
    if not out:
        raise InputError(f"{path}: positions_2d holds no sequences")
    return out


# One detected person: COCO-17 keypoints with confidence (17, 3) and the file's track id, if any.
Detection = tuple[np.ndarray, int | None]


def _track_id(item: dict[str, Any]) -> int | None:
    value = item.get("track_id")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError(f"track_id must be a whole number >= 0, got {value!r}")
    return value


def _instances_coco(items: list[object]) -> dict[int | str, list[Detection]]:
    frames: dict[int | str, list[Detection]] = {}
    for item in items:
        if not isinstance(item, dict) or "keypoints" not in item:
            raise InputError("COCO results entries need 'keypoints' (and 'image_id')")
        kp = np.asarray(item["keypoints"], dtype=np.float64)
        if kp.size != COCO_JOINTS * 3:
            raise InputError(f"COCO keypoints must be 17 x (x, y, v) = 51 numbers, got {kp.size}")
        frames.setdefault(item.get("image_id", len(frames)), []).append((kp.reshape(17, 3), _track_id(item)))
    return frames


def _instances_mmpose(frames_list: list[dict[str, Any]]) -> dict[int | str, list[Detection]]:
    frames: dict[int | str, list[Detection]] = {}
    for i, frame in enumerate(frames_list):
        fid = frame.get("frame_id", frame.get("img_id", i))
        for inst in frame.get("instances", []):
            kp = np.asarray(inst["keypoints"], dtype=np.float64).reshape(-1, 2)
            if len(kp) != COCO_JOINTS:
                raise InputError(f"MMPose instance in frame {fid} has {len(kp)} keypoints, expected 17 (COCO)")
            scores = np.asarray(inst.get("keypoint_scores", np.ones(COCO_JOINTS)), dtype=np.float64).reshape(-1)
            if len(scores) != COCO_JOINTS:
                raise InputError(f"MMPose instance in frame {fid} has {len(scores)} keypoint scores, expected 17")
            frames.setdefault(fid, []).append((np.concatenate([kp, scores[:, None]], axis=1), _track_id(inst)))
        frames.setdefault(fid, [])
    return frames


def _read_json(path: Path, max_gap: int = MAX_GAP) -> list[KeypointSequence]:
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
    ids = sorted(frames, key=lambda f: (isinstance(f, str), f))
    people = [
        coco_to_h36m(np.stack([kp for kp, _ in frames[f]])) if frames[f] else np.zeros((0, NUM_JOINTS, 3)) for f in ids
    ]
    file_ids = [[track for _, track in frames[f]] for f in ids]
    return _tracks(people, file_ids, np.array(ids), path.name, max_gap=max_gap)


FORMATS = {".npy": "keypoint array", ".npz": "VideoPose3D / keypoint archive", ".json": "COCO / MMPose"}


def read_keypoints(path: str | Path, max_gap: int = MAX_GAP) -> list[KeypointSequence]:
    """Every sequence in a keypoint file (see the module docstring for the formats); people who go
    unseen for more than ``max_gap`` frames end their track, where the tracker makes the tracks."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"keypoint file not found: {path}")
    if path.stat().st_size == 0:
        raise InputError(f"{path} is empty")
    suffix = path.suffix.lower()
    readers = {
        ".npy": lambda: _split(load_npy(path), path.name, max_gap=max_gap),
        ".npz": lambda: _read_npz(path, max_gap),
        ".json": lambda: _read_json(path, max_gap),
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
    return KeypointSequence(
        kp[keep].astype(np.float32),
        None,
        seq.frame_ids[keep],
        seq.name,
        seq.image_size,
        skipped,
        seq.track_id,
        seq.timeline()[keep],
        ~missing[keep],
    )
