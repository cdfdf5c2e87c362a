"""``posedeploy run``: a keypoint file in, 3D poses with per-joint uncertainty out (no torch).

Coordinates out are millimetres in the camera frame, root-relative (pelvis at 0), with each
input frame's id carried through; frames the cleaning step skipped are listed with the reason.
Every person of the file is a track, written with its id; each track's poses are also smoothed over
time (``smoothed``: offline by default, or causally as a live stream would; posedeploy/smoothing.py).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from posedeploy import aggregate
from posedeploy.artifacts import ExportConfig
from posedeploy.contract import normalise_keypoints
from posedeploy.errors import ArtifactError, InputError
from posedeploy.files import atomic_path
from posedeploy.keypoint_io import KeypointSequence, clean, read_keypoints
from posedeploy.skeleton import JOINT_NAMES
from posedeploy.smoothing import DEFAULT_FPS, DEFAULT_SMOOTHING, SmoothingParams, gap_frames, smooth_track
from posedeploy.uncertainty import check_level

if TYPE_CHECKING:
    from posedeploy.runtime import MultiHypothesisLifter

logger = logging.getLogger(__name__)


@dataclass
class Camera:
    """Pinhole intrinsics (pixels) and the image size."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: float | None = None
    height: float | None = None

    @property
    def intrinsics(self) -> np.ndarray:
        return np.array([self.fx, self.fy, self.cx, self.cy])


