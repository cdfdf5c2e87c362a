"""The learning curve that estimates a refit's error, and the carried calibration it scales."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from conftest import needs_torch

from posedeploy.errors import InputError
from posedeploy.reference.learning_curve import CurvePoint, fit_learning_curve, training_samples
from posedeploy.uncertainty import Calibration, fit_calibration


def test_the_power_law_through_runs_of_three_sizes_predicts_the_fourth():
    law = lambda n: 900.0 * n**-0.2  # noqa: E731
    runs = [CurvePoint(f"run{n}", n, law(n)) for n in (150_000, 190_000, 240_000)]
    curve = fit_learning_curve(runs)
    assert curve.exponent == pytest.approx(0.2)
    assert curve.error_ratio(240_000, 290_000) == pytest.approx(law(290_000) / law(240_000))
    assert curve.error_ratio(240_000, 290_000) < 1  # more data: smaller errors, narrower radii


def test_a_curve_needs_two_sizes_of_run_and_real_errors():
    with pytest.raises(InputError, match="at least two amounts of data"):
        fit_learning_curve([CurvePoint("a", 100, 60.0), CurvePoint("b", 100, 62.0)])
    with pytest.raises(InputError, match="positive"):
        fit_learning_curve([CurvePoint("a", 100, 60.0), CurvePoint("b", 200, float("nan"))])
    with pytest.raises(InputError, match="positive"):
        fit_learning_curve([CurvePoint("a", 100, 60.0), CurvePoint("b", 200, 55.0)]).error_ratio(0, 10)


def test_training_samples_are_read_back_or_counted_from_the_run_s_fold():
    from posedeploy.data import load_dataset
    from posedeploy.training.folds import without_fold

    def run(**training):
        return SimpleNamespace(config=SimpleNamespace(training=training))

    assert training_samples(run(samples=1234, fold=[0, 2]), "synthetic", "gt") == 1234
    train, val = load_dataset("synthetic", "train", "gt"), load_dataset("synthetic", "val", "gt")
    assert training_samples(run(fold=None), "synthetic", "gt") == len(train)
    assert training_samples(run(fold=[1, 3]), "synthetic", "gt") == len(without_fold(train, (1, 3))) < len(train)
    assert training_samples(run(fold=None, refit=True), "synthetic", "gt") == len(train) + len(val)


def test_a_scaled_calibration_scales_the_spread_and_keeps_its_radius_factors():
    rng = np.random.default_rng(0)
    raw = rng.uniform(0.005, 0.03, (800, 17))
    errors = np.abs(rng.normal(0, 0.02, (800, 17))) + raw
    cal = fit_calibration(raw, errors, "joint_affine", {"data": "test"})
    scaled = cal.scaled(0.9)
    np.testing.assert_allclose(scaled.spread(raw), 0.9 * cal.spread(raw), rtol=1e-6)
    assert scaled.factor(0.5) == cal.factor(0.5) and scaled.fitted_on["error_ratio"] == 0.9
    assert Calibration.from_json(scaled.to_json()) == scaled


@needs_torch
def test_calibrate_carries_a_calibration_scaled_by_the_error_ratio(tmp_path):
    from helpers import random_checkpoint

    from posedeploy.reference.calibrate import CalibrateSettings, calibrate
    from posedeploy.training.checkpoint import load_checkpoint

    run, refit = random_checkpoint(tmp_path / "run.pt"), random_checkpoint(tmp_path / "refit.pt", seed=1)
    fitted = calibrate(CalibrateSettings(out=tmp_path / "cal.pt", checkpoint=run, hypotheses=4, stride=40))
    result = calibrate(
        CalibrateSettings(out=tmp_path / "r.pt", checkpoint=refit, carry_from=tmp_path / "cal.pt", error_ratio=0.95)
    )
    carried = result.calibration
    assert carried == load_checkpoint(tmp_path / "r.pt").calibration()
    assert carried.fitted_on["carried_from"] == "cal.pt" and carried.fitted_on["error_ratio"] == 0.95
    assert "scaled by the error ratio 0.9500" in result.describe()
    raw = np.full((1, 17), 0.01)
    np.testing.assert_allclose(carried.spread(raw), 0.95 * fitted.calibration.spread(raw), rtol=1e-6)
    for bad, message in (
        (dict(error_ratio=0.9), "name the checkpoint to carry it from"),
        (dict(error_ratio=0.0, carry_from=tmp_path / "cal.pt"), r"in \(0, 2\]"),
        (dict(error_ratio=float("inf"), carry_from=tmp_path / "cal.pt"), r"in \(0, 2\]"),
    ):
        with pytest.raises(InputError, match=message):
            calibrate(CalibrateSettings(out=tmp_path / "bad.pt", checkpoint=refit, **bad))  # type: ignore[arg-type]
    assert not (tmp_path / "bad.pt").exists()
