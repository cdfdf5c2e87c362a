"""Install a trained checkpoint as one of the package's shipped checkpoints and write its model card.

    python scripts/ship_checkpoint.py --name mgcn_lw --checkpoint runs/h36m3/mgcn_lw_sh/avg_mlp/best.pt \
        --alpha 0.01 --single runs/h36m3/mgcn_lw_sh/test_single.json \
        --noise runs/h36m3/mgcn_lw_sh/test_s200.json --keypoints sh --train-commands commands.txt

Reads two `posedeploy eval --json` reports on S9/S11 — the lifter alone (--hypotheses 0) and the
three noise rules at the chosen alpha (--noise adaptive,uniform,alpha) — and a text file holding the
commands run (training by recipe file, recipes/*.toml), sets alpha (chosen on S8) in the checkpoint, and writes the checkpoint under its
shipped name (posedeploy/assets/, e.g. mgcn_lw_mlp_h36m.pt) and its model card (MODEL_CARD.md for
the default, MODEL_CARD_<name>.md for the others).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from torch import nn

from posedeploy.assets import ASSETS, DEFAULT, SHIPPED, model_card
from posedeploy.data.h36m import SPLITS
from posedeploy.files import sha256_file
from posedeploy.training.checkpoint import load_checkpoint, save_checkpoint
from posedeploy.training.models import build_model, count_parameters

LIFTER_NAMES = {"mgcn_lw": "MGCN-lw (lightweight modulated GCN)", "htnet": "HTNet"}
AVG_NAMES = {"mlp": "MLP", "gcn": "GCN"}
MAX_TRACKED_BYTES = 5 * 2**20  # the limit for files kept in git


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", choices=sorted(SHIPPED), required=True, help="the shipped name to install as")
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--alpha", type=float, required=True, help="the alpha chosen on S8")
    parser.add_argument("--single", type=Path, required=True, help="eval JSON of the lifter alone on S9/S11")
    parser.add_argument("--noise", type=Path, required=True, help="eval JSON of adaptive,uniform,alpha at --alpha")
    parser.add_argument("--keypoints", choices=["gt", "sh"], required=True)
    parser.add_argument(
        "--train-commands",
        type=Path,
        required=True,
        help="text file with the commands run, with their results: the training by recipe (posedeploy train "
        "lifter --recipe recipes/NAME.toml, which the card cites) and the evaluations",
    )
    args = parser.parse_args()

    ckpt = load_checkpoint(args.checkpoint)
    target, card_path = ASSETS / SHIPPED[args.name], model_card(args.name)
    single = json.loads(args.single.read_text())["means"]["single"]
    runs = {r["settings"]["noise"]: r for r in json.loads(args.noise.read_text())["runs"]}
    if any(r["settings"]["alpha"] != args.alpha for r in runs.values()) or set(runs) != {
        "adaptive",
        "uniform",
        "alpha",
    }:
        raise SystemExit(f"{args.noise} must hold adaptive, uniform and alpha runs at alpha {args.alpha}")
    a, u, fixed = (runs[n]["means"] for n in ("adaptive", "uniform", "alpha"))
    stride = runs["adaptive"]["settings"]["stride"]
    samples = runs["adaptive"]["settings"]["samples"]
    ckpt = dataclasses.replace(ckpt, config=dataclasses.replace(ckpt.config, alpha=args.alpha))
    c = ckpt.config
    lifter = build_model("lifter", c.lifter, c.lifter_params)
    lifter_params = count_parameters(lifter)
    batchnorm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in lifter.modules())
    avg_params = count_parameters(build_model("avg", c.avg, c.avg_params))
    training = c.training
    staged = save_checkpoint(target.with_name(target.name + ".staged"), ckpt)
    source = {
        "gt": "ground-truth 2D (the 3D joints projected through the calibrated cameras, with distortion)",
        "sh": "Stacked Hourglass detections (MPII-pretrained, not fine-tuned; the neck/nose joint a linear "
        "fit of the 16 detected ones, posedeploy/data/sh_neck_weights.json)",
    }[args.keypoints]
    size = staged.stat().st_size
    if size > MAX_TRACKED_BYTES:
        staged.unlink()
        raise SystemExit(
            f"{target.name} would be {size / 2**20:.1f} MiB, over the {MAX_TRACKED_BYTES // 2**20} MiB limit for files kept "
            f"in git: store its weights as int8 (scripts/int8_checkpoint.py), measure that file with posedeploy eval "
            f"and ship it instead"
        )
    staged.replace(target)
    storage = (
        ""
        if ckpt.weights == "f32"
        else """

