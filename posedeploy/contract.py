"""The pipeline contract (see DESIGN.md), shared by the PyTorch reference, the exporter and the
torch-free runtime (numpy only): tensor names and shapes, input validation, sampling noise.

| tensor            | dtype, shape            | meaning                                            |
| keypoints (in)    | float32 (B, 17, 2)      | normalised screen coordinates, H36M-17 order       |
| noise (in)        | float32 (B, S, 2, 17, 2)| standard normal draws; axis 2 = pose / mirror view |
| sigma (out)       | float32 (B, 2, 17)      | clamp(AVG, min=1) * alpha per view and joint       |
| hypotheses (out)  | float32 (B, S, 17, 3)   | root-relative 3D, metres, mirror-averaged          |
| pose (out)        | float32 (B, 17, 3)      | mean of the hypotheses                             |
| spread (out)      | float32 (B, 17)         | RMS distance of the hypotheses to the pose, metres |

Noise is drawn with ``numpy.random.Generator.standard_normal`` in sample-major order, so that a
seed gives the same draws whatever the chunking, in the reference and in every backend.
"""

from __future__ import annotations

import numpy as np

from posedeploy.data.camera import normalize_screen_coordinates
from posedeploy.errors import InputError
from posedeploy.skeleton import NUM_JOINTS, check_joints

INPUTS: tuple[str, ...] = ("keypoints", "noise")
# The in-graph-noise variant replaces 'noise' by 'slots', any float32 vector of length S.
RNG_INPUTS: tuple[str, ...] = ("keypoints", "slots")
OUTPUTS: tuple[str, ...] = ("sigma", "hypotheses", "pose", "spread")
VIEWS = 2  # the pose and its mirror image


def as_array(value: object, name: str) -> np.ndarray:
    """``value`` as a numpy array; a ragged nest of lists (rows of different lengths) is refused."""
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise InputError(
            f"{name} must be an array of numbers, not a ragged list ({str(exc).splitlines()[0][:100]})"
        ) from None


def check_keypoints(keypoints: np.ndarray) -> np.ndarray:
    """Validate normalised (B, 17, 2) keypoints; returns them as float32."""
    keypoints = as_array(keypoints, "keypoints")
    if keypoints.ndim != 3:
        raise InputError(f"keypoints must have shape (B, 17, 2), got {keypoints.shape}")
    check_joints(keypoints, "keypoints", 2)
    if len(keypoints) == 0:
        raise InputError("keypoints are empty: expected at least one pose (B >= 1)")
    if keypoints.dtype.kind not in "fiu":  # not complex, bool, dates, durations, text or objects
        raise InputError(f"keypoints must be real numbers, got dtype {keypoints.dtype}")
    if not np.isfinite(keypoints).all():
        bad = np.unique(np.nonzero(~np.isfinite(keypoints))[0])
        raise InputError(f"keypoints contain NaN or inf in {len(bad)} pose(s), first at index {bad[0]}")
    return keypoints.astype(np.float32, copy=False)


# Normalised coordinates lie within a few units of 0; values this large are pixels.
PIXEL_HINT = 8.0
MAX_IMAGE_SIDE = 100_000
# Normalised x lies in [-1, 1]; a person in pixels never fits in the 2 x 2 pixels by the image corner.
NORMALISED_RANGE = 2.0


def normalise_keypoints(keypoints: np.ndarray, image_size: tuple[float, float] | None) -> np.ndarray:
    """(B, 17, 2) or (17, 2) keypoints, pixels with ``image_size`` = (w, h) or already normalised."""
    keypoints = as_array(keypoints, "keypoints")
    if keypoints.ndim == 2:
        keypoints = keypoints[None]
    keypoints = check_keypoints(keypoints)
    if image_size is None:
        largest = float(np.abs(keypoints).max())
        if largest > PIXEL_HINT:
            raise InputError(
                f"keypoints look like pixels (largest |value| {largest:.0f}); pass image_size=(width, height), "
                f"or normalise them (x / w * 2 - [1, h / w])"
            )
        return keypoints
    try:
        w, h = (float(v) for v in image_size)
    except (TypeError, ValueError):
        raise InputError(f"image size must be two numbers (width, height), got {image_size!r}") from None
    if not (1 <= w <= MAX_IMAGE_SIDE and 1 <= h <= MAX_IMAGE_SIDE):
        raise InputError(f"image size must be between 1 and {MAX_IMAGE_SIDE:,} pixels a side, got {image_size}")
    if max(w, h) > PIXEL_HINT:
        tiny = np.flatnonzero(np.abs(keypoints).max(axis=(1, 2)) <= NORMALISED_RANGE)
        if len(tiny):
            raise InputError(
                f"{len(tiny)} of {len(keypoints)} pose(s) (first at index {tiny[0]}) lie within {NORMALISED_RANGE:g} "
                f"pixels of the corner of the {w:g} x {h:g} image: they look normalised already; give them without "
                f"an image size, or give pixels"
            )
    normalised = normalize_screen_coordinates(keypoints.astype(np.float64), w, h)
    largest = float(np.abs(normalised).max())
    if largest > PIXEL_HINT:
        raise InputError(
            f"keypoints lie far outside the {w:g} x {h:g} image (up to {largest / 2:.0f} image widths away): "
            f"check image_size and that the keypoints are pixels"
        )
    return normalised.astype(np.float32)


