"""Experiment of docs/PERFORMANCE.md: does splitting B x S into smaller backend calls speed up the CPU?

    python experiments/try_chunking.py ARTIFACTS [--batch 16] [--hypotheses 200] [--max-poses 6400,1600,400]

Runs the runtime's MultiHypothesisLifter on the same keypoints with each ``max_poses`` (lifted
poses per backend call, mirrors included), timing them in alternating rounds in one process after
an untimed call each, and prints the median and minimum per request.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from posedeploy.bench.targets import inputs
from posedeploy.runtime import MultiHypothesisLifter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifacts")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--hypotheses", type=int, default=200)
    parser.add_argument("--max-poses", default="6400,1600,400")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    keypoints, _ = inputs(args.batch, 1)  # the lifter draws its own noise
    lifters = {
        m: MultiHypothesisLifter(args.artifacts, precision="fp32", hypotheses=args.hypotheses, seed=0, max_poses=m)
        for m in map(int, args.max_poses.split(","))
    }
    times: dict[int, list[float]] = {m: [] for m in lifters}
    for r in range(args.rounds):
        for m, lifter in lifters.items():
            lifter(keypoints)
            start = time.perf_counter()
            lifter(keypoints)
            times[m].append((time.perf_counter() - start) * 1e3)
        print(f"round {r + 1}/{args.rounds}", flush=True)
    print(f"B={args.batch}, S={args.hypotheses}: ms per request")
    for m, t in times.items():
        print(f"  max_poses {m:>6}: median {np.median(t):8.1f}   min {min(t):8.1f}")


if __name__ == "__main__":
    main()
