"""A refit's calibration fitted on fold runs: the refit's recipe trained once without each subject of
'train' and 'val' together, every subject lifted by the run that never saw it."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import needs_torch

from posedeploy.data import load_dataset
from posedeploy.errors import CheckpointError, InputError
from posedeploy.training.folds import fold_of, without_fold

pytestmark = needs_torch

STRIDE = 5  # 1,000 'train' and 100 'val' poses of the small generator below


@pytest.fixture(scope="module", autouse=True)
def small_synthetic_splits():
    """Every run and calibration here reads the built-in generator's splits at a tenth of their size."""
    import posedeploy.data

    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(posedeploy.data.SYNTHETIC_SIZES, "train", 5_000)
        patch.setitem(posedeploy.data.SYNTHETIC_SIZES, "val", 500)
        yield


def _joined():
    return load_dataset("synthetic", "train", "gt", stride=STRIDE).join(
        load_dataset("synthetic", "val", "gt", stride=STRIDE)
    )


def test_a_refit_fold_leaves_its_subjects_out_of_train_and_val_together():
    from posedeploy.training.runs import lifter_training_set

    val = load_dataset("synthetic", "val", "gt", stride=STRIDE)
    joined = _joined()
    for k in range(2):
        part = lifter_training_set("synthetic", "gt", STRIDE, [k, 2], True, val, STRIDE)
        left_out = joined.subjects[fold_of(joined, 2) == k]
        assert len(part) == len(without_fold(joined, (k, 2))) < len(joined)
        assert not np.isin(part.subjects, left_out).any() and part.meta["fold"] == [k, 2]


def test_a_refit_fold_run_says_whether_its_validation_data_was_held_out():
    from posedeploy.training.lifter_training import LifterTask

    joined = _joined()
    val = load_dataset("synthetic", "val", "gt", stride=STRIDE)
    train = without_fold(joined, (0, 2))
    held_out = val.take(np.isin(val.subjects, joined.subjects[fold_of(joined, 2) == 0]))
    assert LifterTask("mgcn_lw", train, val, refit=True).val_in_sample
    assert not LifterTask("mgcn_lw", train, held_out, refit=True).val_in_sample
    assert not LifterTask("mgcn_lw", train, val).val_in_sample  # a run that selects on 'val' never trains on it


@pytest.fixture(scope="module")
def fold_runs(tmp_path_factory):
    """Two fold runs (lifter + AVG, one epoch each), and a checkpoint of the same models to calibrate."""
    from helpers import random_checkpoint

    from posedeploy.training.runs import AVGRunSettings, LifterRunSettings, train_avg, train_lifter

    root = tmp_path_factory.mktemp("folds")
    runs = []
    for fold in ("0/2", "1/2"):
        common = dict(data="synthetic", stride=STRIDE, val_stride=STRIDE, refit=True, epochs=1)
        out = root / f"fold_{fold[0]}"
        lifter = train_lifter(LifterRunSettings(keypoints="gt", out=out / "lifter", fold=fold, **common))
        avg = train_avg(
            AVGRunSettings(checkpoint=lifter.checkpoint, out=out / "avg", cache_dir=root / "cache", **common)
        )
        runs.append(avg.checkpoint)
    return root, [*runs, random_checkpoint(root / "refit.pt")]


def test_fold_runs_and_their_avg_models_train_without_their_fold(fold_runs):
    from posedeploy.training.checkpoint import load_checkpoint
    from posedeploy.training.trainer import saved_identity

    root, runs = fold_runs
    joined = _joined()
    for k in range(2):
        training = load_checkpoint(runs[k]).config.training
        assert training["fold"] == [k, 2] and training["refit"] is True
        assert training["samples"] == len(without_fold(joined, (k, 2)))
        # the AVG model's pseudo-labels: the fold lifter's errors on the poses it trained on, each mirrored too
        assert saved_identity(root / f"fold_{k}" / "avg")["samples"] == 2 * len(without_fold(joined, (k, 2)))


