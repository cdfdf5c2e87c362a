"""A procedural generator of plausible H36M-17 poses seen by plausible cameras (numpy only).

It is the project's built-in data: the default of every command and of the tests that must not
need ../shared. Each sample draws a body (bone lengths around the Human3.6M means), a posture
from one of a few activities (joint angles within anatomical ranges), a global orientation and
position, and a camera on a ring around the person looking at the pelvis; the 3D joints are
projected through that camera to give the 2D input.
"""

from __future__ import annotations

import numpy as np

from posedeploy.data.camera import Camera, normalize_screen_coordinates
from posedeploy.data.poseset import PoseSet
from posedeploy.errors import InputError
from posedeploy.skeleton import NUM_JOINTS, PARENTS, ROOT

# Mean bone lengths (metres) of Human3.6M S1 S5 S6 S7 S8, indexed by child joint.
BONE_LENGTHS = np.array(
    [0.0, 0.1345, 0.4499, 0.4459, 0.1345, 0.4499, 0.4459, 0.2393, 0.2554,
     0.1163, 0.1150, 0.1493, 0.2804, 0.2496, 0.1493, 0.2804, 0.2496]
)  # fmt: skip

ACTIVITIES: tuple[str, ...] = ("standing", "walking", "sitting", "reaching", "bending")
IMAGE_SIZE = (1000, 1000)
LEFT, RIGHT = 1.0, -1.0  # body frame: x to the person's left, y forward, z up


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _rot_x(a: np.ndarray) -> np.ndarray:
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def _rot_y(a: np.ndarray) -> np.ndarray:
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def _rot_z(a: np.ndarray) -> np.ndarray:
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def _limb(side: float, flex: np.ndarray, abduction: np.ndarray) -> np.ndarray:
    """Direction of a limb segment hanging down, swung forward by ``flex`` and out by ``abduction``."""
    return np.stack(
        [side * np.sin(abduction), np.sin(flex) * np.cos(abduction), -np.cos(flex) * np.cos(abduction)],
        -1,
    )


def _angles(rng: np.random.Generator, activity: np.ndarray) -> dict[str, np.ndarray]:
    """Joint angles in radians for each sample, by activity."""
    n = len(activity)
    deg = np.deg2rad
    u = lambda lo, hi: rng.uniform(lo, hi, n)  # noqa: E731
    a = {
        "lean": u(-5, 15), "side": rng.normal(0, 4, n), "twist": rng.normal(0, 12, n),
        "nod": u(-15, 30),
        "hip_flex_l": rng.normal(0, 8, n), "hip_flex_r": rng.normal(0, 8, n),
        "hip_abd_l": u(0, 12), "hip_abd_r": u(0, 12),
        "knee_l": u(0, 15), "knee_r": u(0, 15),
        "arm_flex_l": u(-20, 40), "arm_flex_r": u(-20, 40),
        "arm_abd_l": u(0, 40), "arm_abd_r": u(0, 40),
        "elbow_l": u(0, 70), "elbow_r": u(0, 70),
        "hand_in_l": u(0, 30), "hand_in_r": u(0, 30),
    }  # fmt: skip
    walking = activity == "walking"
    phase = rng.uniform(0, 2 * np.pi, n)
    swing = 28 * np.sin(phase)
    a["hip_flex_l"] = np.where(walking, swing, a["hip_flex_l"])
    a["hip_flex_r"] = np.where(walking, -swing, a["hip_flex_r"])
    a["knee_l"] = np.where(walking, 8 + 45 * np.clip(-np.sin(phase + 0.8), 0, 1), a["knee_l"])
    a["knee_r"] = np.where(walking, 8 + 45 * np.clip(np.sin(phase + 0.8), 0, 1), a["knee_r"])
    a["arm_flex_l"] = np.where(walking, -0.8 * swing, a["arm_flex_l"])
    a["arm_flex_r"] = np.where(walking, 0.8 * swing, a["arm_flex_r"])
    a["arm_abd_l"] = np.where(walking, u(3, 15), a["arm_abd_l"])
    a["arm_abd_r"] = np.where(walking, u(3, 15), a["arm_abd_r"])

    sitting = activity == "sitting"
    for s in ("l", "r"):
        a[f"hip_flex_{s}"] = np.where(sitting, u(70, 105), a[f"hip_flex_{s}"])
        a[f"knee_{s}"] = np.where(sitting, u(60, 110), a[f"knee_{s}"])
        a[f"elbow_{s}"] = np.where(sitting, u(20, 110), a[f"elbow_{s}"])
    a["lean"] = np.where(sitting, u(-15, 25), a["lean"])

    reaching = activity == "reaching"
    for s in ("l", "r"):
        a[f"arm_flex_{s}"] = np.where(reaching, u(-30, 175), a[f"arm_flex_{s}"])
        a[f"arm_abd_{s}"] = np.where(reaching, u(0, 95), a[f"arm_abd_{s}"])
        a[f"elbow_{s}"] = np.where(reaching, u(0, 140), a[f"elbow_{s}"])

    bending = activity == "bending"
    a["lean"] = np.where(bending, u(25, 85), a["lean"])
    for s in ("l", "r"):
        a[f"hip_flex_{s}"] = np.where(bending, u(5, 70), a[f"hip_flex_{s}"])
        a[f"knee_{s}"] = np.where(bending, u(0, 110), a[f"knee_{s}"])
        a[f"arm_flex_{s}"] = np.where(bending, u(10, 100), a[f"arm_flex_{s}"])
    return {k: deg(v) for k, v in a.items()}


