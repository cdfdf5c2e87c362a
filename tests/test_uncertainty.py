"""The uncertainty metrics and the calibration of the spread (posedeploy/uncertainty.py), and the
calibration's way from a checkpoint through the export to every runtime backend."""

import json

import numpy as np
import pytest
from conftest import have, needs_torch

from posedeploy import uncertainty
from posedeploy.contract import draw_noise
from posedeploy.errors import InputError, PoseDeployError
from posedeploy.uncertainty import Calibration, fit_calibration


def gaussian_errors(rms: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Distances of isotropic 3D Gaussian draws whose RMS radius is ``rms`` (any shape)."""
    return np.linalg.norm(rng.standard_normal((*rms.shape, 3)) * (rms / np.sqrt(3))[..., None], axis=-1)


def spreads(n: int, rng: np.random.Generator) -> np.ndarray:
    raw = rng.uniform(0.005, 0.05, (n, 17))
    raw[:, 0] = 0  # the root
    return raw


def test_chi3_quantiles_match_tables():
    assert uncertainty.chi3_quantile(0.5) == pytest.approx(1.5382, abs=1e-4)
    assert uncertainty.chi3_quantile(0.9) == pytest.approx(2.5003, abs=1e-4)
    assert uncertainty.chi3_quantile(0.99) == pytest.approx(3.3682, abs=1e-4)


def test_gaussian_radii_hold_p_for_gaussian_errors():
    rng = np.random.default_rng(0)
    raw = spreads(4000, rng)
    errors = gaussian_errors(raw, rng)
    covered = uncertainty.coverage(errors, raw, None)
    assert list(covered) == ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9"]
    assert uncertainty.ece(covered) < 0.01
    # a spread half the truth is overconfident: its 90 % radius holds far less
    halved = uncertainty.coverage(errors * 2, raw, None)
    assert halved["0.9"] < 0.5 and uncertainty.ece(halved) > 0.2


@pytest.mark.parametrize("floor", [0.0, 0.03])
def test_a_fitted_calibration_holds_p_on_new_data_and_recovers_floor_and_scale(floor):
    rng = np.random.default_rng(1)
    scale = 2.0
    raw_fit, raw_new = spreads(6000, rng), spreads(6000, rng)
    truth = lambda raw: np.where(raw > 0, np.sqrt(floor**2 + (scale * raw) ** 2), 0)  # noqa: E731
    errors_fit, errors_new = gaussian_errors(truth(raw_fit), rng), gaussian_errors(truth(raw_new), rng)
    assert uncertainty.ece(uncertainty.coverage(errors_new, raw_new, None)) > 0.2  # uncalibrated: badly off
    cal = fit_calibration(raw_fit, errors_fit, "joint_affine", {"data": "test"})
    # (the floor is fitted as floor^2, the variance that no spread explains)
    assert np.allclose(cal.scale[1:], scale, rtol=0.12) and np.allclose(np.square(cal.floor_m[1:]), floor**2, atol=2e-4)
    spread = cal.spread(raw_new)
    assert uncertainty.ece(uncertainty.coverage(errors_new, spread, cal)) < 0.015
    # spread means the RMS error
    assert np.sqrt((errors_new[:, 1:] ** 2).mean()) == pytest.approx(np.sqrt((spread[:, 1:] ** 2).mean()), rel=0.03)
    # the held-out choice of form: a floor needs the affine form; without one the simplest form suffices
    groups = np.repeat(np.arange(60), 100)
    form, table = uncertainty.choose_form(raw_fit, errors_fit, groups)
    assert set(table) == set(uncertainty.FORMS)
    assert form == ("joint_affine" if floor else "scale")


def test_calibration_records_read_back_and_bad_ones_are_refused():
    rng = np.random.default_rng(2)
    raw = spreads(500, rng)
    cal = fit_calibration(raw, gaussian_errors(raw, rng), "joint_scale", {"split": "val"})
    again = Calibration.from_json(json.loads(json.dumps(cal.to_json())))
    assert again == cal
    assert 0 < cal.factor(0.1) < cal.factor(0.5) < cal.factor(0.999) < cal.factor(0.9999)
    assert cal.radius(np.array([[10.0]]), 0.5)[0, 0] == pytest.approx(10 * cal.factor(0.5))
    for p in (0, 1, 1.5, -0.1, True, "0.5", float("nan")):
        with pytest.raises(InputError, match=r"probability must be a number in \(0, 1\)"):
            cal.factor(p)
    doc = cal.to_json()
    for bad in (
        {**doc, "factors": doc["factors"][::-1]},
        {**doc, "scale": doc["scale"][:3]},
        {**doc, "form": "magic"},
        {**doc, "factors": [float("nan")] * len(doc["factors"])},
    ):
        with pytest.raises(PoseDeployError):
            Calibration.from_json(bad)
    with pytest.raises(InputError, match="same shape"):
        fit_calibration(raw, raw[:, :5], "scale")


def test_sparsification_is_zero_for_the_oracle_and_flat_for_noise():
    rng = np.random.default_rng(3)
    errors = rng.gamma(2.0, 20.0, (3000, 17))
    oracle = uncertainty.sparsification(errors, errors)
    assert oracle.ause == pytest.approx(0.0, abs=1e-12) and oracle.aurg > 0.2
    assert oracle.by_error == sorted(oracle.by_error, reverse=True)
    assert oracle.by_uncertainty[0] == pytest.approx(errors[:, 1:].mean())
    noise = uncertainty.sparsification(errors, rng.uniform(size=errors.shape))
    assert abs(noise.aurg) < 0.03 and noise.ause > oracle.ause


def test_energy_score_of_a_point_is_its_distance_and_it_rewards_calibration():
    rng = np.random.default_rng(4)
    target = rng.normal(size=(50, 17, 3))
    point = np.repeat((target + 0.1)[:, None], 8, axis=1)  # every hypothesis 0.1 * sqrt(3) away
    assert np.allclose(uncertainty.energy_score(point, target), 0.1 * np.sqrt(3))
    centre = rng.normal(size=(400, 17, 3))
    truth = centre + rng.normal(size=centre.shape)
    draws = centre[:, None] + rng.normal(size=(400, 64, 17, 3))
    right = uncertainty.energy_score(draws, truth).mean()
    narrow = uncertainty.energy_score(draws, truth, stretch=np.full((400, 17), 0.4)).mean()
    wide = uncertainty.energy_score(draws, truth, stretch=np.full((400, 17), 2.5)).mean()
    assert right < narrow and right < wide
    with pytest.raises(InputError, match="at least 2 hypotheses"):
        uncertainty.energy_score(point[:, :1], target)


def test_antithetic_draws_pair_each_draw_with_its_negation():
    for s in (1, 6, 7):
        noise = draw_noise(np.random.default_rng(0), 3, s, "antithetic")
        assert noise.shape == (3, s, 2, 17, 2) and noise.dtype == np.float32
        half = (s + 1) // 2
        assert np.array_equal(noise[:, half:], -noise[:, : s - half])
    with pytest.raises(InputError, match="noise draws must be one of"):
        draw_noise(np.random.default_rng(0), 1, 2, "sobol")


@needs_torch
@pytest.mark.skipif(not have("onnxruntime"), reason="needs onnxruntime")
def test_a_calibration_goes_from_checkpoint_to_every_result(tmp_path):
    """calibrate -> export -> runtime: the runtime's spread is the calibrated one, radius(p) follows it,
    golden parity covers it, run writes the radii, eval judges with it."""
    from helpers import random_checkpoint

    from posedeploy.bench.command import BenchSettings, bench
    from posedeploy.bench.report import SweepSettings
    from posedeploy.export.onnx_export import export_artifacts
    from posedeploy.parity import ParitySettings, parity
    from posedeploy.reference.calibrate import CalibrateSettings, calibrate
    from posedeploy.reference.commands import EvalSettings, run_eval
    from posedeploy.run import RunSettings, run_file
    from posedeploy.runtime import MultiHypothesisLifter

    raw_ckpt = random_checkpoint(tmp_path / "raw.pt")
    settings = CalibrateSettings(
        out=tmp_path / "cal.pt", checkpoint=raw_ckpt, split="val", hypotheses=8, recommended_hypotheses=12, stride=20
    )
    result = calibrate(settings)
    cal = result.calibration
    assert cal.hypotheses == 12 and cal.fitted_on["split"] == "val" and set(result.held_out) == set(uncertainty.FORMS)
    assert "wrote" in result.describe()
    with pytest.raises(InputError, match="never on the test split"):
        calibrate(CalibrateSettings(out=tmp_path / "x.pt", checkpoint=raw_ckpt, split="test"))
    assert not (tmp_path / "x.pt").exists()

    cal_path, plain, calibrated = settings.out, tmp_path / "plain", tmp_path / "cal"
    export_artifacts(raw_ckpt, plain)
    export_artifacts(cal_path, calibrated)
    kp = np.random.default_rng(0).uniform(-0.5, 0.5, (5, 17, 2)).astype(np.float32)
    noise = draw_noise(np.random.default_rng(1), 5, 12)
    with MultiHypothesisLifter(plain) as a, MultiHypothesisLifter(calibrated) as b:
        assert a.hypotheses == 200 and b.hypotheses == 12  # the recommended S is the default
        ra, rb = a(kp, noise=noise), b(kp, noise=noise)
    assert not ra.calibrated and rb.calibrated
    np.testing.assert_allclose(rb.spread, cal.spread(ra.spread / 1000, 12) * 1000, rtol=1e-5)
    np.testing.assert_allclose(rb.radius(0.9), rb.spread * cal.factor(0.9), rtol=1e-6)
    np.testing.assert_allclose(ra.radius(0.5), ra.spread * uncertainty.gaussian_factor(0.5), rtol=1e-6)

    report = parity(
        ParitySettings(artifacts=calibrated, checkpoint=cal_path, data="synthetic", samples=16, hypotheses=8)
    )
    # both sides calibrate alike: the radii differ only as much as the (calibrated) spreads do
    radius_diff, spread_diff = report.outputs["radius(0.9)"].max_abs, report.outputs["spread"].max_abs
    assert report.passed and radius_diff <= spread_diff * cal.factor(0.9) * 1.01 + 1e-6
    with pytest.raises(PoseDeployError, match="another checkpoint"):
        parity(ParitySettings(artifacts=calibrated, checkpoint=raw_ckpt, data="synthetic", samples=4, hypotheses=4))

    frames = np.random.default_rng(2).uniform(100, 900, (4, 17, 2)).astype(np.float32)
    np.save(tmp_path / "kp.npy", frames)
    run_file(RunSettings(tmp_path / "kp.npy", tmp_path / "out.json", calibrated, (1000, 1000), radius=(0.5, 0.9)))
    doc = json.loads((tmp_path / "out.json").read_text())
    frame = doc["sequences"][0]["frames"][0]
    assert set(frame["radius"]) == {"0.5", "0.9"} and "probability" in doc["radius"]
    assert all(r9 >= r5 for r5, r9 in zip(frame["radius"]["0.5"], frame["radius"]["0.9"], strict=True))
    with pytest.raises(InputError, match="probability"):
        run_file(RunSettings(tmp_path / "kp.npy", tmp_path / "bad.json", calibrated, (1000, 1000), radius=(1.2,)))
    assert not (tmp_path / "bad.json").exists()

    tiny = SweepSettings(batches=[1], hypotheses=[1], warmup=0, min_repeats=1, min_seconds=0.0)
    for with_recommended, timed in ((True, {1, 12}), (False, {1})):  # bench times the S users run
        settings = BenchSettings(calibrated, ("onnxruntime",), sweep=tiny, with_recommended=with_recommended)
        assert {c.hypotheses for c in bench(settings).results} == timed

    evaluated = run_eval(EvalSettings(checkpoint=cal_path, hypotheses=8, stride=50))
    assert evaluated.uncertainty is not None and evaluated.uncertainty.calibration == "checkpoint"
    refit = run_eval(EvalSettings(checkpoint=raw_ckpt, hypotheses=8, stride=50, calibration="val"))
    u = refit.uncertainty
    assert u is not None and u.calibration == "val split" and 0 <= u.ece <= 1 and u.sharpness_mm > 0


def test_the_energy_score_of_any_stretch_follows_from_one_pass():
    rng = np.random.default_rng(5)
    centre = rng.normal(size=(60, 17, 3))
    hyps = centre[:, None] + rng.normal(size=(60, 32, 17, 3)) * 0.3
    truth = centre + rng.normal(size=centre.shape)
    terms = uncertainty.energy_terms(hyps, truth)
    assert np.allclose(uncertainty.energy_from_terms(*terms, None), uncertainty.energy_score(hyps, truth), atol=1e-5)
    for stretch in (rng.uniform(0.6, 6.0, (60, 17)), np.full((60, 17), 3.3)):
        direct = uncertainty.energy_score(hyps, truth, stretch)
        # interpolated between grid points an eighth of an octave apart: within 0.2 %
        assert np.allclose(uncertainty.energy_from_terms(*terms, stretch), direct, rtol=2e-3)


@needs_torch
def test_eval_cross_fits_the_calibration_on_the_validation_split(tmp_path):
    from helpers import random_checkpoint

    from posedeploy.reference.commands import EvalSettings, run_eval

    ckpt = random_checkpoint(tmp_path / "c.pt")
    report = run_eval(EvalSettings(checkpoint=ckpt, split="val", hypotheses=6, stride=20, calibration="crossfit"))
    u = report.uncertainty
    assert u is not None and u.calibration == "cross-fit"
    assert set(u.coverage) == {f"{p:g}" for p in uncertainty.LEVELS} and u.ece_gaussian >= 0
    for split, calibration, message in (
        ("test", "crossfit", "crossfit judges the 'val' split"),
        ("val", "val", "use crossfit"),
    ):
        with pytest.raises(InputError, match=message):
            run_eval(EvalSettings(checkpoint=ckpt, split=split, hypotheses=6, calibration=calibration))


@needs_torch
@pytest.mark.skipif(not have("matplotlib"), reason="needs matplotlib")
def test_calibrate_and_eval_plot_on_the_command_line(tmp_path):
    from helpers import random_checkpoint
    from test_cli import assert_one_line_error, run_cli

    ckpt = random_checkpoint(tmp_path / "c.pt")
    done = run_cli("calibrate", "--checkpoint", ckpt, "--out", tmp_path / "cal.pt", "--hypotheses", 6, "--stride", 40)
    assert done.returncode == 0, done.stderr
    assert "form '" in done.stdout and "chosen" in done.stdout and (tmp_path / "cal.pt").is_file()
    plot = tmp_path / "u.png"
    evaluated = run_cli("eval", "--checkpoint", tmp_path / "cal.pt", "--hypotheses", 6, "--stride", 60, "--plot", plot)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "ECE" in evaluated.stdout and "checkpoint" in evaluated.stdout and plot.read_bytes()[:4] == b"\x89PNG"
    assert_one_line_error(
        run_cli("calibrate", "--checkpoint", ckpt, "--out", tmp_path / "t.pt", "--split", "test"), "never on the test"
    )
    assert_one_line_error(
        run_cli("calibrate", "--checkpoint", ckpt, "--out", tmp_path / "t.pt", "--from", ckpt), "carries no calibration"
    )
    assert_one_line_error(run_cli("eval", "--checkpoint", ckpt, "--draws", "sobol"), "draws must be one of")
    assert not (tmp_path / "t.pt").exists()


@pytest.mark.parametrize("s", [3, 70])
def test_the_energy_score_scores_the_hypotheses_as_the_distribution_given(s):
    """Exactly that of the S-point distribution, E|X - y| - E|X - X'| / 2 over all S^2 ordered pairs
    (self-pairs included): in one array for small S, one hypothesis at a time for large."""
    rng = np.random.default_rng(6)
    hyps, truth = rng.normal(size=(4, s, 17, 3)), rng.normal(size=(4, 17, 3))
    hyps[:, s // 2 :] = -hyps[:, : s - s // 2]  # antithetic draws: pairs far from independent
    h, y = hyps[:, :, 1:], truth[:, None, 1:]
    to_target = np.linalg.norm(h - y, axis=-1).mean(1)
    pairs = np.linalg.norm(h[:, :, None] - h[:, None], axis=-1).mean((1, 2))
    assert np.allclose(uncertainty.energy_score(hyps, truth), (to_target - pairs / 2).mean(-1))


def test_one_calibration_serves_any_number_of_hypotheses():
    rng = np.random.default_rng(7)
    raw = spreads(300, rng)
    cal = fit_calibration(raw, gaussian_errors(raw * 2, rng), "joint_affine", {"hypotheses": 5})
    assert np.allclose(cal.spread(raw, 5), cal.spread(raw))
    # 200 draws spread sqrt((199/200) / (4/5)) wider around their mean than 5 do, for the same distribution
    assert np.allclose(cal.spread(raw * np.sqrt((199 / 200) / (4 / 5)), 200), cal.spread(raw, 5), rtol=1e-5)


@pytest.mark.skipif(not have("onnxruntime"), reason="needs onnxruntime")
def test_the_runtime_draws_antithetic_noise_when_asked(exported):
    from posedeploy.runtime import MultiHypothesisLifter

    kp = np.random.default_rng(0).uniform(-0.5, 0.5, (3, 17, 2)).astype(np.float32)
    with MultiHypothesisLifter(exported, backend="onnxruntime", draws="antithetic", hypotheses=6) as lifter:
        assert lifter.draws == "antithetic"
        again = lifter(kp, seed=4)
        result = lifter(kp, seed=4)
    with MultiHypothesisLifter(exported, backend="onnxruntime", hypotheses=6) as plain:
        assert plain.draws == "random"  # an export without a calibration
        expected = plain(kp, noise=draw_noise(np.random.default_rng(4), 3, 6, "antithetic"))
    np.testing.assert_allclose(result.hypotheses, expected.hypotheses, atol=1e-5)
    np.testing.assert_array_equal(result.pose, again.pose)
    with pytest.raises(InputError, match="draws must be one of"):
        MultiHypothesisLifter(exported, backend="onnxruntime", draws="sobol")
