"""The benchmark figure: latency against hypotheses, and throughput against batch, per backend."""

from __future__ import annotations

from pathlib import Path

from posedeploy.bench.report import BenchReport
from posedeploy.errors import MissingDependencyError
from posedeploy.files import atomic_path


def plot_report(report: BenchReport, path: str | Path) -> Path:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependencyError("matplotlib", "plot", "Plotting benchmark results") from None
    results = report.results
    labels = list(dict.fromkeys(c.label for c in results))
    batches = sorted({c.batch for c in results})
    hyps = sorted({c.hypotheses for c in results})
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    styles = ["-o", "--s", ":^", "-.d"]
    for i, label in enumerate(labels):
        color = f"C{i}"
        for j, b in enumerate(batches):
            cells = sorted((c for c in results if c.label == label and c.batch == b), key=lambda c: c.hypotheses)
            left.plot(
                [c.hypotheses for c in cells],
                [c.latency_ms.p50 for c in cells],
                styles[j % 4],
                color=color,
                label=f"{label}, B={b}",
            )
        s_max = hyps[-1]
        cells = sorted((c for c in results if c.label == label and c.hypotheses == s_max), key=lambda c: c.batch)
        right.plot([c.batch for c in cells], [c.frames_per_s for c in cells], "-o", color=color, label=label)
    left.set(
        xlabel="hypotheses S",
        ylabel="latency per call, p50 (ms)",
        xscale="log",
        yscale="log",
        title="Latency vs hypotheses",
    )
    right.set(
        xlabel="batch B (frames per call)",
        ylabel=f"frames / s at S={hyps[-1]}",
        xscale="log",
        yscale="log",
        title="Throughput vs batch",
    )
    for ax in (left, right):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    cpu = (report.machine or {}).get("cpu", "")
    fig.suptitle(f"posedeploy bench: {report.model or ''} on {cpu}", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path
