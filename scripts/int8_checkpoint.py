"""Rewrite a checkpoint with int8 weight storage (one f32 scale per row), for files kept in git.

    python scripts/int8_checkpoint.py runs/h36m4/htnet_sh/avg_gcn/best.pt runs/h36m4/htnet_sh/int8.pt

The weights load as f32 again (posedeploy.training.weight_storage); measure what the rounding costs
with `posedeploy eval` on the new file before shipping it (scripts/ship_checkpoint.py keeps the
storage of the checkpoint it is given).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from posedeploy.training.checkpoint import load_checkpoint, save_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    if args.out.resolve() == args.checkpoint.resolve():
        raise SystemExit("write the int8 checkpoint to another file: the f32 one is the reference to measure against")
    source = load_checkpoint(args.checkpoint)
    save_checkpoint(args.out, dataclasses.replace(source, weights="int8"))
    stored = load_checkpoint(args.out)
    for part in ("lifter", "avg"):
        before, after = getattr(source, f"{part}_state"), getattr(stored, f"{part}_state")
        if before is None:
            continue
        worst = max(float((after[k] - before[k]).abs().max() / before[k].abs().max().clamp_min(1e-12)) for k in before)
        print(f"{part}: largest change of a weight, relative to its tensor's largest weight: {worst:.2e}")
    size = lambda p: p.stat().st_size / 2**20  # noqa: E731
    print(f"{args.checkpoint} {size(args.checkpoint):.2f} MiB -> {args.out} {size(args.out):.2f} MiB")


if __name__ == "__main__":
    main()
