"""A procedural generator of Human3.6M-like motion sequences seen by Human3.6M-like cameras (numpy only).

It is the project's built-in data: the default of every command and of the tests that must not
need ../shared. Each sequence draws a body (bone lengths like the Human3.6M subjects'), an activity
whose joint angles start from a posture typical of it and then drift smoothly (walking follows a
gait cycle along a path), and one camera placed, tilted and calibrated like the four of the
Human3.6M studio (lens distortion included). The 3D joints are projected through that camera to
give the 2D input, exactly as the Human3.6M ground-truth 2D is made.

Conventions: the world is z-up in metres; a body frame has x to the person's right, y forward and
z up (right-handed, so that mirror images cannot sneak in: see :func:`handedness`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

from posedeploy.data.camera import Camera, normalize_screen_coordinates, project_to_2d
from posedeploy.data.poseset import PoseSet
from posedeploy.errors import InputError
from posedeploy.skeleton import NUM_JOINTS, PARENTS, ROOT

# Mean bone lengths (metres) of Human3.6M S1 S5 S6 S7 S8, indexed by child joint.
BONE_LENGTHS = np.array(
    [
        0.0,
        0.1345,
        0.4499,
        0.4459,
        0.1345,
        0.4499,
        0.4459,
        0.2393,
        0.2554,
        0.1163,
        0.1150,
        0.1493,
        0.2804,
        0.2496,
        0.1493,
        0.2804,
        0.2496,
    ]
)
# Mirror pairs of bones (left child, right child): one body has equal left and right limbs.
_BONE_PAIRS = ((4, 1), (5, 2), (6, 3), (11, 14), (12, 15), (13, 16))

ACTIVITIES: tuple[str, ...] = ("standing", "walking", "sitting", "reaching", "bending", "crouching")
# How often each activity is drawn: upright postures dominate, as in Human3.6M's 15 actions.
ACTIVITY_WEIGHTS = np.array([0.3, 0.2, 0.17, 0.13, 0.1, 0.1])
FPS = 10.0  # the frame rate of the shared Human3.6M copy
SEQUENCE_FRAMES = 50  # five seconds at 10 Hz
RIGHT, LEFT = 1.0, -1.0  # sign of a body-frame x pointing to that side

# The Human3.6M studio (cameras.json of S1-S11): four cameras 4.0-5.6 m from the middle of the
# capture area, 1.48-1.61 m high, tilted 10-16 degrees down, f 1145-1150 px, principal point
# within 12 px of (512, 508), images 1000 x 1000 or 1000 x 1002, radial k1 about -0.2.
CAMERA_DISTANCE = (4.3, 5.8)
CAMERA_HEIGHT = (1.45, 1.65)
CAMERA_TILT_DEG = (10.0, 16.0)
FOCAL_PX = (1145.0, 1150.0)
IMAGE_SIZES = ((1000, 1000), (1000, 1002))
DISTORTION_K = np.array([-0.20, 0.24, 0.0])
# Feet joints (ankles) stand this high above the floor, as in the Human3.6M mocap.
ANKLE_HEIGHT = 0.08
# Half-size of the floor area the person moves in (metres), like the Human3.6M capture area.
AREA = 1.2


def _unit(v: np.ndarray) -> np.ndarray:
    unit: np.ndarray = v / np.linalg.norm(v, axis=-1, keepdims=True)
    return unit


def _rot_x(a: np.ndarray) -> np.ndarray:
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def _rot_y(a: np.ndarray) -> np.ndarray:
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def _rot_z(a: np.ndarray) -> np.ndarray:
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def _forward_tilt(a: np.ndarray) -> np.ndarray:
    """Rotations that tip the body's up axis (z) towards its front (y) by ``a`` radians."""
    return _rot_x(-a)


def _apply(rotation: np.ndarray, v: np.ndarray) -> np.ndarray:
    """rotation (n, 3, 3) applied to v (3,) or (n, 3)."""
    rotated: np.ndarray = np.einsum("nij,nj->ni", rotation, np.broadcast_to(v, rotation.shape[:-1]))
    return rotated


def _limb(side: float, flex: np.ndarray, abduction: np.ndarray) -> np.ndarray:
    """Direction of a segment hanging down, swung forward by ``flex`` and out to ``side`` by ``abduction``."""
    return np.stack(
        [side * np.sin(abduction), np.sin(flex) * np.cos(abduction), -np.cos(flex) * np.cos(abduction)],
        -1,
    )