def _bodies(rng: np.random.Generator, n: int) -> np.ndarray:
    """Bone lengths per sample (n, 17): a global size and a small symmetric per-bone jitter."""
    scale = rng.uniform(0.88, 1.12, (n, 1))
    jitter = 1 + rng.normal(0, 0.03, (n, NUM_JOINTS))
    for left, right in ((4, 1), (5, 2), (6, 3), (11, 14), (12, 15), (13, 16)):
        jitter[:, right] = jitter[:, left]
    return BONE_LENGTHS * scale * jitter


def _pose_body_frame(angles: dict[str, np.ndarray], lengths: np.ndarray) -> np.ndarray:
    """Joint positions (n, 17, 3) in the body frame, pelvis at the origin."""
    n = lengths.shape[0]
    torso = _rot_z(angles["twist"]) @ _rot_y(angles["side"]) @ _rot_x(angles["lean"])
    up = np.array([0.0, 0.0, 1.0])
    d = np.zeros((n, NUM_JOINTS, 3))
    d[:, 1] = _unit(np.array([RIGHT, 0.0, -0.15]))
    d[:, 4] = _unit(np.array([LEFT, 0.0, -0.15]))
    for side, (hip, knee, ankle), s in ((RIGHT, (1, 2, 3), "r"), (LEFT, (4, 5, 6), "l")):
        flex, abd = angles[f"hip_flex_{s}"], angles[f"hip_abd_{s}"]
        d[:, knee] = _limb(side, flex, abd)
        d[:, ankle] = _limb(side, flex - angles[f"knee_{s}"], abd)
    d[:, 7] = torso @ up
    d[:, 8] = torso @ up
    neck = _unit(np.array([0.0, 0.35, 1.0]))
    d[:, 9] = np.einsum("nij,j->ni", torso, neck)
    d[:, 10] = np.einsum("nij,j->ni", torso @ _rot_x(angles["nod"]), up)
    for side, (shoulder, elbow, wrist), s in ((LEFT, (11, 12, 13), "l"), (RIGHT, (14, 15, 16), "r")):
        d[:, shoulder] = np.einsum("nij,j->ni", torso, _unit(np.array([side, 0.0, -0.2])))
        flex, abd = angles[f"arm_flex_{s}"], angles[f"arm_abd_{s}"]
        upper = _limb(side, flex, abd)
        fore = _limb(side, flex + angles[f"elbow_{s}"], abd - angles[f"hand_in_{s}"])
        d[:, elbow] = np.einsum("nij,nj->ni", torso, upper)
        d[:, wrist] = np.einsum("nij,nj->ni", torso, fore)
    joints = np.zeros((n, NUM_JOINTS, 3))
    for j in range(1, NUM_JOINTS):  # parents come before children in H36M order
        joints[:, j] = joints[:, PARENTS[j]] + lengths[:, j, None] * d[:, j]
    return joints


def _look_at(position: np.ndarray, target: np.ndarray) -> np.ndarray:
    """World-to-camera rotations (n, 3, 3) of level cameras: x right, y down, z forward."""
    forward = _unit(target - position)
    right = _unit(np.cross(forward, np.array([0.0, 0.0, 1.0])))
    down = np.cross(forward, right)
    return np.stack([right, down, forward], axis=-2)


