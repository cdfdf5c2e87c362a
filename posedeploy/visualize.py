"""Pictures of a lifted pose: the 2D input, the aggregated 3D pose from the front and the side, and
the hypothesis cloud coloured by each joint's spread, so that a reader sees where the model is
unsure. One PNG per frame; an animated GIF for a sequence."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from posedeploy.errors import MissingDependencyError
from posedeploy.files import atomic_path
from posedeploy.skeleton import BONES, JOINTS_LEFT, JOINTS_RIGHT

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def pyplot() -> ModuleType:  # matplotlib.pyplot
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependencyError("matplotlib", "plot", "Drawing poses") from None
    return plt


def check_can_draw() -> None:
    """Refuse, before any work, a request for pictures on a machine that cannot draw them."""
    pyplot()


def _bone_color(child: int) -> str:
    return "tab:blue" if child in JOINTS_LEFT else "tab:red" if child in JOINTS_RIGHT else "0.3"


def draw_frame(
    fig: Figure,
    keypoints: np.ndarray,
    pose: np.ndarray,
    spread: np.ndarray,
    hypotheses: np.ndarray | None,
    title: str,
    spread_max: float,
) -> None:
    """keypoints (17, 2) as given (y down), pose (17, 3) mm, spread (17,) mm, hypotheses (S, 17, 3) mm."""
    plt = pyplot()
    fig.clear()
    axes = fig.subplots(1, 3)
    cmap = plt.get_cmap("viridis")
    colors = cmap(np.clip(spread / max(spread_max, 1e-6), 0, 1))
    ax = axes[0]
    for child, parent in BONES:
        ax.plot(*keypoints[[child, parent]].T, color=_bone_color(child), lw=2)
    ax.scatter(*keypoints.T, c=colors, s=30, zorder=3, edgecolors="k", linewidths=0.3)
    ax.invert_yaxis()
    ax.set_aspect("equal")
    ax.set_title("2D input")
    for ax, (a, b), name in ((axes[1], (0, 1), "front (x, y)"), (axes[2], (2, 1), "side (z, y)")):
        if hypotheses is not None:
            for j in range(pose.shape[0]):
                ax.scatter(hypotheses[:, j, a], hypotheses[:, j, b], s=2, color=colors[j], alpha=0.15, lw=0)
        for child, parent in BONES:
            ax.plot(pose[[child, parent], a], pose[[child, parent], b], color=_bone_color(child), lw=2)
        ax.scatter(pose[:, a], pose[:, b], c=colors, s=25, zorder=3, edgecolors="k", linewidths=0.3)
        ax.invert_yaxis()  # camera y points down
        ax.set_aspect("equal")
        ax.set_title(f"3D {name}, mm")
    mappable = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, spread_max))
    fig.colorbar(mappable, ax=axes, fraction=0.025, label="spread (mm)")
    fig.suptitle(title, fontsize=10)


def save_frames(
    out_dir: Path,
    name: str,
    frame_ids: np.ndarray,
    keypoints: np.ndarray,
    poses: np.ndarray,
    spreads: np.ndarray,
    hypotheses: np.ndarray | None = None,
    gif: bool = False,
    every: int = 1,
) -> list[Path]:
    """A PNG per ``every``-th frame, and an animated GIF of them when ``gif``; returns the paths."""
    plt = pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    spread_max = float(np.percentile(spreads, 99)) if spreads.size else 1.0
    fig = plt.figure(figsize=(13, 4.5))
    written, images = [], []
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
    for i in range(0, len(poses), every):
        draw_frame(
            fig,
            keypoints[i],
            poses[i],
            spreads[i],
            None if hypotheses is None else hypotheses[i],
            f"{name}, frame {frame_ids[i]}: mean spread {spreads[i].mean():.0f} mm",
            spread_max,
        )
        path = out_dir / f"{safe}_{int(frame_ids[i]):06d}.png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=90)
        written.append(path)
        if gif:
            fig.canvas.draw()
            images.append(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
    plt.close(fig)
    if gif and len(images) > 1:
        from PIL import Image

        path = out_dir / f"{safe}.gif"
        frames = [Image.fromarray(im) for im in images]
        with atomic_path(path) as tmp:
            frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
        written.append(path)
    return written