def _bend(upper: np.ndarray, angle: np.ndarray, inward: np.ndarray, side: float) -> np.ndarray:
    """The forearm direction: ``upper`` (n, 3) bent forward by ``angle`` at the elbow, the bending
    plane turned towards the body's midline by ``inward`` (internal rotation of the upper arm)."""
    forward = np.array([0.0, 1.0, 0.0])
    ref = forward - (upper @ forward)[:, None] * upper
    weak = np.linalg.norm(ref, axis=-1) < 0.3  # upper arm pointing forward: bend upwards instead
    alt = np.array([0.0, 0.0, 1.0]) - (upper @ np.array([0.0, 0.0, 1.0]))[:, None] * upper
    ref = _unit(np.where(weak[:, None], alt, ref))
    across = np.cross(upper, ref)  # completes (upper, ref, across) to a right-handed frame
    plane = np.cos(inward)[:, None] * ref - side * np.sin(inward)[:, None] * across
    bent: np.ndarray = np.cos(angle)[:, None] * upper + np.sin(angle)[:, None] * plane
    return bent


def _smooth(rng: np.random.Generator, n: int, t: np.ndarray) -> np.ndarray:
    """Smooth random signals (n, T) of unit standard deviation: three slow sinusoids per sequence."""
    freq = rng.uniform(0.04, 0.35, (n, 3, 1))
    phase = rng.uniform(0, 2 * np.pi, (n, 3, 1))
    signals: np.ndarray = np.sqrt(2 / 3) * np.sin(2 * np.pi * freq * t + phase).sum(axis=1)
    return signals


# Posture of each activity: for every angle (degrees) the range its per-sequence value is drawn
# from, and how far (standard deviation) it drifts during the sequence. Chosen so that the joint
# angles (see posedeploy.data.posture) fall in the ranges Human3.6M's actions show.
_BASE = {
    "lean": ((-3, 8), 3),
    "side": ((-4, 4), 2),
    "twist": ((-10, 10), 6),
    "upper": ((8, 20), 3),
    "nod": ((-8, 20), 6),
    "head_turn": ((-25, 25), 12),
    "hip_flex": ((-2, 12), 3),
    "hip_abd": ((0, 10), 2),
    "knee": ((2, 25), 5),
    "arm_flex": ((-10, 50), 12),
    "arm_abd": ((15, 45), 6),
    "elbow": ((30, 145), 15),
    "arm_in": ((0, 70), 10),
}
_ACTIVITY = {
    "standing": {},
    "walking": {"elbow": ((10, 70), 8), "arm_abd": ((4, 15), 3), "knee": ((8, 15), 2), "hip_flex": ((5, 10), 2)},
    "sitting": {
        "hip_flex": ((55, 90), 6),
        "knee": ((60, 100), 8),
        "lean": ((-10, 15), 5),
        "hip_abd": ((0, 20), 4),
        "elbow": ((40, 140), 15),
        "arm_flex": ((0, 50), 10),
    },
    "reaching": {"arm_flex": ((-20, 140), 20), "arm_abd": ((0, 90), 12), "elbow": ((0, 130), 20)},
    "bending": {"lean": ((20, 70), 10), "hip_flex": ((0, 30), 5), "knee": ((0, 50), 8), "arm_flex": ((0, 60), 12)},
    "crouching": {
        "hip_flex": ((70, 110), 8),
        "knee": ((80, 130), 8),
        "lean": ((0, 30), 6),
        "hip_abd": ((5, 25), 4),
        "elbow": ((20, 120), 15),
        "arm_flex": ((10, 70), 10),
    },
}
_PER_SIDE = ("hip_flex", "hip_abd", "knee", "arm_flex", "arm_abd", "elbow", "arm_in")