# Standard normal draws beyond 40 have probability below 1e-300; a larger value is not noise of
# this contract, and a value beyond float32's range would become inf in the graph.
MAX_NOISE = 1000.0


def check_noise(noise: np.ndarray, batch: int) -> np.ndarray:
    """Validate (B, S, 2, 17, 2) noise for ``batch`` poses; returns it as float32."""
    noise = as_array(noise, "noise")
    if noise.ndim != 5 or noise.shape[0] != batch or noise.shape[2:] != (VIEWS, NUM_JOINTS, 2) or noise.shape[1] < 1:
        raise InputError(f"noise must have shape ({batch}, S, {VIEWS}, {NUM_JOINTS}, 2) with S >= 1, got {noise.shape}")
    if not np.issubdtype(noise.dtype, np.floating):
        raise InputError(f"noise must be floating point, got dtype {noise.dtype}")
    if not np.isfinite(noise).all():
        raise InputError("noise contains NaN or inf")
    largest = float(np.abs(noise).max())
    if largest > MAX_NOISE:  # also what float32 would turn into inf
        raise InputError(
            f"noise must be standard normal draws (|value| <= {MAX_NOISE:g}), got a value of {largest:.3g}"
        )
    return noise.astype(np.float32, copy=False)


def check_hypotheses(hypotheses: object) -> int:
    """S must be a whole number >= 1."""
    if isinstance(hypotheses, bool) or not isinstance(hypotheses, (int, np.integer)) or hypotheses < 1:
        raise InputError(f"number of hypotheses must be a whole number >= 1, got {hypotheses!r}")
    return int(hypotheses)


def check_seed(seed: object) -> int | None:
    """A seed of numpy's generators: None (fresh entropy) or a whole number >= 0."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise InputError(f"seed must be a whole number >= 0 or None, got {seed!r}")
    return None if seed is None else int(seed)


MAX_HYPOTHESES = 100_000  # per pose and request, in every command and the runtime
DEFAULT_MEMORY_BUDGET_MB = 2048  # what one request may hold in hypotheses or noise
HYPOTHESIS_BYTES = NUM_JOINTS * 3 * 4  # one float32 3D pose
NOISE_BYTES = VIEWS * NUM_JOINTS * 2 * 4  # the noise of one hypothesis, both views


def check_request(
    batch: int,
    hypotheses: int,
    keep_hypotheses: bool,
    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
    noise_per_call: bool = False,
) -> None:
    """Refuse a (B, S) request that cannot fit, before anything is allocated, saying what would:
    S above :data:`MAX_HYPOTHESES`; all B x S hypotheses kept (or, ``noise_per_call``, drawn as one
    noise array) beyond the memory budget."""
    if hypotheses > MAX_HYPOTHESES:
        raise InputError(f"S={hypotheses:,} hypotheses per pose is more than the {MAX_HYPOTHESES:,} posedeploy serves")
    budget = int(memory_budget_mb * 2**20)
    for needed_per, what, applies in (
        (NOISE_BYTES, "drawing noise for", noise_per_call),
        (HYPOTHESIS_BYTES, "keeping", keep_hypotheses),
    ):
        needed = batch * hypotheses * needed_per
        if applies and needed > budget:
            fits = max(1, budget // (hypotheses * needed_per))
            raise InputError(
                f"{what} {batch:,} x {hypotheses:,} hypotheses needs {needed / 2**20:,.0f} MB, over the memory budget "
                f"of {budget / 2**20:,.0f} MB: use batches of at most {fits:,} poses at S={hypotheses:,}"
            )


DRAWS = ("random", "antithetic")


def draw_noise(rng: np.random.Generator, batch: int, hypotheses: int, draws: str = "random") -> np.ndarray:
    """Standard normal noise of the contract shape (batch, S, 2, 17, 2), float32.

    antithetic: the second half of each pose's S draws are the first half negated (one extra draw
    for an odd S), so that the hypotheses' mean noise is exactly 0: a low-discrepancy scheme."""
    if draws == "random":
        return rng.standard_normal((batch, hypotheses, VIEWS, NUM_JOINTS, 2), dtype=np.float32)
    if draws != "antithetic":
        raise InputError(f"noise draws must be one of {', '.join(DRAWS)}, got {draws!r}")
    half = rng.standard_normal((batch, (hypotheses + 1) // 2, VIEWS, NUM_JOINTS, 2), dtype=np.float32)
    return np.concatenate([half, -half], axis=1)[:, :hypotheses]