def random_cameras(rng: np.random.Generator, targets: np.ndarray) -> list[Camera]:
    """One camera per target (n, 3): 3.5-6.5 m away at 0.8-2.2 m height, aimed a few tens of
    centimetres off it (so the person is not always centred), H36M-like intrinsics, no distortion."""
    n = len(targets)
    azimuth = rng.uniform(0, 2 * np.pi, n)
    distance = rng.uniform(3.5, 6.5, n)
    position = np.stack(
        [targets[:, 0] + distance * np.cos(azimuth), targets[:, 1] + distance * np.sin(azimuth),
         rng.uniform(0.8, 2.2, n)], -1,
    )  # fmt: skip
    aim = targets + rng.normal(0, [0.3, 0.3, 0.15], (n, 3))
    rotation = _look_at(position, aim)
    focal = rng.uniform(1000, 1200, n)
    w, h = IMAGE_SIZE
    centre = np.array([w / 2, h / 2]) + rng.normal(0, 8, (n, 2))
    return [
        Camera(id="synthetic", R=rotation[i], T=position[i], f=np.array([focal[i], focal[i]]), c=centre[i],
               k=np.zeros(3), p=np.zeros(2), width=w, height=h)
        for i in range(n)
    ]  # fmt: skip


def generate(n: int, seed: int = 0, keypoint_noise_px: float = 0.0) -> PoseSet:
    """``n`` synthetic samples as a :class:`PoseSet`; the same seed gives the same samples.

    keypoint_noise_px adds Gaussian pixel noise to the 2D joints, a stand-in for a detector.
    """
    if n < 1:
        raise InputError(f"number of synthetic samples must be >= 1, got {n}")
    if keypoint_noise_px < 0:
        raise InputError(f"keypoint noise must be >= 0 pixels, got {keypoint_noise_px}")
    rng = np.random.default_rng(seed)
    activity = rng.choice(np.array(ACTIVITIES), n)
    body = _pose_body_frame(_angles(rng, activity), _bodies(rng, n))
    heading = _rot_z(rng.uniform(0, 2 * np.pi, n)) @ _rot_x(np.deg2rad(rng.normal(0, 3, n)))
    world = np.einsum("nij,nkj->nki", heading, body)
    world[..., 2] -= world[..., 2].min(axis=1, keepdims=True)  # lowest joint on the floor
    world[..., :2] += rng.uniform(-1.0, 1.0, (n, 1, 2))

    cameras = random_cameras(rng, world[:, ROOT])
    rotation = np.stack([c.R for c in cameras])
    centre = np.stack([c.T for c in cameras])
    cam_3d = np.einsum("nij,nkj->nki", rotation, world - centre[:, None])
    # No distortion: the pinhole projection, done for all samples at once.
    focal = np.stack([c.f for c in cameras])[:, None]
    principal = np.stack([c.c for c in cameras])[:, None]
    pixels = focal * cam_3d[..., :2] / cam_3d[..., 2:] + principal
    if keypoint_noise_px:
        pixels = pixels + rng.normal(0, keypoint_noise_px, pixels.shape)
    keypoints = normalize_screen_coordinates(pixels, *IMAGE_SIZE)
    poses = cam_3d - cam_3d[:, ROOT : ROOT + 1]
    return PoseSet(
        keypoints=keypoints.astype(np.float32),
        poses_3d=poses.astype(np.float32),
        actions=activity.astype(str),
        subjects=np.full(n, "synthetic"),
        cameras=np.full(n, "synthetic"),
        frames=np.arange(n),
        source="synthetic",
        meta={"seed": seed, "keypoint_noise_px": keypoint_noise_px},
        intrinsics=np.concatenate([focal[:, 0], principal[:, 0]], axis=-1),
        image_sizes=np.tile(np.array(IMAGE_SIZE, dtype=np.float64), (n, 1)),
    )


# Seeds of the built-in splits, fixed so that train and test never share a sample.
SPLIT_SEEDS = {"train": 1, "test": 2}


def synthetic_split(split: str, n: int, keypoint_noise_px: float = 0.0) -> PoseSet:
    """The built-in synthetic 'train' or 'test' split."""
    if split not in SPLIT_SEEDS:
        raise InputError(f"unknown synthetic split '{split}'; expected 'train' or 'test'")
    data = generate(n, seed=SPLIT_SEEDS[split], keypoint_noise_px=keypoint_noise_px)
    data.meta["split"] = split
    return data
