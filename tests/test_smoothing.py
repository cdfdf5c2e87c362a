"""posedeploy/smoothing.py: the constant-velocity Kalman filter, its RTS pass and its live form."""

import numpy as np
import pytest

from posedeploy.errors import InputError
from posedeploy.smoothing import JointFilter, SmoothingParams, smooth_sequence, smooth_track

PARAMS = SmoothingParams(accel=2e5, measurement_mm=30.0, fps=10.0)


def walking(frames: int = 200, fps: float = 10.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Smooth joint paths (mm) sampled at ``fps``, and the same seen through 30 mm of independent noise."""
    shape = np.random.default_rng(0)  # the same motion at every frame rate
    freq, phase = shape.uniform(0.3, 1.5, (1, 17, 3)), shape.uniform(0, 6, (1, 17, 3))
    t = np.arange(frames)[:, None, None] / fps
    truth = 300 * np.sin(freq * t + phase) + 100 * t
    return truth, truth + np.random.default_rng(seed + 1).normal(0, 30, truth.shape)


def accel_error(poses: np.ndarray, truth: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(poses, 2, axis=0) - np.diff(truth, 2, axis=0), axis=-1).mean())


def test_offline_smoothing_lowers_error_and_jitter_and_the_lag_sits_between():
    truth, seen = walking()
    err = {lag: np.linalg.norm(smooth_sequence(seen, PARAMS, lag=lag) - truth, axis=-1).mean() for lag in (None, 0, 1)}
    raw = np.linalg.norm(seen - truth, axis=-1).mean()
    assert err[None] < err[1] < err[0] < raw
    assert err[None] < 0.6 * raw
    assert accel_error(smooth_sequence(seen, PARAMS), truth) < 0.2 * accel_error(seen, truth)


def test_a_straight_line_at_constant_speed_comes_through_unchanged():
    line = np.linspace(0, 2000, 50)[:, None, None] * np.ones((1, 17, 3))
    for lag in (None, 0, 1):  # the speed is unknown at first: a few mm in the first frames, then none
        error = np.abs(smooth_sequence(line, PARAMS, lag=lag) - line)
        assert error[:5].max() < 5 and error[10:].max() < 0.05


def test_the_live_filter_returns_what_the_sequence_filter_does_one_frame_at_a_time():
    _, seen = walking(60)
    observed = np.ones(seen.shape[:2], bool)
    observed[10:14, 5] = False
    for lag in (0, 1):
        live = JointFilter(PARAMS, 17, lag=lag)
        out = [live.push(p, o) for p, o in zip(seen, observed, strict=True)]
        if lag == 1:
            assert out[0] is None
            out = [*out[1:], live.flush()]
        np.testing.assert_allclose(np.stack(out), smooth_sequence(seen, PARAMS, observed, lag=lag), atol=1e-9)


def test_a_missing_joint_is_predicted_through_and_an_unseen_one_passes_through():
    truth, seen = walking()
    observed = np.ones(seen.shape[:2], bool)
    observed[80:86, 3] = False  # a gap: the filter predicts, the given values (here: far off) are ignored
    observed[:10, 7] = False  # not yet seen: no estimate, the given values pass through
    seen[80:86, 3] += 5000.0
    out = smooth_sequence(seen, PARAMS, observed)
    assert np.linalg.norm(out[80:86, 3] - truth[80:86, 3], axis=-1).max() < 150
    np.testing.assert_array_equal(out[:10, 7], seen[:10, 7])
    seen[40, 2] = np.nan  # a non-finite coordinate is a missing measurement too
    assert np.isfinite(smooth_sequence(seen, PARAMS)[41:, 2]).all()


def test_the_model_is_stated_in_seconds_so_a_faster_camera_smooths_alike():
    truth, seen = walking(300, fps=30.0)
    matched = np.abs(smooth_sequence(seen, PARAMS.at_fps(30)) - truth).mean()
    as_if_10_fps = np.abs(smooth_sequence(seen, PARAMS) - truth).mean()  # three times too little motion allowed
    assert matched < as_if_10_fps


@pytest.mark.parametrize(
    "bad, message",
    [
        (lambda: SmoothingParams(0, 30, 10), "accel must be a finite number > 0"),
        (lambda: SmoothingParams(1e5, float("nan"), 10), "measurement_mm must be a finite number > 0"),
        (lambda: SmoothingParams(1e5, 30, -1), "fps must be a finite number > 0"),
        (lambda: smooth_sequence(np.zeros((5, 17, 2)), PARAMS), r"\(frames, joints, 3\)"),
        (lambda: smooth_sequence(np.zeros((5, 17, 3)), PARAMS, np.ones((5, 16), bool)), "boolean mask"),
        (lambda: smooth_sequence(np.zeros((5, 17, 3)), PARAMS, lag=2), "lag must be"),
        (lambda: JointFilter(PARAMS, 17, lag=None), "lag must be 0 or 1"),
    ],
)
def test_bad_parameters_are_refused_in_one_line(bad, message):
    with pytest.raises(InputError, match=message):
        bad()


def test_a_track_with_gaps_is_smoothed_over_time_and_a_long_gap_restarts_the_filter():
    _, seen = walking(40)
    timeline = np.array([*range(0, 10), *range(13, 23), *range(60, 80)])  # a 2-frame gap, then a 36-frame one
    poses = seen[: len(timeline)]
    out = smooth_track(poses, timeline, PARAMS, max_gap=10)
    first = np.full((23, 17, 3), np.nan)
    first[timeline[:20]] = poses[:20]  # the short gap: frames without a measurement in between
    np.testing.assert_allclose(out[:20], smooth_sequence(first, PARAMS)[timeline[:20]], atol=1e-9)
    np.testing.assert_allclose(out[20:], smooth_sequence(poses[20:], PARAMS), atol=1e-9)  # after the long one: afresh
    with pytest.raises(InputError, match="increasing whole numbers"):
        smooth_track(poses, timeline[::-1], PARAMS)


def test_per_frame_measurement_noise_weighs_each_measurement():
    truth, seen = walking(60)
    noise = np.full(seen.shape[:2], 30.0)
    seen[30, 4] += 400.0  # one wild measurement...
    noise[30, 4] = 1e6  # ...said to be worthless
    weighed = smooth_sequence(seen, PARAMS, noise_mm=noise)
    trusted = smooth_sequence(seen, PARAMS)
    assert np.linalg.norm(weighed[30, 4] - truth[30, 4]) < 0.5 * np.linalg.norm(trusted[30, 4] - truth[30, 4])