def read_camera(path: str | Path) -> Camera:
    """JSON with ``f`` [fx, fy] and ``c`` [cx, cy] (or a 3x3 ``K``), and optional ``width``, ``height``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"camera file not found: {path}")
    expected = "expected JSON with f [fx, fy] and c [cx, cy] (or K 3x3), and optionally width and height"
    try:
        data = json.loads(path.read_text())
        if "K" in data:
            k = np.asarray(data["K"], dtype=float).reshape(3, 3)
            f, c = [k[0, 0], k[1, 1]], [k[0, 2], k[1, 2]]
        else:
            f, c = [float(v) for v in data["f"]], [float(v) for v in data["c"]]
        size = [None if data.get(key) is None else float(data[key]) for key in ("width", "height")]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError, RecursionError) as exc:
        raise InputError(f"{path}: {expected}: {exc!r}") from None
    if len(f) != 2 or len(c) != 2:
        raise InputError(f"{path}: f and c must hold two numbers each (x, y), got {len(f)} and {len(c)}")
    if not all(np.isfinite(v) for v in f + c):
        raise InputError(f"{path}: focal lengths and principal point must be finite numbers, got f {f}, c {c}")
    if not (f[0] > 0 and f[1] > 0):
        raise InputError(f"{path}: focal lengths must be positive, got {f[0]}, {f[1]}")
    if any(v is not None and not (np.isfinite(v) and v >= 1) for v in size):
        raise InputError(f"{path}: width and height must be finite numbers of pixels >= 1, got {size[0]}, {size[1]}")
    return Camera(f[0], f[1], c[0], c[1], size[0], size[1])


@dataclass
class SequenceResult:
    name: str
    frame_ids: np.ndarray
    keypoints: np.ndarray  # as given after cleaning (pixels or normalised)
    pose: np.ndarray  # (F, 17, 3) mm
    spread: np.ndarray  # (F, 17) mm
    hypotheses: np.ndarray | None
    skipped: list[tuple[int | str, str]] = field(default_factory=list)
    radii: dict[str, np.ndarray] = field(default_factory=dict)  # p (as written) -> (F, 17) mm
    track_id: int | None = None
    timeline: np.ndarray | None = None  # each frame's place in the file's timeline
    observed: np.ndarray | None = None  # (F, 17): False where a joint was filled in by the cleaning
    smoothed: np.ndarray | None = None  # (F, 17, 3) mm


SMOOTHING_MODES = {"offline": None, "causal": 1, "none": -1}  # -> the filter's lag (-1: no smoothing)


@dataclass(frozen=True)
class Smoothing:
    """How ``run`` smooths each track: offline (filter + RTS) or causal (one frame of lag, as PoseStream)."""

    mode: str = "offline"
    fps: float = DEFAULT_FPS
    params: SmoothingParams = DEFAULT_SMOOTHING
    max_gap_s: float = 1.0  # a longer gap in a track restarts its filter

    def __post_init__(self) -> None:
        if self.mode not in SMOOTHING_MODES:
            raise InputError(f"unknown smoothing '{self.mode}'; expected one of {', '.join(SMOOTHING_MODES)}")
        self.params.at_fps(self.fps)  # a bad frame rate is refused here
        gap_frames(self.max_gap_s, self.fps)  # and a bad gap

    def apply(self, r: SequenceResult) -> None:
        lag = SMOOTHING_MODES[self.mode]
        if lag == -1 or len(r.pose) == 0:
            return
        timeline = np.arange(len(r.pose)) if r.timeline is None else r.timeline
        params = self.params.at_fps(self.fps)
        r.smoothed = smooth_track(r.pose, timeline, params, r.observed, lag, self.gap_frames).astype(np.float32)

    @property
    def gap_frames(self) -> int:
        return gap_frames(self.max_gap_s, self.fps)

    def describe(self) -> dict[str, object] | None:
        if self.mode == "none":
            return None
        return {
            "mode": self.mode,
            "fps": self.fps,
            "acceleration_noise_mm2_s3": self.params.accel,
            "measurement_noise_mm": self.params.measurement_mm,
            "latency_frames": SMOOTHING_MODES[self.mode] or 0,
        }


@dataclass
class Prepared:
    """A sequence cleaned and checked, ready to lift: what can be refused is refused before a model loads."""

    name: str
    cleaned: KeypointSequence
    image_size: tuple[float, float] | None


def prepare_sequences(
    sequences: list[KeypointSequence],
    image_size: tuple[float, float] | None,
    camera: Camera | None,
    how: str,
    min_confidence: float,
    max_missing: int,
) -> list[Prepared]:
    if how not in aggregate.AGGREGATIONS:
        raise InputError(f"unknown aggregation '{how}'; expected one of {', '.join(aggregate.AGGREGATIONS)}")
    if how == "jpma" and camera is None:
        raise InputError("--aggregate jpma needs the camera intrinsics: pass --camera CAM.json")
    prepared = []
    for seq in sequences:
        cleaned = clean(seq, min_confidence, max_missing)
        for frame_id, reason in cleaned.skipped:
            logger.info(f"run: {seq.name}: skipping frame {frame_id}: {reason}")
        size = (
            image_size
            or cleaned.image_size
            or ((camera.width, camera.height) if camera and camera.width and camera.height else None)
        )
        if len(cleaned.keypoints):
            normalise_keypoints(cleaned.keypoints, size)  # pixels without an image size, NaN, ...: refused now
            if how == "jpma" and size is None:
                raise InputError("--aggregate jpma needs pixel keypoints and the image size (--image-size W H)")
        prepared.append(Prepared(seq.name, cleaned, size))
    if not any(len(p.cleaned.keypoints) for p in prepared):
        total = sum(len(p.cleaned.skipped) for p in prepared)
        raise InputError(
            f"every frame was skipped ({total} of {total}; see the reasons above): nothing to lift, "
            f"nothing written; lower --min-confidence or raise --max-missing if the joints are there"
        )
    return prepared


def lift_sequences(
    lifter: MultiHypothesisLifter,
    prepared: list[Prepared],
    camera: Camera | None,
    how: str,
    keep_hypotheses: bool,
    seed: int | None,
    radii: tuple[float, ...] = (),
) -> list[SequenceResult]:
    results = []
    for p in prepared:
        cleaned = p.cleaned
        if len(cleaned.keypoints) == 0:
            results.append(
                SequenceResult(
                    p.name,
                    cleaned.frame_ids,
                    cleaned.keypoints,
                    np.zeros((0, 17, 3)),
                    np.zeros((0, 17)),
                    None,
                    cleaned.skipped,
                    {f"{p_:g}": np.zeros((0, 17)) for p_ in radii},
                    cleaned.track_id,
                )
            )
            continue
        need_all = keep_hypotheses or how != "mean"
        out = lifter(cleaned.keypoints, image_size=p.image_size, seed=seed, units="mm", keep_hypotheses=need_all)
        pose = out.pose
        if how != "mean":
            assert out.hypotheses is not None  # kept: need_all
            pixels = cleaned.keypoints.astype(np.float64)
            pose = (
                aggregate.aggregate(out.hypotheses / 1000.0, how, pixels, camera.intrinsics if camera else None)
                * 1000.0
            )
        bad = ~np.isfinite(pose).all(axis=(1, 2)) | ~np.isfinite(out.spread).all(axis=1)
        if bad.any():
            raise ArtifactError(
                f"{p.name}: the model gave non-finite poses for {int(bad.sum())} of {len(pose)} frames "
                f"(first: frame {cleaned.frame_ids[np.argmax(bad)]}); nothing was written"
            )
        results.append(
            SequenceResult(
                p.name,
                cleaned.frame_ids,
                cleaned.keypoints,
                pose.astype(np.float32),
                out.spread,
                out.hypotheses if keep_hypotheses else None,
                cleaned.skipped,
                {f"{p_:g}": out.radius(p_) for p_ in radii},
                cleaned.track_id,
                cleaned.frame_index,
                cleaned.observed,
            )
        )
    return results


def check_output_name(path: Path) -> None:
    if path.suffix not in (".npz", ".json"):
        raise InputError(f"output must end in .npz or .json, got '{path.name}'")


def write_results(
    path: str | Path,
    results: list[SequenceResult],
    how: str,
    config: ExportConfig,
    smoothing: dict[str, object] | None = None,
) -> Path:
    """``.npz`` (arrays, sequences concatenated with a 'sequence' index) or ``.json`` (per frame)."""
    path = Path(path)
    meta = {
        "units": "mm",
        "frame": "camera coordinates, root-relative (pelvis at 0)",
        "joints": list(JOINT_NAMES),
        "aggregation": how,
        "lifter": config.lifter,
        "avg": config.avg,
        "alpha": config.alpha,
        "spread": SPREAD_MEANING if config.uncertainty is not None else RAW_SPREAD_MEANING,
        "radius": RADIUS_MEANING if config.uncertainty is not None else GAUSSIAN_RADIUS_MEANING,
        "smoothing": smoothing,
    }
    if path.suffix == ".json":
        doc = {
            **meta,
            "sequences": [
                {
                    "name": r.name,
                    "track_id": r.track_id,
                    "skipped": [{"frame_id": f, "reason": why} for f, why in r.skipped],
                    "frames": [_frame(r, i) for i in range(len(r.pose))],
                }
                for r in results
            ],
        }
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(doc, allow_nan=False) + "\n")
        return path
    check_output_name(path)
    arrays = {
        "pose": np.concatenate([r.pose for r in results]).astype(np.float32),
        "spread": np.concatenate([r.spread for r in results]).astype(np.float32),
        "frame_ids": np.concatenate([np.asarray(r.frame_ids).astype(str) for r in results]),
        "sequence": np.concatenate([np.full(len(r.pose), i) for i, r in enumerate(results)]),
        "sequence_names": np.array([r.name for r in results]),
        "sequence_track_ids": np.array([-1 if r.track_id is None else r.track_id for r in results]),
        "meta": np.array(json.dumps(meta)),
    }
    for p in results[0].radii if results else ():
        arrays[f"radius_{p}"] = np.concatenate([r.radii[p] for r in results]).astype(np.float32)
    if results and all(r.smoothed is not None for r in results):
        arrays["smoothed"] = np.concatenate([r.smoothed for r in results]).astype(np.float32)
    if all(r.hypotheses is not None for r in results):
        arrays["hypotheses"] = np.concatenate([r.hypotheses for r in results]).astype(np.float32)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]  # numpy's stub: mypy matches **arrays to allow_pickle
    return path


SPREAD_MEANING = "per joint, the expected RMS distance (mm) of the true joint from pose (calibrated)"
RAW_SPREAD_MEANING = "per joint, the RMS distance (mm) of the hypotheses to pose (uncalibrated: smaller than the error)"
RADIUS_MEANING = "radius_P: per joint, the distance (mm) from pose within which the true joint lies with probability P"
GAUSSIAN_RADIUS_MEANING = "radius_P: the radius of probability P of a 3D Gaussian with the uncalibrated spread"


def _frame(r: SequenceResult, i: int) -> dict[str, object]:
    frame: dict[str, object] = {
        "frame_id": _plain(r.frame_ids[i]),
        "pose": np.round(r.pose[i], 2).tolist(),
        "spread": np.round(r.spread[i], 2).tolist(),
    }
    if r.smoothed is not None:
        frame["smoothed"] = np.round(r.smoothed[i], 2).tolist()
    if r.radii:
        frame["radius"] = {p: np.round(v[i], 2).tolist() for p, v in r.radii.items()}
    return frame


def _plain(value: object) -> object:
    return value.item() if hasattr(value, "item") else value


@dataclass(frozen=True)
class RunSettings:
    """``posedeploy run``: a keypoint file, the export to lift it with, and what to write."""

    input: Path  # .npy (F, 17, 2|3), VideoPose3D .npz, or COCO / MMPose .json
    out: Path  # .npz or .json
    artifacts: Path = Path("artifacts")
    image_size: tuple[float, float] | None = None  # for pixel input without a size in the file
    camera: Path | None = None  # intrinsics, for jpma
    aggregate: str = "mean"  # mean, median or jpma
    keep_hypotheses: bool = False
    hypotheses: int | None = None  # None: the S the artifacts' calibration recommends (else 200)
    radius: tuple[float, ...] = ()  # probabilities p: write each joint's radius(p) too
    seed: int | None = 0
    precision: str = "fp32"
    backend: str = "auto"
    min_confidence: float = 0.3  # joints below it count as missing
    max_missing: int = 4  # frames with more missing joints are skipped
    plot: Path | None = None  # a folder of pictures
    gif: bool = False
    plot_every: int = 1
    smooth: str = "offline"  # offline, causal (one frame of lag, as PoseStream) or none
    fps: float | None = None  # of the keypoint file; None: DEFAULT_FPS
    max_gap_s: float = 1.0  # a person unseen for longer ends their track (and restarts the filter)


def _check(s: RunSettings) -> tuple[tuple[float, ...], Smoothing]:
    """Everything that can be refused before the file is read: the radii asked for and the smoothing."""
    from posedeploy.files import check_writable, refuse_overwrite

    refuse_overwrite(s.out, {"--input": s.input, "--camera": s.camera})
    check_output_name(Path(s.out))  # before minutes of lifting, not after
    if isinstance(s.plot_every, bool) or not isinstance(s.plot_every, int) or s.plot_every < 1:
        raise InputError(f"plot interval must be a whole number of frames >= 1, got {s.plot_every!r}")
    if s.plot:
        from posedeploy.visualize import check_can_draw

        check_can_draw()
        check_writable(s.plot)
    if s.image_size is not None and (len(s.image_size) != 2 or min(s.image_size) <= 0):
        raise InputError(f"image size must be two positive numbers W H, got {s.image_size}")
    radii = tuple(check_level(p) for p in s.radius)
    if len(set(radii)) != len(radii):
        raise InputError(f"each radius probability once, got {', '.join(f'{p:g}' for p in radii)}")
    return radii, Smoothing(s.smooth, DEFAULT_FPS if s.fps is None else s.fps, max_gap_s=s.max_gap_s)


def run_file(settings: RunSettings) -> list[SequenceResult]:
    """Lift every person of a keypoint file to 3D poses with per-joint uncertainty, smooth each track,
    write them (and pictures)."""
    from posedeploy.runtime import MultiHypothesisLifter

    s = settings
    radii, smoothing = _check(s)
    sequences = read_keypoints(s.input, max_gap=smoothing.gap_frames)
    camera = read_camera(s.camera) if s.camera else None
    prepared = prepare_sequences(sequences, s.image_size, camera, s.aggregate, s.min_confidence, s.max_missing)
    with MultiHypothesisLifter(
        s.artifacts, precision=s.precision, backend=s.backend, hypotheses=s.hypotheses
    ) as lifter:
        if lifter.calibration is None:
            logger.warning(
                f"{s.artifacts} carry no uncertainty calibration: spread is the hypotheses' raw spread, smaller "
                f"than the true error (calibrate the checkpoint with posedeploy calibrate, then export it again)"
            )
        keep = s.keep_hypotheses or bool(s.plot)
        results = lift_sequences(lifter, prepared, camera, s.aggregate, keep, s.seed, radii)
        config = lifter.config
    if s.fps is None and s.smooth != "none":
        logger.info(f"run: smoothed at {DEFAULT_FPS:g} frames/s, the file's rate being unknown (pass --fps)")
    for r in results:
        smoothing.apply(r)
    write_results(s.out, results, s.aggregate, config, smoothing.describe())
    if s.plot:
        from posedeploy.visualize import save_people_frames

        for name, group in _by_recording(results, Path(s.input).name).items():
            save_people_frames(Path(s.plot), name, group, gif=s.gif, every=s.plot_every)
    return results


def _by_recording(results: list[SequenceResult], file_name: str) -> dict[str, list[SequenceResult]]:
    """The sequences of each recording, for pictures that show its people together: the tracks of a
    file of people all come from that file; any other sequence (a VideoPose3D view) is its own."""
    groups: dict[str, list[SequenceResult]] = {}
    for r in results:
        if len(r.pose):
            groups.setdefault(file_name if r.track_id is not None else r.name, []).append(r)
    return groups
