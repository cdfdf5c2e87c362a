"""Subject folds: lifters trained without some of the training subjects, so that the AVG model's
pseudo-labels can be the lifter's errors on people it never saw (as the deployed lifter's errors
on new people are), not its smaller errors on its own training data.

Subjects (Human3.6M people, or the built-in generator's sequences) are sorted and dealt round-robin
into ``folds`` folds; ``train lifter --fold K/N`` leaves fold K out and records it in the checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from posedeploy.data import PoseSet
from posedeploy.errors import CheckpointError, InputError
from posedeploy.training.checkpoint import Checkpoint


def parse_fold(text: str) -> tuple[int, int]:
    """'0/2' -> (0, 2): leave out fold 0 of 2."""
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise InputError(f"fold must be K/N with whole numbers, e.g. 0/2, got '{text}'") from None
    if not (n >= 2 and 0 <= k < n):
        raise InputError(f"fold K/N needs N >= 2 and 0 <= K < N, got '{text}'")
    return k, n


def fold_of(data: PoseSet, folds: int) -> np.ndarray:
    """The fold (0..folds-1) of every sample, by subject."""
    subjects, inverse = np.unique(data.subjects, return_inverse=True)
    if len(subjects) < folds:
        raise InputError(f"{len(subjects)} subject(s) cannot be split into {folds} folds")
    return (np.arange(len(subjects)) % folds)[inverse]


def without_fold(data: PoseSet, fold: Sequence[int]) -> PoseSet:
    """``data`` without the subjects of fold K of N (``fold``: K, N)."""
    k, n = fold
    subset = data.take(fold_of(data, n) != k)
    subset.meta["fold"] = [k, n]
    return subset


def assign_lifters(data: PoseSet, lifters: list[Checkpoint], main: Checkpoint) -> np.ndarray:
    """For every sample, the index of the fold lifter that did not see its subject."""
    folds = []
    for i, ckpt in enumerate(lifters):
        fold = ckpt.config.training.get("fold")
        if not fold:
            raise CheckpointError(f"fold lifter {i + 1} was not trained with --fold K/N: its errors are not held-out")
        if ckpt.config.lifter != main.config.lifter or ckpt.config.keypoints != main.config.keypoints:
            raise CheckpointError(
                f"fold lifter {i + 1} is a {ckpt.config.lifter} trained on {ckpt.config.keypoints}; the lifter is "
                f"a {main.config.lifter} trained on {main.config.keypoints}"
            )
        folds.append(tuple(fold))
    counts = {n for _, n in folds}
    if len(counts) != 1 or sorted(k for k, _ in folds) != list(range(counts.pop())):
        raise CheckpointError(f"fold lifters must leave out each fold of one K/N exactly once, got {folds}")
    sample_fold = fold_of(data, folds[0][1])
    owner = np.empty(len(data), dtype=int)
    for i, (k, _) in enumerate(folds):
        owner[sample_fold == k] = i
    return owner
