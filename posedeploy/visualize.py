"""Pictures of lifted poses: the 2D input, the aggregated 3D pose from the front and the side, and
the hypothesis cloud coloured by each joint's spread, so that a reader sees where the model is
unsure; several people of one recording side by side, labelled by track. One PNG per frame; an
animated GIF for a sequence."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from posedeploy.errors import MissingDependencyError
from posedeploy.files import atomic_path
from posedeploy.skeleton import BONES, JOINTS_LEFT, JOINTS_RIGHT

HEAD = 10  # the joint a track's label is written over

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


@dataclass
class Person:
    """One person in one picture: keypoints (17, 2) as given (y down), pose (17, 3) mm, spread (17,) mm,
    hypotheses (S, 17, 3) mm or None; label: the track's name, or None for a lone person."""

    keypoints: np.ndarray
    pose: np.ndarray
    spread: np.ndarray
    hypotheses: np.ndarray | None
    label: str | None = None


PERSON_SPACING_MM = 1200.0  # root-relative poses stand side by side in the 3D views, this far apart


def draw_frame(fig: Figure, people: list[Person], title: str, spread_max: float) -> None:
    """The 2D input of every person, and their 3D poses side by side from the front and the side."""
    plt = pyplot()
    fig.clear()
    axes = fig.subplots(1, 3)
    cmap = plt.get_cmap("viridis")
    for k, person in enumerate(people):
        colors = cmap(np.clip(person.spread / max(spread_max, 1e-6), 0, 1))
        _draw_2d(axes[0], person, colors)
        shift = np.array([k * PERSON_SPACING_MM, 0.0, k * PERSON_SPACING_MM])
        for ax, (a, b) in ((axes[1], (0, 1)), (axes[2], (2, 1))):
            _draw_3d(ax, person, colors, shift, a, b)
    axes[0].set_title("2D input")
    for ax, name in ((axes[0], None), (axes[1], "front (x, y)"), (axes[2], "side (z, y)")):
        ax.invert_yaxis()  # image and camera y point down
        ax.set_aspect("equal")
        if name:
            ax.set_title(f"3D {name}, mm")
    mappable = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, spread_max))
    fig.colorbar(mappable, ax=axes, fraction=0.025, label="spread (mm)")
    fig.suptitle(title, fontsize=10)


def _draw_2d(ax: Any, person: Person, colors: np.ndarray) -> None:
    kp = person.keypoints
    for child, parent in BONES:
        ax.plot(*kp[[child, parent]].T, color=_bone_color(child), lw=2)
    ax.scatter(*kp.T, c=colors, s=30, zorder=3, edgecolors="k", linewidths=0.3)
    if person.label:
        _label(ax, person.label, (kp[HEAD, 0], kp[HEAD, 1]))


def _draw_3d(ax: Any, person: Person, colors: np.ndarray, shift: np.ndarray, a: int, b: int) -> None:
    pose = person.pose + shift
    if person.hypotheses is not None:
        cloud = person.hypotheses + shift
        for j in range(pose.shape[0]):
            ax.scatter(cloud[:, j, a], cloud[:, j, b], s=2, color=colors[j], alpha=0.15, lw=0)
    for child, parent in BONES:
        ax.plot(pose[[child, parent], a], pose[[child, parent], b], color=_bone_color(child), lw=2)
    ax.scatter(pose[:, a], pose[:, b], c=colors, s=25, zorder=3, edgecolors="k", linewidths=0.3)
    if person.label:
        _label(ax, person.label, (pose[HEAD, a], pose[HEAD, b]))


def _label(ax: Any, text: str, at: tuple[float, float]) -> None:
    ax.annotate(text, at, textcoords="offset points", xytext=(0, 8), ha="center", fontsize=8)


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
    """One person's sequence: a PNG per ``every``-th frame, and an animated GIF of them when ``gif``."""
    frames = [
        (frame_ids[i], [Person(keypoints[i], poses[i], spreads[i], None if hypotheses is None else hypotheses[i])])
        for i in range(0, len(poses), every)
    ]
    return _save(out_dir, name, frames, float(np.percentile(spreads, 99)) if spreads.size else 1.0, gif)


class Track(Protocol):
    """What a picture needs of one person's lifted sequence (posedeploy.run.SequenceResult has it)."""

    frame_ids: np.ndarray
    keypoints: np.ndarray
    pose: np.ndarray
    spread: np.ndarray
    hypotheses: np.ndarray | None
    track_id: int | None
    timeline: np.ndarray | None


def save_people_frames(
    out_dir: Path, name: str, tracks: Sequence[Track], gif: bool = False, every: int = 1
) -> list[Path]:
    """Every track of one recording: a PNG per ``every``-th frame of the recording's timeline with
    everyone seen in it (labelled by track when there are several), and a GIF when ``gif``."""
    at: dict[int, list[tuple[Track, int]]] = {}
    for track in tracks:
        timeline = np.arange(len(track.pose)) if track.timeline is None else track.timeline
        for i, position in enumerate(timeline):
            at.setdefault(int(position), []).append((track, i))
    several = len(tracks) > 1
    frames = []
    for position in sorted(at)[::every]:
        here = at[position]
        people = [
            Person(
                t.keypoints[i],
                t.pose[i],
                t.spread[i],
                None if t.hypotheses is None else t.hypotheses[i],
                f"track {t.track_id}" if several else None,
            )
            for t, i in here
        ]
        frames.append((here[0][0].frame_ids[here[0][1]], people))
    spreads = np.concatenate([t.spread.ravel() for t in tracks]) if tracks else np.zeros(0)
    return _save(out_dir, name, frames, float(np.percentile(spreads, 99)) if spreads.size else 1.0, gif)


def _save(out_dir: Path, name: str, frames: list[tuple[Any, list[Person]]], spread_max: float, gif: bool) -> list[Path]:
    plt = pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    fig = plt.figure(figsize=(13, 4.5))
    written, images = [], []
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
    for frame_id, people in frames:
        mean_spread = np.mean([p.spread.mean() for p in people])
        who = f"{len(people)} people, " if len(people) > 1 else ""
        draw_frame(fig, people, f"{name}, frame {frame_id}: {who}mean spread {mean_spread:.0f} mm", spread_max)
        path = out_dir / f"{safe}_{_frame_label(frame_id)}.png"
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
        pictures = [Image.fromarray(im) for im in images]
        with atomic_path(path) as tmp:
            pictures[0].save(tmp, format="GIF", save_all=True, append_images=pictures[1:], duration=100, loop=0)
        written.append(path)
    return written


def _frame_label(frame_id: Any) -> str:
    """A file-name part that sorts in frame order: zero-padded for numbers, made safe otherwise."""
    try:
        return f"{int(frame_id):06d}"
    except (TypeError, ValueError):
        return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(frame_id))
