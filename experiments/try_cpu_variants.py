"""Experiments of docs/PERFORMANCE.md: which ONNX Runtime settings and graph forms speed up the CPU pipeline?

    python experiments/try_cpu_variants.py CHECKPOINT [--batch 1] [--hypotheses 200] [--blocks 10]

Exports the pipeline twice: as shipped (the adjacency product is a MatMul followed by Add and
Relu), and with the adjacency product written as addmm(bias, mix, y), which the exporter emits as
Gemm and ONNX Runtime fuses with the ReLU into one FusedGemm. Then times, side by side in
alternating blocks in one process: the shipped graph with the runtime's settings; the Gemm form;
one intra-op thread; no thread spinning; the 'extended' optimisation level; and output buffers
bound once and reused (I/O binding on the CPU). Outputs are compared with the shipped graph's.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from posedeploy.bench.targets import inputs
from posedeploy.export import fused_gcn
from posedeploy.export.onnx_export import export_artifacts


def gemm_forward(self: fused_gcn.FusedGraphConv, x: torch.Tensor) -> torch.Tensor:
    j, n, _ = x.shape
    y = torch.matmul(x, self.weight).reshape(j, -1)
    out = torch.addmm(self.bias.repeat(n)[None], self.mix, y)
    return (torch.relu(out) if self.relu else out).reshape(j, n, -1)


def session(path: Path, threads: int = 0, spinning: bool = True, level: str = "all") -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = {
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    }[level]
    options.intra_op_num_threads = threads
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def bound_runner(sess: ort.InferenceSession, feed: dict[str, np.ndarray]):
    """Bind inputs and preallocated outputs once; each call only runs the graph."""
    reference = sess.run(None, feed)
    binding = sess.io_binding()
    for name, value in feed.items():
        binding.bind_cpu_input(name, value)
    outs = [np.empty_like(r) for r in reference]
    for meta, buffer in zip(sess.get_outputs(), outs, strict=False):
        binding.bind_output(meta.name, "cpu", 0, buffer.dtype, buffer.shape, buffer.ctypes.data)

    def run():
        sess.run_with_iobinding(binding)
        return outs

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--hypotheses", type=int, default=200)
    parser.add_argument("--blocks", type=int, default=10)
    args = parser.parse_args()
    keypoints, noise = inputs(args.batch, args.hypotheses)
    feed = {"keypoints": keypoints, "noise": noise}
    with tempfile.TemporaryDirectory() as tmp:
        shipped, gemm = Path(tmp) / "shipped" / "pipeline.onnx", Path(tmp) / "gemm" / "pipeline.onnx"
        export_artifacts(args.checkpoint, shipped.parent)
        fused_gcn.FusedGraphConv.forward = gemm_forward
        export_artifacts(args.checkpoint, gemm.parent)
        sessions = {
            "shipped": session(shipped),
            "gemm": session(gemm),
            "1-thread": session(shipped, threads=1),
            "no-spin": session(shipped, spinning=False),
            "extended": session(shipped, level="extended"),
        }
    runners = {name: (lambda s=s: s.run(None, feed)) for name, s in sessions.items()}
    runners["io-bound"] = bound_runner(sessions["shipped"], feed)
    reference = runners["shipped"]()
    times: dict[str, list[float]] = {name: [] for name in runners}
    for block in range(args.blocks):
        for name, run in runners.items():
            run()
            start = time.perf_counter()
            for _ in range(10):
                run()
            times[name].append((time.perf_counter() - start) / 10 * 1e3)
        print(f"block {block + 1}/{args.blocks}", flush=True)
    print(f"B={args.batch}, S={args.hypotheses}: ms per call over {args.blocks} blocks of 10 calls")
    for name, run in runners.items():
        diff = max(float(np.abs(a - b).max()) for a, b in zip(reference, run(), strict=False))
        t = times[name]
        print(f"  {name:<9} median {np.median(t):7.2f}   min {min(t):7.2f}   max output difference {diff:.1e}")


if __name__ == "__main__":
    main()
