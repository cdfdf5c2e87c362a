"""Where the time goes in an exported pipeline under ONNX Runtime on the CPU: share per operator type.

    python experiments/profile_pipeline.py ARTIFACTS [--graph pipeline.onnx] [--batch 1] [--hypotheses 200]

Runs the graph with ONNX Runtime's profiler on the benchmark's inputs (after warm-up calls) and
prints, per operator type, the total kernel time and its share, and with --nodes N the N slowest
nodes with their input shapes (which matrix products are the expensive ones). The profile file is
written to a temporary folder and deleted. Used for docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import defaultdict
from pathlib import Path

import onnxruntime as ort

from posedeploy.bench.targets import inputs


def profile(graph: Path, batch: int, hypotheses: int, calls: int) -> tuple[dict[str, float], dict[str, float]]:
    """Microseconds of kernel time per operator type and per node (with its input shapes), summed
    over ``calls`` profiled calls."""
    keypoints, noise = inputs(batch, hypotheses)
    feed = {"keypoints": keypoints, "noise": noise}
    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        for _ in range(3 + calls):  # the first calls of a fresh session are not representative
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    kernels = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    per_call = len(kernels) // (3 + calls)
    totals: dict[str, float] = defaultdict(float)
    nodes: dict[str, float] = defaultdict(float)
    for e in kernels[-per_call * calls :]:
        totals[e["args"]["op_name"]] += e["dur"]
        shapes = " x ".join(str(list(s.values())[0]) for s in e["args"].get("input_type_shape", []))
        nodes[f"{e['args']['op_name']} {e['name'].removesuffix('_kernel_time')} {shapes}"] += e["dur"]

    def by_time(d: dict[str, float]) -> dict[str, float]:
        return dict(sorted(d.items(), key=lambda kv: -kv[1]))

    return by_time(totals), by_time(nodes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifacts", type=Path)
    parser.add_argument("--graph", default="pipeline.onnx")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--hypotheses", type=int, default=200)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--nodes", type=int, default=0, help="also list the N slowest nodes")
    args = parser.parse_args()
    totals, nodes = profile(args.artifacts / args.graph, args.batch, args.hypotheses, args.calls)
    total = sum(totals.values())
    print(f"{args.graph}, B={args.batch}, S={args.hypotheses}: {total / args.calls / 1e3:.2f} ms kernel time per call")
    for op, us in totals.items():
        print(f"  {op:<24}{us / args.calls / 1e3:8.2f} ms  {us / total:6.1%}")
    for node, us in list(nodes.items())[: args.nodes]:
        print(f"  {us / args.calls / 1e3:8.2f} ms  {us / total:6.1%}  {node}")


if __name__ == "__main__":
    main()
