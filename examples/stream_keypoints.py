"""Replay a keypoint file as a live feed through posedeploy.runtime.PoseStream and print, per frame,
the people found and how long the frame took.

    posedeploy export --out artifacts
    python examples/stream_keypoints.py detections.json --artifacts artifacts --image-size 1920 1080 --fps 30

The file is any that `posedeploy run` reads (COCO results, MMPose predictions, (F, N, 17, 2|3)
arrays). Its frames are pushed at --fps, in real time; a frame that is still being processed when
the next arrives delays it (this example does not drop frames; `posedeploy bench --streaming` does).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from posedeploy.keypoint_io import KeypointSequence, read_keypoints
from posedeploy.runtime import PoseStream


def frames_of(tracks: list[KeypointSequence]) -> list[tuple[np.ndarray, np.ndarray]]:
    """The file's people frame by frame again: (N, 17, 2) keypoints and (N, 17) scores per frame."""
    at: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    for track in tracks:
        scores = np.ones(track.keypoints.shape[:2]) if track.confidence is None else track.confidence
        for i, position in enumerate(track.timeline()):
            at.setdefault(int(position), []).append((track.keypoints[i], np.clip(np.nan_to_num(scores[i]), 0, 1)))
    last = max(at)
    empty = (np.zeros((0, 17, 2)), np.zeros((0, 17)))
    return [
        (np.stack([k for k, _ in at[f]]), np.stack([s for _, s in at[f]])) if f in at else empty
        for f in range(last + 1)
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("keypoints", type=Path)
    ap.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    ap.add_argument("--image-size", type=float, nargs=2, required=True, metavar=("W", "H"))
    ap.add_argument("--fps", type=float, default=30.0)
    args = ap.parse_args()

    frames = frames_of(read_keypoints(args.keypoints))
    latencies = []
    with PoseStream(args.artifacts, tuple(args.image_size), fps=args.fps) as stream:
        start = time.perf_counter()
        for f, (keypoints, scores) in enumerate(frames):
            arrival = start + f / args.fps
            time.sleep(max(0.0, arrival - time.perf_counter()))
            results = stream.push(keypoints, scores)
            latency = (time.perf_counter() - arrival) * 1e3
            latencies.append(latency)
            people = ", ".join(
                f"track {r.track_id} (frame {r.frame}): 90 % radius {r.radius(0.9).mean():.0f} mm" for r in results
            )
            print(f"frame {f:5d}: {len(keypoints)} detected, {latency:6.1f} ms; {people or 'no result yet'}")
    p50, p99 = np.percentile(latencies, [50, 99])
    print(f"{len(frames)} frames at {args.fps:g} fps: latency p50 {p50:.1f} ms, p99 {p99:.1f} ms per frame")


if __name__ == "__main__":
    main()
