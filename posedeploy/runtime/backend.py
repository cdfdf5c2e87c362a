"""The one interface every inference backend offers (load an artifact, run a feed, close).

Comparison, chunking and noise live elsewhere (lifter.py, parity.py), so a new backend is one
new file implementing :class:`Backend`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy dtype name
    shape: tuple  # ints for fixed axes, strings for dynamic ones


class Backend(ABC):
    """A loaded graph or engine that maps named numpy arrays to named numpy arrays."""

    name: str = "backend"

    @property
    @abstractmethod
    def inputs(self) -> tuple[TensorSpec, ...]: ...

    @property
    @abstractmethod
    def outputs(self) -> tuple[TensorSpec, ...]: ...

    @property
    @abstractmethod
    def device(self) -> str:
        """Where it computes, e.g. 'cpu' or 'cuda:0'."""

    @property
    @abstractmethod
    def precision(self) -> str:
        """'fp32', 'fp16-mixed', ... as recorded in the artifact."""

    @property
    def limits(self) -> dict[str, tuple[int, int]] | None:
        """Smallest and largest batch B and hypotheses S one call accepts (None: any)."""
        return None

    @abstractmethod
    def run(self, feed: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Run once on ``feed``; returns the requested (default: all) outputs by name."""

    def close(self) -> None:
        """Release the session / engine and its memory. Idempotent."""

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def describe(self) -> str:
        return f"{self.name} on {self.device} ({self.precision})"
