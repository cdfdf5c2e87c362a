"""Install a trained checkpoint as the package's default and write its model card.

    python scripts/ship_default.py --checkpoint runs/h36m/mgcn_lw_sh/avg/best.pt \
        --eval-prefix runs/h36m/mgcn_lw_sh/eval --keypoints sh --train-commands commands.txt

Reads the evaluation reports written by scripts/eval_h36m.sh (EVAL_PREFIX_single.json,
EVAL_PREFIX_s200_adaptive.json, EVAL_PREFIX_s200_uniform.json) and a text file holding the exact
training commands, and writes
posedeploy/assets/mgcn_lw_mlp_h36m.pt and posedeploy/assets/MODEL_CARD.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from posedeploy.assets import DEFAULT_CHECKPOINT, MODEL_CARD
from posedeploy.files import sha256_file
from posedeploy.training.checkpoint import load_checkpoint
from posedeploy.training.models import build_model, count_parameters


def _means(path: Path) -> dict:
    return json.loads(path.read_text())["means"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--eval-prefix", type=Path, required=True)
    parser.add_argument("--keypoints", choices=["gt", "sh"], required=True)
    parser.add_argument("--train-commands", type=Path, required=True, help="text file with the exact commands run")
    args = parser.parse_args()

    ckpt = load_checkpoint(args.checkpoint)
    single = _means(Path(f"{args.eval_prefix}_single.json"))["single"]
    adaptive = json.loads(Path(f"{args.eval_prefix}_s200_adaptive.json").read_text())
    uniform = _means(Path(f"{args.eval_prefix}_s200_uniform.json"))
    a = adaptive["means"]
    stride = adaptive["settings"]["stride"]
    c = ckpt.config
    lifter_params = count_parameters(build_model("lifter", c.lifter, c.lifter_params))
    avg_params = count_parameters(build_model("avg", c.avg, c.avg_params))
    training = c.training
    shutil.copyfile(args.checkpoint, DEFAULT_CHECKPOINT)
    source = {"gt": "ground-truth 2D (the 3D joints projected through the calibrated cameras, with distortion)",
              "sh": "Stacked Hourglass detections (MPII-pretrained, not fine-tuned; 17th joint estimated)"}[args.keypoints]  # fmt: skip
    card = f"""# Model card: {DEFAULT_CHECKPOINT.name}

The default checkpoint of posedeploy: the MGCN-lw lifter ({lifter_params:,} parameters) and its MLP
Adaptive Variance Generation model ({avg_params:,} parameters), PRPose's lightweight pairing;
alpha = {c.alpha}. SHA-256 {sha256_file(DEFAULT_CHECKPOINT)}.

## Data

Human3.6M at 10 Hz (every 5th frame), VideoPose3D format, 17 joints. Trained on subjects S1 S5 S6
S7 S8 (all four cameras, all actions), validated and evaluated on S9 and S11. 2D input: {source}.
Input normalisation: {c.normalisation}. Output: root-relative 3D in the camera frame, metres.

Human3.6M is licensed for research use only; so are weights trained on it.

## Training

```
{args.train_commands.read_text().strip()}
```

Lifter: MPJPE loss, mirror augmentation (a random half of each batch), Adam (amsgrad), the lifter's
official learning-rate recipe (posedeploy.cli.RECIPES), BatchNorm statistics re-estimated after each
epoch, best epoch on the {training.get("val_split") or "validation"} split kept (epoch {training.get("epoch")}, validation MPJPE
{training.get("mpjpe_mm", float("nan")):.2f} mm; validation data {training.get("val_source")}).
AVG model: weakly supervised on the frozen lifter's per-joint errors divided by their mean
(pseudo-label mean {training.get("avg", {}).get("pseudo_label_mean_m", float("nan")) * 1000:.1f} mm), MSE loss.

## Accuracy on Human3.6M S9/S11 ({args.keypoints} 2D), mm

| | MPJPE | P-MPJPE |
|---|---|---|
| lifter alone (mirror test-time augmentation), all frames | {single["mpjpe"]:.1f} | {single["p_mpjpe"]:.1f} |
| best of 200, adaptive noise, every {stride}th frame | {a["best"]["mpjpe"]:.1f} | {a["best"]["p_mpjpe"]:.1f} |
| best of 200, uniform noise (same mean sigma), every {stride}th frame | {uniform["best"]["mpjpe"]:.1f} | {uniform["best"]["p_mpjpe"]:.1f} |
| aggregated (mean of 200), adaptive noise | {a["mean"]["mpjpe"]:.1f} | {a["mean"]["p_mpjpe"]:.1f} |

Protocol: per-sample errors, averaged per action, then over the 15 actions. Commands and per-action
tables: docs/RESULTS.md.

## Intended use and limits

Single-person, single-frame 3D lifting of H36M-17 2D keypoints from one camera, with a per-joint
uncertainty. Trained on one studio dataset of 5 subjects: expect larger errors on other people,
clothes, camera heights and unusual poses; the spread measures the model's own uncertainty about
its 2D input, not its error on out-of-distribution data.
"""
    MODEL_CARD.write_text(card)
    print(f"installed {DEFAULT_CHECKPOINT} ({DEFAULT_CHECKPOINT.stat().st_size / 1e6:.2f} MB) and {MODEL_CARD}")


if __name__ == "__main__":
    main()
