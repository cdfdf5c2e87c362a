"""Markdown summary of a scripts/gpu_proof.sh output folder: steps, parity, speed against issue #33's
targets (as ratios within one bench run), and host-drawn against in-graph noise.

    python scripts/gpu_proof_summary.py OUT > OUT/summary.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from posedeploy.bench.targets import TORCH_PATHS

# Issue #33's speed targets: the fastest deployed path against PyTorch eager FP32 and against the
# strongest PyTorch path at B = 64, S = 200; p50 at B = 1, S = 200 per lifter.
RATIO_EAGER, RATIO_BEST, TARGET_CELL = 10.0, 1.5, (64, 200)
B1_P50_MS = {"mgcn_lw": 0.5, "htnet": 2.0}


def _load(path: Path) -> Any:
    return json.loads(path.read_text())


def steps(out: Path) -> list[str]:
    lines = ["| step | exit status | seconds |", "|---|---|---|"]
    for line in (out / "steps.jsonl").read_text().splitlines() if (out / "steps.jsonl").is_file() else []:
        s = json.loads(line)
        lines.append(f"| {s['step']} | {'ok' if s['rc'] == 0 else 'FAILED (' + str(s['rc']) + ')'} | {s['seconds']} |")
    return lines


def parity(out: Path) -> list[str]:
    lines = ["| lifter, graph | backend | poses x S | task deltas (mm) | verdict |", "|---|---|---|---|---|"]
    for path in sorted(out.glob("parity_*.json")):
        r = _load(path)
        deltas = "; ".join(f"{k} {v:.3g}" for k, v in r["task"].items())
        verdict = ("PASS" if r["passed"] else "FAIL") + f" ({r['criterion'] or r['mode']} <= {r['tolerance_mm']})"
        name = path.stem.removeprefix("parity_")
        lines.append(f"| {name} | {r['backend']} | {r['samples']} x {r['hypotheses']} | {deltas} | {verdict} |")
    return lines


def bench(name: str, report: dict[str, Any]) -> list[str]:
    cells = report["results"]
    lines = [
        f"### {name}: {report.get('model')}",
        "",
        "| target | B | S | p50 ms | p99 ms | frames/s | hypotheses/s | GFLOP/s | of peak | x eager FP32 "
        "| x best PyTorch |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        peak = f"{c['fraction_of_peak']:.0%}" if c.get("fraction_of_peak") is not None else "-"
        best = f"{c['speedup_vs_best_torch']:.2f}" if c.get("speedup_vs_best_torch") else "-"
        eager = f"{c['speedup_vs_torch']:.2f}" if c.get("speedup_vs_torch") else "-"
        gflops = f"{c['gflops']:.0f}" if c.get("gflops") is not None else "-"
        lines.append(
            f"| {c['label']} | {c['batch']} | {c['hypotheses']} | {c['latency_ms']['p50']:.3f} | "
            f"{c['latency_ms']['p99']:.3f} | {c['frames_per_s']:.0f} | {c['hypotheses_per_s']:.3g} | {gflops} | "
            f"{peak} | {eager} | {best} |"
        )
    deployed = [c for c in cells if c["backend"] not in TORCH_PATHS]
    lines.append("")
    at = [c for c in deployed if (c["batch"], c["hypotheses"]) == TARGET_CELL]
    if at:
        fastest = min(at, key=lambda c: c["latency_ms"]["p50"])
        eager, best = fastest.get("speedup_vs_torch") or 0.0, fastest.get("speedup_vs_best_torch") or 0.0
        met_eager, met_best = ("met" if ok else "missed" for ok in (eager >= RATIO_EAGER, best >= RATIO_BEST))
        lines.append(
            f"- B = 64, S = 200: fastest deployed path {fastest['label']}: {eager:.2f}x PyTorch eager FP32 "
            f"(target {RATIO_EAGER:g}x: {met_eager}), {best:.2f}x the strongest PyTorch path "
            f"{fastest.get('best_torch')} (target {RATIO_BEST:g}x: {met_best})"
        )
    one = [c for c in deployed if (c["batch"], c["hypotheses"]) == (1, 200)]
    if one and name in B1_P50_MS:
        fastest = min(one, key=lambda c: c["latency_ms"]["p50"])
        p50, limit = fastest["latency_ms"]["p50"], B1_P50_MS[name]
        lines.append(
            f"- B = 1, S = 200: {fastest['label']} p50 {p50:.3f} ms (target < {limit:g} ms: "
            f"{'met' if p50 < limit else 'missed'})"
        )
    for s in report.get("streaming") or []:
        people = f", {s['people']} {'person' if s['people'] == 1 else 'people'}" if s.get("people") else ""
        latency = s["latency_ms"]
        lines.append(
            f"- stream {s['backend']}{people} at {s['fps']:g} fps, S = {s['hypotheses']}: p50 {latency['p50']:.2f} "
            f"ms, p99 {latency['p99']:.2f} ms, dropped {s['dropped']}/{s['frames']}"
        )
    machine = report.get("machine") or {}
    lines.append(f"- machine: {json.dumps(machine)}")
    return lines


def noise(out: Path) -> list[str]:
    lines = ["| lifter | precision | B | S | host noise p50 ms | in-graph noise p50 ms | host / in-graph |"]
    lines.append("|---|---|---|---|---|---|---|")
    for path in sorted(out.glob("noise_source_*.json")):
        for c in _load(path)["cells"]:
            lines.append(
                f"| {path.stem.removeprefix('noise_source_')} | {c['precision']} | {c['batch']} | {c['hypotheses']} | "
                f"{c['host_p50_ms']:.3f} | {c['device_p50_ms']:.3f} | {c['host_over_device']:.2f} |"
            )
    return lines


def main() -> None:
    out = Path(sys.argv[1])
    versions = (out / "versions.txt").read_text().strip() if (out / "versions.txt").is_file() else "(no versions.txt)"
    lines = ["# GPU proof", "", "```", versions, "```", "", "## Steps", "", *steps(out), "", "## Parity", ""]
    lines += [*parity(out), "", "## Speed (ratios within one bench run)", ""]
    for path in sorted(out.glob("bench_*.json")):
        lines += [*bench(path.stem.removeprefix("bench_"), _load(path)), ""]
    lines += ["## Noise drawn on the host against in the graph", "", *noise(out)]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
