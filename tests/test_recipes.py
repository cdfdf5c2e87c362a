"""Recipe files: every shipped recipe reads into its settings; flags override it; a wrong one is named.
And training as a library function, in this process: a recipe in, a result out."""

from pathlib import Path

import pytest
from conftest import needs_torch

from posedeploy.errors import InputError
from posedeploy.training.recipes import settings_from
from posedeploy.training.runs import AVGRunSettings, LifterRunSettings

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
KINDS = {"lifter": LifterRunSettings, "avg": AVGRunSettings}


@pytest.mark.parametrize("recipe", sorted(RECIPES.glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_recipe_reads(recipe):
    kind = "avg" if "_avg_" in recipe.name else "lifter"
    settings = settings_from(KINDS[kind], recipe, kind, {})
    assert (
        settings.data == "../shared/data/h36m" and settings.keypoints == "sh" and str(settings.out).startswith("runs/")
    )


def test_flags_override_the_recipe_and_defaults_fill_the_rest():
    settings = settings_from(LifterRunSettings, RECIPES / "htnet_sh_2_warm_restart.toml", "lifter", {"epochs": 2})
    assert settings.epochs == 2 and settings.lr == 2.5e-4 and settings.init == "first_run.pt"
    assert settings.stride == 1 and settings.augment is True  # not in the recipe: the defaults
    avg = settings_from(AVGRunSettings, RECIPES / "htnet_sh_3_avg_gcn.toml", "avg", {})
    assert avg.refit is True and avg.checkpoint == Path("runs/h36m5/htnet_sh_refit/lifter/best.pt")


@pytest.mark.parametrize(
    "text, message",
    [
        ('kind = "lifter"\nepochz = 3\n', "unknown setting(s) epochz"),
        ('kind = "lifter"\nepochs = "three"\n', "epochs must be int, got 'three'"),
        ('kind = "lifter"\nepochs = true\n', "epochs must be int"),
        ('kind = "lifter"\nout = 3\n', "out must be a path"),
        ('kind = "avg"\nepochs = 3\n', "a recipe of kind 'avg', not 'lifter'"),
        ("epochs = 3\n", "a recipe of kind None"),
        ('kind = "lifter"\nepochs = [\n', "is not a TOML recipe"),
    ],
)
def test_a_wrong_recipe_is_named(tmp_path, text, message):
    (tmp_path / "r.toml").write_text(text)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        settings_from(LifterRunSettings, tmp_path / "r.toml", "lifter", {})
    with pytest.raises(InputError, match="recipe not found"):
        settings_from(LifterRunSettings, tmp_path / "none.toml", "lifter", {})


@needs_torch
def test_a_lifter_and_its_avg_train_in_process_from_recipes(tmp_path):
    from posedeploy.training.checkpoint import load_checkpoint
    from posedeploy.training.runs import train_avg, train_lifter

    (tmp_path / "lifter.toml").write_text(
        'kind = "lifter"\ndata = "synthetic"\nstride = 50\nval_stride = 20\nepochs = 1\n'
        f'out = "{tmp_path / "lifter"}"\n'
    )
    result = train_lifter(settings_from(LifterRunSettings, tmp_path / "lifter.toml", "lifter", {"seed": 3}))
    assert result.metric == "mpjpe_mm" and result.best_epoch == 1 and result.epochs == 1 and result.main
    assert (
        result.checkpoint == tmp_path / "lifter" / "best.pt"
        and load_checkpoint(result.checkpoint).config.lifter == "mgcn_lw"
    )
    assert "best mpjpe_mm" in result.describe(2)
    avg = train_avg(
        AVGRunSettings(result.checkpoint, data="synthetic", stride=50, val_stride=20, epochs=1, out=tmp_path / "avg")
    )
    assert avg.metric == "mse" and load_checkpoint(avg.checkpoint).has_avg
    with pytest.raises(InputError, match="seed must be a whole number >= 0"):
        train_lifter(LifterRunSettings(seed=-1, out=tmp_path / "x"))


@needs_torch
def test_train_lifter_takes_a_recipe_and_flags_on_the_command_line(tmp_path, monkeypatch, capsys):
    import sys

    from posedeploy.cli import main

    (tmp_path / "r.toml").write_text('kind = "lifter"\ndata = "synthetic"\nstride = 50\nval_stride = 20\nepochs = 5\n')
    argv = ["posedeploy", "train", "lifter", "--recipe", str(tmp_path / "r.toml"), "--epochs", "1"]
    monkeypatch.setattr(sys, "argv", [*argv, "--out", str(tmp_path / "run")])
    with pytest.raises(SystemExit) as exited:
        main()
    out = capsys.readouterr().out
    assert exited.value.code == 0 and "at epoch 1:" in out and (tmp_path / "run" / "best.pt").is_file()
