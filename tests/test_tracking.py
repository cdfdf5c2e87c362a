"""posedeploy/tracking.py: people kept as tracks across frames by their keypoints."""

import numpy as np
import pytest

from posedeploy.errors import InputError
from posedeploy.tracking import Tracker


def person(x: float, y: float, size: float = 100.0, seed: int = 0) -> np.ndarray:
    """17 keypoints spread over a box of ``size`` pixels around (x, y)."""
    return np.array([x, y]) + np.random.default_rng(seed).uniform(-size / 2, size / 2, (17, 2))


def crossing(frames: int = 30) -> list[np.ndarray]:
    """Three people: two walking towards each other and past, one standing; listed in a new order each frame."""
    rng = np.random.default_rng(3)
    out = []
    for f in range(frames):
        people = [person(100 + 20 * f, 300, seed=1), person(700 - 20 * f, 330, seed=2), person(400, 700, seed=3)]
        out.append(np.stack([people[i] for i in rng.permutation(3)]))
    return out


def identities(frames: list[np.ndarray], tracker: Tracker) -> list[dict[int, int]]:
    """Per frame: track id -> which person (by the seed-fixed shape, matched on the first frame's order)."""
    ref = [person(0, 0, seed=s) - person(0, 0, seed=s).mean(axis=0) for s in (1, 2, 3)]
    out = []
    for f, people in enumerate(frames):
        ids = tracker.update(f, people)
        who = [int(np.argmin([np.abs((p - p.mean(axis=0)) - r).sum() for r in ref])) for p in people]
        out.append(dict(zip(ids, who, strict=True)))
    return out


def test_people_keep_their_track_through_reordering_and_crossing():
    frames = identities(crossing(), Tracker())
    assert all(frame == frames[0] for frame in frames) and sorted(frames[0]) == [0, 1, 2]


def test_a_person_missing_for_a_few_frames_keeps_the_id_and_a_longer_gap_starts_a_new_track():
    tracker = Tracker(max_gap=3)
    a, b = person(100, 100, seed=1), person(600, 100, seed=2)
    assert tracker.update(0, np.stack([a, b])) == [0, 1]
    assert tracker.update(1, a[None]) == [0]  # b unseen
    assert tracker.update(4, np.stack([b, a])) == [1, 0]  # b back after 3 frames: the same track
    assert tracker.update(9, a[None]) == [2]  # a unseen for 5 frames: its track ended
    assert tracker.active == [2]


def test_a_far_person_is_a_new_track_and_unseen_joints_do_not_count():
    tracker = Tracker()
    a = person(100, 100, seed=1)
    assert tracker.update(0, a[None]) == [0]
    assert tracker.update(1, person(900, 900, seed=1)[None]) == [1]  # 8 sizes away: someone else
    half = a.copy()
    conf = np.ones(17)
    half[:8] += 5000.0  # wild joints, but reported with no confidence
    conf[:8] = 0.0
    assert tracker.update(2, half[None], conf[None]) == [0]
    nothing = np.full((1, 17, 2), np.nan)
    assert tracker.update(3, nothing) == [-1]  # a person with no joint seen is not tracked


def test_bad_frames_and_settings_are_refused():
    tracker = Tracker()
    tracker.update(5, np.zeros((0, 17, 2)))
    with pytest.raises(InputError, match="increasing order"):
        tracker.update(5, np.zeros((0, 17, 2)))
    with pytest.raises(InputError, match=r"\(people, joints, 2\)"):
        tracker.update(6, np.zeros((17, 2)))
    with pytest.raises(InputError, match="max gap"):
        Tracker(max_gap=-1)
    with pytest.raises(InputError, match="max cost"):
        Tracker(max_cost=float("nan"))
