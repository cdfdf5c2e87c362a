"""Temporal smoothing measured on whole sequences: the exported pipeline lifts every frame (as
`posedeploy run` does), then each sequence is smoothed offline (filter + RTS), causally (the filter),
and with one frame of lag, over a grid of acceleration noise, with a constant measurement noise or
the calibrated spread as each joint's measurement noise.

    python scripts/smoothing_study.py --artifacts A --data ../shared/data/h36m --keypoints sh --split val \
        --json runs/smoothing/s8_sh.json

MPJPE and P-MPJPE in mm (per action, then over the actions); acceleration error: the mean distance
between the predicted and the true second differences of each joint, mm per frame squared.
With one --accel and one --noise (the choice made on 'val'), it measures that setting only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from posedeploy.data import PoseSet, load_dataset
from posedeploy.metrics import mean_by_action, mpjpe, p_mpjpe
from posedeploy.runtime import MultiHypothesisLifter
from posedeploy.smoothing import SmoothingParams, smooth_sequence

MODES = {"offline": None, "causal": 0, "lag1": 1}
CHUNK = 4096


@dataclass
class Row:
    mode: str
    noise: str
    accel: float
    mpjpe: float
    p_mpjpe: float
    accel_error: float


def sequences(poses: PoseSet) -> list[np.ndarray]:
    """The sample indices of each sequence (one camera's view of one recording), in frame order."""
    keys = np.char.add(np.char.add(poses.subjects, "|"), np.char.add(poses.actions, "|" + poses.cameras.astype(str)))
    out = []
    for key in np.unique(keys):
        index = np.nonzero(keys == key)[0]
        starts = np.nonzero(np.diff(poses.frames[index]) <= 0)[0] + 1  # two recordings of one action
        out += [part for part in np.split(index, starts) if len(part) > 2]
    return out


def lift(poses: PoseSet, artifacts: Path, cache: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """(N, 17, 3) poses and (N, 17) calibrated spreads in mm, as `posedeploy run` lifts them."""
    if cache and cache.is_file():
        stored = np.load(cache)
        if len(stored["pose"]) == len(poses):
            return stored["pose"], stored["spread"]
    pose, spread = np.empty((len(poses), 17, 3), np.float32), np.empty((len(poses), 17), np.float32)
    with MultiHypothesisLifter(artifacts, seed=0) as lifter:
        for start in range(0, len(poses), CHUNK):
            out = lifter(poses.keypoints[start : start + CHUNK], units="mm", seed=start)
            pose[start : start + CHUNK], spread[start : start + CHUNK] = out.pose, out.spread
            print(f"lifted {min(start + CHUNK, len(poses)):,} / {len(poses):,}", file=sys.stderr)
    if cache:
        np.savez(cache, pose=pose, spread=spread)
    return pose, spread


def score(pred: np.ndarray, poses: PoseSet, seqs: list[np.ndarray]) -> tuple[float, float, float]:
    truth = poses.poses_3d.astype(np.float64) * 1000
    _, err = mean_by_action(mpjpe(pred / 1000, truth / 1000) * 1000, poses.actions)
    _, aligned = mean_by_action(p_mpjpe(pred / 1000, truth / 1000) * 1000, poses.actions)
    accel = [np.linalg.norm(np.diff(pred[i], 2, axis=0) - np.diff(truth[i], 2, axis=0), axis=-1).mean(-1) for i in seqs]
    interior = np.concatenate([i[1:-1] for i in seqs])
    _, acc = mean_by_action(np.concatenate(accel), poses.actions[interior])
    return err, aligned, acc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--artifacts", type=Path, required=True)
    ap.add_argument("--data", default="../shared/data/h36m")
    ap.add_argument("--keypoints", default="sh")
    ap.add_argument("--split", default="val")
    ap.add_argument("--fps", type=float, default=10.0, help="frame rate of the data (Human3.6M here: 10 Hz)")
    ap.add_argument("--accel", default="1e4,3e4,1e5,3e5,1e6,3e6,1e7", help="acceleration noise, mm^2/s^3")
    ap.add_argument("--noise", default="constant,spread", help="measurement noise: constant, spread")
    ap.add_argument("--measurement-mm", type=float, default=50.0, help="the constant measurement noise")
    ap.add_argument("--cache", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    poses = load_dataset(args.data, args.split, args.keypoints)
    seqs = sequences(poses)
    print(f"{poses.source} {args.split}: {len(poses):,} frames in {len(seqs)} sequences", file=sys.stderr)
    pose, spread = lift(poses, args.artifacts, args.cache)
    rows = [Row("raw", "-", 0.0, *score(pose.astype(np.float64), poses, seqs))]
    for noise in args.noise.split(","):
        for accel in [float(a) for a in args.accel.split(",")]:
            params = SmoothingParams(accel, args.measurement_mm, args.fps)
            for mode, lag in MODES.items():
                started = time.perf_counter()
                out = np.empty(pose.shape)
                for i in seqs:
                    per_joint = spread[i] / np.sqrt(3) if noise == "spread" else None
                    out[i] = smooth_sequence(pose[i], params, lag=lag, noise_mm=per_joint)
                rows.append(Row(mode, noise, accel, *score(out, poses, seqs)))
                r = rows[-1]
                print(
                    f"{mode:8s} {noise:8s} accel {accel:9.2g}: MPJPE {r.mpjpe:6.2f} P-MPJPE {r.p_mpjpe:6.2f} "
                    f"accel {r.accel_error:6.2f} ({time.perf_counter() - started:.0f} s)",
                    file=sys.stderr,
                )
    print(f"{'mode':8s} {'noise':8s} {'accel':>9s} {'MPJPE':>7s} {'P-MPJPE':>8s} {'accel err':>9s}")
    for r in rows:
        print(f"{r.mode:8s} {r.noise:8s} {r.accel:9.2g} {r.mpjpe:7.2f} {r.p_mpjpe:8.2f} {r.accel_error:9.2f}")
    for mode in MODES:
        best = min((r for r in rows if r.mode == mode), key=lambda r: r.mpjpe)
        print(f"lowest MPJPE {mode}: {best.noise} noise, accel {best.accel:.2g}")
    if args.json:
        settings = {k: str(v) for k, v in vars(args).items()}
        args.json.write_text(json.dumps({"settings": settings, "rows": [asdict(r) for r in rows]}, indent=1))


if __name__ == "__main__":
    main()
