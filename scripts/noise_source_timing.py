"""Time the runtime API with noise drawn on the host (numpy, then copied in) against noise drawn in
the graph on the device (an export with --in-graph-noise), same artifacts, same B and S.

    python scripts/noise_source_timing.py ARTIFACTS [--provider cuda] [--batch 1,64] [--hypotheses 200] \
        [--precision fp32,fp16] [--calls 50] [--json OUT]

What is timed is one ``MultiHypothesisLifter`` call, as a user makes it: the host path includes
drawing the B x S x 2 x 17 x 2 normal numbers and their transfer, the device path neither. The
ratio host / device is printed per cell; both run interleaved so that drift hits them alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from posedeploy.runtime.lifter import MultiHypothesisLifter


def _call_ms(lifter: MultiHypothesisLifter, keypoints: np.ndarray, hypotheses: int) -> float:
    start = time.perf_counter()
    lifter(keypoints, hypotheses=hypotheses, keep_hypotheses=False)
    return (time.perf_counter() - start) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifacts", type=Path, help="exported with --in-graph-noise")
    parser.add_argument("--provider", default="auto", help="ONNX Runtime provider: auto, cpu or cuda")
    parser.add_argument("--batch", default="1,64")
    parser.add_argument("--hypotheses", type=int, default=200)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--calls", type=int, default=50, help="timed calls per source and cell")
    parser.add_argument("--json", type=Path, help="write the cells as JSON")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    cells = []
    for precision in args.precision.split(","):
        lifters = {
            source: MultiHypothesisLifter(
                args.artifacts, precision=precision, backend="onnxruntime", provider=args.provider, noise=source
            )
            for source in ("host", "device")
        }
        for batch in (int(b) for b in args.batch.split(",")):
            keypoints = rng.normal(scale=0.3, size=(batch, 17, 2)).astype(np.float32)
            times: dict[str, list[float]] = {"host": [], "device": []}
            for lifter in lifters.values():  # warm-up: sessions, graphs, CUDA graph capture
                for _ in range(3):
                    _call_ms(lifter, keypoints, args.hypotheses)
            for _ in range(args.calls):
                for source, lifter in lifters.items():
                    times[source].append(_call_ms(lifter, keypoints, args.hypotheses))
            host, device = (statistics.median(times[s]) for s in ("host", "device"))
            cell = {
                "precision": precision,
                "backend": lifters["device"].describe(),
                "batch": batch,
                "hypotheses": args.hypotheses,
                "host_p50_ms": host,
                "device_p50_ms": device,
                "host_over_device": host / device,
            }
            cells.append(cell)
            print(
                f"{precision} B={batch} S={args.hypotheses}: host noise {host:.3f} ms, in-graph noise {device:.3f} ms "
                f"(host / device {host / device:.2f}) on {cell['backend']}",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps({"cells": cells}, indent=1))


if __name__ == "__main__":
    main()