def test_the_calibration_is_fitted_on_each_subject_as_lifted_by_the_run_without_it(fold_runs, tmp_path):
    from posedeploy.reference.calibrate import CalibrateSettings, calibrate, raw_spread_and_errors
    from posedeploy.reference.sampler import PipelineModule
    from posedeploy.training.checkpoint import load_checkpoint
    from posedeploy.uncertainty import fit_calibration

    _, (fold0, fold1, refit) = fold_runs
    settings = dict(checkpoint=refit, hypotheses=4, stride=STRIDE, form="joint_scale")
    result = calibrate(CalibrateSettings(out=tmp_path / "cal.pt", folds=(fold0, fold1), **settings))

    joined = _joined()
    owner = fold_of(joined, 2)
    raws, errors = [], []
    for k, path in enumerate((fold0, fold1)):
        run = load_checkpoint(path)
        pipeline = PipelineModule(run.build_lifter("cpu"), run.build_avg("cpu"), run.config.alpha)
        raw, err = raw_spread_and_errors(pipeline, joined.take(owner == k), 4, 0, None, "random")
        raws.append(raw)
        errors.append(err)
    expected = fit_calibration(np.concatenate(raws), np.concatenate(errors), "joint_scale", {})
    got = result.calibration
    np.testing.assert_allclose(got.scale, expected.scale, rtol=1e-9)
    assert got == load_checkpoint(tmp_path / "cal.pt").calibration()
    assert got.fitted_on["folds"] == [str(fold0), str(fold1)] and got.fitted_on["samples"] == len(joined)
    assert "fitted on 2 fold runs, each subject by the one without it" in result.describe()

    # Given in the other order, each subject is still lifted by the run that never saw it.
    swapped = calibrate(CalibrateSettings(out=tmp_path / "swapped.pt", folds=(fold1, fold0), **settings))
    np.testing.assert_allclose(swapped.calibration.scale, got.scale, rtol=1e-9)

    scaled = calibrate(CalibrateSettings(out=tmp_path / "scaled.pt", folds=(fold0, fold1), error_ratio=0.9, **settings))
    np.testing.assert_allclose(scaled.calibration.scale, 0.9 * np.asarray(got.scale), rtol=1e-9)
    assert "scaled by the error ratio 0.9000" in scaled.describe()


def test_fold_runs_must_be_refit_folds_covering_every_fold_once(fold_runs, tmp_path):
    from posedeploy.reference.calibrate import CalibrateSettings, calibrate

    _, (fold0, fold1, refit) = fold_runs
    out = tmp_path / "cal.pt"
    for folds, error, message in (
        ((fold0,), CheckpointError, "each fold of one K/N exactly once"),
        ((fold0, fold0), CheckpointError, "each fold of one K/N exactly once"),
        ((fold0, refit), InputError, "was not refitted without a fold"),
    ):
        with pytest.raises(error, match=message):
            calibrate(CalibrateSettings(out=out, checkpoint=refit, folds=folds, hypotheses=4, stride=STRIDE))
    with pytest.raises(InputError, match="give one of them"):
        calibrate(CalibrateSettings(out=out, checkpoint=refit, folds=(fold0, fold1), carry_from=refit))
    assert not out.exists()


def test_calibrate_takes_fold_runs_on_the_command_line(fold_runs, tmp_path):
    from test_cli import assert_one_line_error, run_cli

    _, (fold0, fold1, refit) = fold_runs
    base = ("calibrate", "--checkpoint", refit, "--hypotheses", 4, "--stride", 50)
    done = run_cli(*base, "--fold-checkpoint", fold0, "--fold-checkpoint", fold1, "--out", tmp_path / "cal.pt")
    assert done.returncode == 0, done.stderr
    assert (
        "fitted on 2 fold runs, each subject by the one without it" in done.stdout and (tmp_path / "cal.pt").is_file()
    )
    assert_one_line_error(
        run_cli(*base, "--fold-checkpoint", refit, "--fold-checkpoint", fold1, "--out", tmp_path / "x.pt"),
        "was not refitted without a fold",
    )
    assert_one_line_error(run_cli(*base, "--error-ratio", 0.9, "--out", tmp_path / "x.pt"), "--fold-checkpoint")
    assert not (tmp_path / "x.pt").exists()