Weights are stored as int8 with one f32 scale per row (posedeploy/training/weight_storage.py) and
loaded as f32; the numbers below were measured on this file, as stored."""
    )
    refit = bool(training.get("refit"))
    train, val = " ".join(SPLITS["train"]), " ".join(SPLITS["val"])
    trained_on = SPLITS["train"] + SPLITS["val"] if refit else SPLITS["train"]
    if refit:
        subjects = f"""Trained on subjects {" ".join(trained_on)} (all four cameras, all actions; a refit): the recipe, the
epoch counts and alpha were fixed beforehand on runs trained on {train} and validated on the
held-out {val} (commands below), and the last epoch was kept"""
        kept = (
            f"the last epoch kept (a refit: epoch {training.get('epoch')}; its S8 MPJPE, "
            f"{training.get('mpjpe_mm', float('nan')):.2f} mm, is in-sample)"
        )
    else:
        subjects = f"""Trained on subjects {train} (all four cameras, all actions); the best epoch, the AVG model's best epoch and alpha were chosen
on the held-out {val}"""
        kept = f"best epoch on S8 kept (epoch {training.get('epoch')}, S8 MPJPE {training.get('mpjpe_mm', float('nan')):.2f} mm)"
    avg_kept = ", the last epoch kept" if training.get("avg", {}).get("refit") else ""
    role = (
        "The default checkpoint of posedeploy"
        if args.name == DEFAULT
        else f"A shipped checkpoint of posedeploy, taken with `--checkpoint {args.name}`"
    )
    card = f"""# Model card: {target.name}

{role}: the {LIFTER_NAMES[c.lifter]} lifter ({lifter_params:,} parameters) and its
{AVG_NAMES[c.avg]} Adaptive Variance Generation model ({avg_params:,} parameters); alpha = {c.alpha}.
SHA-256 {sha256_file(target)}.{storage}

## Data

Human3.6M at 10 Hz (every 5th frame), VideoPose3D format, 17 joints. {subjects}; S9 and S11 were used for the numbers below only. 2D input: {source}.
Input normalisation: {c.normalisation}. Output: root-relative 3D in the camera frame, metres.

Human3.6M is licensed for research use only; so are weights trained on it.

## Training

```
{args.train_commands.read_text().strip()}
```

Lifter: MPJPE loss, mirror augmentation (a random half of each batch), Adam (amsgrad), the
learning-rate schedule of its recipe (the recipes/*.toml cited above, whose comments say why),{" BatchNorm statistics re-estimated after each epoch," if batchnorm else ""}
{kept}.
AVG model: weakly supervised on the frozen lifter's per-joint errors divided by their mean
({training.get("avg", {}).get("pseudo_labels", {}).get("from", "the lifter's errors")}; pseudo-label mean
{training.get("avg", {}).get("pseudo_label_mean_m", float("nan")) * 1000:.1f} mm), MSE loss{avg_kept}.

## Accuracy on Human3.6M S9/S11 ({args.keypoints} 2D), mm

| | MPJPE | P-MPJPE |
|---|---|---|
| lifter alone (mirror test-time augmentation), all frames | {single["mpjpe"]:.1f} | {single["p_mpjpe"]:.1f} |
| lifter alone, every {stride}th frame ({samples:,}) | {a["single"]["mpjpe"]:.1f} | {a["single"]["p_mpjpe"]:.1f} |
| best of 200, adaptive noise, same frames | {a["best"]["mpjpe"]:.1f} | {a["best"]["p_mpjpe"]:.1f} |
| best of 200, uniform noise (same mean sigma), same frames | {u["best"]["mpjpe"]:.1f} | {u["best"]["p_mpjpe"]:.1f} |
| best of 200, sigma = alpha on every joint, same frames | {fixed["best"]["mpjpe"]:.1f} | {fixed["best"]["p_mpjpe"]:.1f} |
| aggregated (mean of 200), adaptive noise, same frames | {a["mean"]["mpjpe"]:.1f} | {a["mean"]["p_mpjpe"]:.1f} |

Protocol: per-sample errors, averaged per action, then over the 15 actions. Commands and per-action
tables: docs/RESULTS.md.

## Intended use and limits

Single-person, single-frame 3D lifting of H36M-17 2D keypoints from one camera, with a per-joint
uncertainty. Trained on one studio dataset of {len(trained_on)} subjects: expect larger errors on other people,
clothes, camera heights and unusual poses; the spread measures the model's own uncertainty about
its 2D input, not its error on out-of-distribution data.
"""
    card_path.write_text(card)
    print(f"installed {target} ({target.stat().st_size / 1e6:.2f} MB) and {card_path}")


if __name__ == "__main__":
    main()
