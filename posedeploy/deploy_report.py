"""DIR/REPORT.md of ``posedeploy deploy``: its report.json, for people."""

from __future__ import annotations


def _machine(m: dict) -> str:
    gpus = ", ".join(f"{g.get('name')} (compute capability {g.get('compute_capability')})" for g in m.get("gpus", []))
    versions = ", ".join(
        f"{k} {m[k]}" for k in ("python", "numpy", "torch", "onnxruntime", "tensorrt", "tensorrt_rtx") if m.get(k)
    )
    return f"{m.get('cpu')}, {m.get('cores')} cores ({m.get('arch')}); GPU: {gpus or 'none'}; {versions}"


def _engine(step: dict) -> list[str]:
    if step["status"] == "skipped":
        return [f"Skipped: {step['reason']}."]
    if step["status"] == "failed":
        return [f"FAILED: {step['error']}"]
    t, target = step["tensorrt"], step["target"]
    where = "runs on this machine" if step["runnable_here"] else "built for another GPU: not run here"
    return [
        f"{t['flavour']} {t['version']}, FP16 ({'strongly typed' if t['strongly_typed'] else 'FP16 flag'}), "
        f"compute capability {', '.join(target['compute_capabilities'])}, built in {step['build_seconds']} s; {where}."
    ]


def _parity(step: dict) -> list[str]:
    if step["status"] == "failed" and "runs" not in step:
        return [f"FAILED: {step['error']}"]
    lines = [
        "| backend | graph | mean hypothesis error (mm) | delta best-of-S (mm) | delta aggregated pose (mm) "
        "| tolerance (mm) | |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in step["runs"]:
        t = r["task"]
        lines.append(
            f"| {r['backend']} | {r['artifact']} | {t['mean hypothesis error (mm)']:.4f} | "
            f"{t['delta best-of-S MPJPE (mm)']:.4f} | {t['delta aggregated-pose MPJPE (mm)']:.4f} | "
            f"{r['tolerance_mm']} | {'pass' if r['passed'] else 'FAIL'} |"
        )
    first = step["runs"][0]
    lines.append(
        f"\nSame inputs and noise on both sides: {first['samples']} built-in test poses ({first['data']}) x "
        f"{first['hypotheses']} hypotheses."
    )
    if step.get("engine_not_run"):
        lines.append(f"The TensorRT engine has no parity figure: {step['engine_not_run']}.")
    return lines


def _bench(step: dict, folder: str) -> list[str]:
    if step["status"] != "done":
        return [f"FAILED: {step.get('error')}"]
    lines = [
        "| backend | B | S | p50 ms | p99 ms | frames/s | hypotheses/s | x PyTorch eager |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in step["results"]:
        speed = f"{c['speedup_vs_torch']:.2f}" if c.get("speedup_vs_torch") else "-"
        lines.append(
            f"| {c['label']} | {c['batch']} | {c['hypotheses']} | {c['p50_ms']:.2f} | {c['p99_ms']:.2f} | "
            f"{c['frames_per_s']:.1f} | {c['hypotheses_per_s']:,.0f} | {speed} |"
        )
    s = step["settings"]
    lines.append(
        f"\nEvery target timed interleaved in the same run, at least {s['min_repeats']} calls and "
        f"{s['min_seconds']} s per cell: a short bench; `posedeploy bench --artifacts {folder}/artifacts` "
        "measures more."
    )
    return lines


def _sequence(step: dict) -> list[str]:
    if step["status"] != "done":
        return [f"FAILED: {step.get('error')}"]
    lines = [
        f"Built-in sequence `{step['name']}` ({step['activity']}, {step['frames']} frames at {step['fps']:g} Hz, "
        f"{step['image_size'][0]:.0f} x {step['image_size'][1]:.0f} px) lifted by the torch-free runtime "
        f"({step['backend']}, S={step['hypotheses']}): MPJPE of the mean pose {step['mpjpe_mm']:.1f} mm, "
        f"best-of-{step['hypotheses']} {step['best_of_s_mpjpe_mm']:.1f} mm, mean per-joint spread "
        f"{step['mean_spread_mm']:.1f} mm. Poses and spreads: `sequence/lifted.npz`.",
    ]
    gifs = [p for p in step["pictures"] if p.endswith(".gif")]
    if gifs:
        lines.append(
            f"\n![the lifted sequence: 2D input, 3D pose from the front and the side, hypotheses coloured by "
            f"spread](sequence/{gifs[0]})"
        )
        lines.append(f"\n{len(step['pictures']) - len(gifs)} PNG frames beside it in `sequence/`.")
    if step.get("pictures_skipped"):
        lines.append(f"\n{step['pictures_skipped']}")
    return lines


def render_markdown(report: dict) -> str:
    c, steps = report["checkpoint"], report["steps"]
    lines = [
        "# posedeploy deploy report",
        "",
        f"**{'PASSED' if report['passed'] else 'FAILED'}** in {report['seconds']:.0f} s, {report['created']}, "
        f"posedeploy {report['posedeploy']}.",
        "",
        f"- Checkpoint: `{c['path']}` ({c['lifter']} + AVG {c['avg']}, alpha {c['alpha']}, trained on "
        f"{c['trained_on']}), sha256 `{c['sha256'][:16]}...`",
        f"- Machine: {_machine(report['machine'])}",
        "",
        "## Steps",
        "",
        "| step | status | seconds |",
        "|---|---|---|",
        *[f"| {name} | {step['status']} | {step['seconds']:.1f} |" for name, step in steps.items()],
        "",
        "## Engine",
        "",
        *(_engine(steps["engine"]) if "engine" in steps else ["Not reached."]),
        "",
        "## Parity against the PyTorch reference",
        "",
        *(_parity(steps["parity"]) if "parity" in steps else ["Not reached."]),
        "",
        "## Speed",
        "",
        *(_bench(steps["bench"], report["folder"]) if "bench" in steps else ["Not reached."]),
        "",
        "## A built-in sequence",
        "",
        *(_sequence(steps["sequence"]) if "sequence" in steps else ["Not reached."]),
        "",
        "## Files",
        "",
        "| file | bytes | sha256 |",
        "|---|---|---|",
        *_files(report.get("files", {})),
        "",
    ]
    return "\n".join(lines)


def _files(files: dict) -> list[str]:
    """One row per file, the sequence's PNG frames as one row (report.json lists each)."""
    rows = [
        f"| `{name}` | {f['bytes']:,} | `{f['sha256'][:16]}...` |"
        for name, f in files.items()
        if not name.endswith(".png")
    ]
    frames = [f for name, f in files.items() if name.endswith(".png")]
    if frames:
        rows.append(
            f"| {len(frames)} PNG frames in `sequence/` | {sum(f['bytes'] for f in frames):,} | in report.json |"
        )
    return rows
