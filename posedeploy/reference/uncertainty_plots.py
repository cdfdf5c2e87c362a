"""``posedeploy eval --plot``: the reliability diagram (coverage of radius(p) against p) and the
sparsification curves (error left as the most uncertain joints are removed, against the oracle)."""

from __future__ import annotations

from pathlib import Path

from posedeploy.errors import InputError
from posedeploy.files import atomic_path
from posedeploy.reference.reports import EvalReport, run_label
from posedeploy.visualize import pyplot


def plot_uncertainty(reports: list[EvalReport], path: Path) -> Path:
    judged = [r for r in reports if r.uncertainty is not None]
    if not judged:
        raise InputError("nothing to plot: no run judged its uncertainty (it needs S >= 2 hypotheses)")
    plt = pyplot()
    fig, (reliability, sparsification) = plt.subplots(1, 2, figsize=(11, 4.6))
    reliability.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="ideal")
    for i, r in enumerate(judged):
        u, color = r.uncertainty, f"C{i}"
        assert u is not None
        name = run_label(r)
        levels = [float(p) for p in u.coverage]
        reliability.plot(levels, list(u.coverage.values()), "o-", color=color, label=f"{name} ({u.calibration})")
        if u.calibration != "none":
            reliability.plot(
                levels, list(u.coverage_gaussian.values()), "x:", color=color, label=f"{name}, Gaussian raw"
            )
        sp = u.sparsification
        sparsification.plot(sp.fractions, sp.by_uncertainty, color=color, label=f"{name} (AUSE {sp.ause:.3f})")
        sparsification.plot(sp.fractions, sp.by_error, color=color, ls=":", label=f"{name}, by true error")
    reliability.set(
        xlabel="p", ylabel="fraction of joints within radius(p)", title="Reliability", xlim=(0, 1), ylim=(0, 1)
    )
    sparsification.set(
        xlabel="fraction of joints removed (most uncertain first)",
        ylabel="mean error of the rest (mm)",
        title="Sparsification",
    )
    for ax in (reliability, sparsification):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return Path(path)