def _angles(rng: np.random.Generator, activity: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
    """Joint angles in radians, (n, T) per name, for n sequences of activities ``activity`` at times ``t``."""
    n = len(activity)
    out: dict[str, np.ndarray] = {}
    names = [f"{k}_{s}" if k in _PER_SIDE else k for k in _BASE for s in (("l", "r") if k in _PER_SIDE else ("",))]
    for name in names:
        key = name[:-2] if name[-2:] in ("_l", "_r") else name
        value = np.empty((n, len(t)))
        for act in ACTIVITIES:
            rows = activity == act
            (lo, hi), drift = _ACTIVITY[act].get(key, _BASE[key])
            k = int(rows.sum())
            if k:
                value[rows] = rng.uniform(lo, hi, (k, 1)) + drift * _smooth(rng, k, t)
        out[name] = value
    # Walking: a gait cycle of about a second, legs and arms swinging in opposition.
    walking = activity == "walking"
    if walking.any():
        k = int(walking.sum())
        cadence = rng.uniform(0.8, 1.0, (k, 1))
        phase = 2 * np.pi * cadence * t + rng.uniform(0, 2 * np.pi, (k, 1))
        swing = rng.uniform(15, 22, (k, 1)) * np.sin(phase)  # about +25 to -10 degrees with the base flexion
        for s, sign, lag in (("l", 1.0, 0.0), ("r", -1.0, np.pi)):
            out[f"hip_flex_{s}"][walking] += sign * swing
            out[f"knee_{s}"][walking] += 50 * np.clip(np.sin(phase + lag + 0.8), 0, 1) ** 1.5
            out[f"arm_flex_{s}"][walking] = -0.7 * sign * swing + rng.uniform(-5, 10, (k, 1))
    for s in ("l", "r"):  # anatomical limits
        out[f"knee_{s}"] = np.clip(out[f"knee_{s}"], 0, 160)
        out[f"elbow_{s}"] = np.clip(out[f"elbow_{s}"], 0, 150)
        out[f"arm_abd_{s}"] = np.clip(out[f"arm_abd_{s}"], -10, 120)
    return {k: np.deg2rad(v) for k, v in out.items()}


def _bodies(rng: np.random.Generator, n: int) -> np.ndarray:
    """Bone lengths per body (n, 17): a global size and a small symmetric per-bone jitter, spanning
    the Human3.6M subjects (their summed leg-spine-head lengths differ by up to 8 %)."""
    scale = rng.uniform(0.94, 1.06, (n, 1))
    jitter = 1 + rng.normal(0, 0.035, (n, NUM_JOINTS))
    for left, right in _BONE_PAIRS:
        jitter[:, right] = jitter[:, left]
    return BONE_LENGTHS * scale * jitter


def _pose_body_frame(a: dict[str, np.ndarray], lengths: np.ndarray) -> np.ndarray:
    """Joint positions (n, 17, 3) in the body frame (x right, y forward, z up), pelvis at the origin.
    ``a`` holds flat (n,) angles, ``lengths`` (n, 17) bone lengths."""
    n = lengths.shape[0]
    torso = _rot_z(a["twist"]) @ _rot_y(a["side"]) @ _forward_tilt(a["lean"])
    chest = torso @ _forward_tilt(a["upper"])  # the thoracic spine curves forward of the lumbar one
    # Neck and head directions below are Human3.6M's in the pelvis-based frame, hence 'torso'.
    head = torso @ _rot_z(a["head_turn"]) @ _forward_tilt(a["nod"])
    d = np.zeros((n, NUM_JOINTS, 3))
    for side, (hip, knee, ankle), s in ((RIGHT, (1, 2, 3), "r"), (LEFT, (4, 5, 6), "l")):
        d[:, hip] = [side, 0.0, 0.0]
        flex, abd = a[f"hip_flex_{s}"], a[f"hip_abd_{s}"]
        d[:, knee] = _limb(side, flex, abd)
        d[:, ankle] = _limb(side, flex - a[f"knee_{s}"], abd)
    d[:, 7] = _apply(torso, np.array([0.0, 0.0, 1.0]))
    d[:, 8] = _apply(chest, np.array([0.0, 0.0, 1.0]))
    # Human3.6M's neck/nose joint sits forward of the thorax, its head joint above and behind it.
    d[:, 9] = _apply(head, _unit(np.array([0.0, 0.86, 0.51])))
    d[:, 10] = _apply(head, _unit(np.array([0.0, -0.33, 0.94])))
    for side, (shoulder, elbow, wrist), s in ((LEFT, (11, 12, 13), "l"), (RIGHT, (14, 15, 16), "r")):
        d[:, shoulder] = _apply(chest, _unit(np.array([side * 0.92, -0.1, -0.3])))
        upper = _limb(side, a[f"arm_flex_{s}"], a[f"arm_abd_{s}"])
        d[:, elbow] = _apply(chest, upper)
        d[:, wrist] = _apply(chest, _bend(upper, a[f"elbow_{s}"], a[f"arm_in_{s}"], side))
    joints = np.zeros((n, NUM_JOINTS, 3))
    for j in range(1, NUM_JOINTS):  # parents come before children in H36M order
        joints[:, j] = joints[:, PARENTS[j]] + lengths[:, j, None] * d[:, j]
    return joints


def _paths(rng: np.random.Generator, activity: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each sequence's pelvis is on the floor (n, T, 2) and which way the body faces (n, T)."""
    n = len(activity)
    start = rng.uniform(-0.6 * AREA, 0.6 * AREA, (n, 1, 2))
    place = start + 0.15 * np.stack([_smooth(rng, n, t), _smooth(rng, n, t)], -1)
    heading = rng.uniform(0, 2 * np.pi, (n, 1)) + np.deg2rad(20) * _smooth(rng, n, t)
    walking = activity == "walking"
    if walking.any():
        # Walk along a circle around the area's middle at 0.9-1.3 m/s, either way round.
        k = int(walking.sum())
        radius = rng.uniform(0.8, AREA, (k, 1))
        direction = rng.choice([-1.0, 1.0], (k, 1))
        angle = rng.uniform(0, 2 * np.pi, (k, 1)) + direction * rng.uniform(0.9, 1.3, (k, 1)) / radius * t
        place[walking] = radius[..., None] * np.stack([np.cos(angle), np.sin(angle)], -1)
        # The body frame faces +y: heading h turns it to face (-sin h, cos h), the path's tangent.
        heading[walking] = angle + np.pi * (direction < 0)
    return place, heading


def studio_cameras(rng: np.random.Generator, n: int) -> list[Camera]:
    """``n`` cameras like those of the Human3.6M studio: around the capture area at a random
    azimuth, aimed at its middle, tilted down, with Human3.6M-like intrinsics and distortion."""
    azimuth = rng.uniform(0, 2 * np.pi, n)
    distance = rng.uniform(*CAMERA_DISTANCE, n)
    centre = np.stack([distance * np.cos(azimuth), distance * np.sin(azimuth), rng.uniform(*CAMERA_HEIGHT, n)], -1)
    pan = azimuth + np.pi + np.deg2rad(rng.normal(0, 3, n))  # towards the middle, give or take
    tilt = np.deg2rad(rng.uniform(*CAMERA_TILT_DEG, n))
    forward = np.stack([np.cos(pan) * np.cos(tilt), np.sin(pan) * np.cos(tilt), -np.sin(tilt)], -1)
    right = _unit(np.cross(forward, np.array([0.0, 0.0, 1.0])))
    down = np.cross(forward, right)
    roll = _rot_z(np.deg2rad(rng.normal(0, 0.5, n)))  # about the optical axis
    rotation = roll @ np.stack([right, down, forward], axis=-2)
    cameras = []
    for i in range(n):
        w, h = IMAGE_SIZES[rng.integers(len(IMAGE_SIZES))]
        f = rng.uniform(*FOCAL_PX)
        cameras.append(
            Camera(
                id="synthetic",
                R=rotation[i],
                T=centre[i],
                f=np.array([f, f - rng.uniform(0, 3)]),
                c=np.array([w / 2 + rng.normal(8, 4), h / 2 + rng.normal(5, 6)]),
                k=DISTORTION_K + rng.normal(0, [0.006, 0.012, 0.004]),
                p=rng.normal(0, 0.001, 2),
                width=w,
                height=h,
            )
        )
    return cameras


def handedness(poses: np.ndarray) -> np.ndarray:
    """((RHip - LHip) x (Thorax - Pelvis)) . (Nose - Thorax) per pose: negative for a real person in
    a right-handed frame (every Human3.6M frame), positive for a mirror image."""
    across = np.cross(poses[..., 1, :] - poses[..., 4, :], poses[..., 8, :] - poses[..., 0, :])
    side: np.ndarray = np.einsum("...i,...i->...", across, poses[..., 9, :] - poses[..., 8, :])
    return side


def generate(n: int, seed: int = 0, keypoint_noise_px: float = 0.0, sequence_frames: int = SEQUENCE_FRAMES) -> PoseSet:
    """``n`` synthetic samples as a :class:`PoseSet`: consecutive frames of sequences of
    ``sequence_frames`` frames at :data:`FPS` (the last one shorter when ``n`` is not a multiple);
    the same seed gives the same samples. Each sequence is its own 'subject' (``synthetic-0007``)
    with its own camera; ``frames`` counts frames within the sequence.

    keypoint_noise_px adds Gaussian pixel noise to the 2D joints, a stand-in for a detector.
    """
    if n < 1:
        raise InputError(f"number of synthetic samples must be >= 1, got {n}")
    if keypoint_noise_px < 0:
        raise InputError(f"keypoint noise must be >= 0 pixels, got {keypoint_noise_px}")
    if sequence_frames < 1:
        raise InputError(f"frames per synthetic sequence must be >= 1, got {sequence_frames}")
    rng = np.random.default_rng(seed)
    count, frames = -(-n // sequence_frames), min(n, sequence_frames)
    t = np.arange(frames) / FPS
    activity = rng.choice(np.array(ACTIVITIES), count, p=ACTIVITY_WEIGHTS)
    angles = {k: v.reshape(-1) for k, v in _angles(rng, activity, t).items()}
    lengths = np.repeat(_bodies(rng, count), frames, axis=0)
    body = _pose_body_frame(angles, lengths).reshape(count, frames, NUM_JOINTS, 3)
    place, heading = _paths(rng, activity, t)
    lean = _rot_x(np.deg2rad(rng.normal(0, 2, (count, 1)))) @ _rot_y(np.deg2rad(rng.normal(0, 2, (count, 1))))
    world = np.einsum("ntij,ntkj->ntki", _rot_z(heading) @ lean, body)
    world[..., 2] += ANKLE_HEIGHT - world[..., [3, 6], 2].min(axis=-1, keepdims=True)
    world[..., :2] += place[:, :, None]

    cameras = studio_cameras(rng, count)
    cam_3d = np.stack([(world[i] - c.T) @ c.R.T for i, c in enumerate(cameras)])
    pixels = np.stack([project_to_2d(cam_3d[i], c) for i, c in enumerate(cameras)])
    if keypoint_noise_px:
        pixels = pixels + rng.normal(0, keypoint_noise_px, pixels.shape)
    sizes = np.array([[c.width, c.height] for c in cameras], dtype=np.float64)
    keypoints = np.stack([normalize_screen_coordinates(pixels[i], *sizes[i]) for i in range(count)])
    poses = cam_3d - cam_3d[:, :, ROOT : ROOT + 1]
    per_frame: Callable[[ArrayLike], np.ndarray] = lambda values: np.repeat(np.asarray(values), frames, axis=0)[:n]  # noqa: E731
    return PoseSet(
        keypoints=keypoints.reshape(-1, NUM_JOINTS, 2)[:n].astype(np.float32),
        poses_3d=poses.reshape(-1, NUM_JOINTS, 3)[:n].astype(np.float32),
        actions=per_frame(activity).astype(str),
        subjects=per_frame([f"synthetic-{i:04d}" for i in range(count)]).astype(str),
        cameras=np.full(n, "synthetic"),
        frames=np.tile(np.arange(frames), count)[:n],
        source="synthetic",
        meta={"seed": seed, "keypoint_noise_px": keypoint_noise_px, "fps": FPS, "sequence_frames": frames},
        intrinsics=per_frame([[*c.f, *c.c] for c in cameras]),
        image_sizes=per_frame(sizes),
    )


# Seeds of the built-in splits, fixed so that no two splits share a sample.
SPLIT_SEEDS = {"train": 1, "val": 3, "test": 2}


def synthetic_split(split: str, n: int, keypoint_noise_px: float = 0.0) -> PoseSet:
    """The built-in synthetic 'train', 'val' or 'test' split."""
    if split not in SPLIT_SEEDS:
        raise InputError(f"unknown synthetic split '{split}'; expected one of {', '.join(SPLIT_SEEDS)}")
    data = generate(n, seed=SPLIT_SEEDS[split], keypoint_noise_px=keypoint_noise_px)
    data.meta["split"] = split
    return data
