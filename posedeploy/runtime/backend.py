"""The one interface every inference backend offers (load an artifact, run a feed, close).

Comparison, chunking and noise live elsewhere (lifter.py, parity.py), so a new backend is one
new file implementing :class:`Backend`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from posedeploy.errors import InputError


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

    def computed_precision(self, asked: str) -> str:
        """The precision a run asked for as ``asked`` really computes in (the backends that run the
        graph of that precision: ``asked`` itself)."""
        return asked

    @property
    def limits(self) -> dict[str, tuple[int, int]] | None:
        """Smallest and largest batch B and hypotheses S one call accepts (None: any)."""
        return None

    @abstractmethod
    def run(self, feed: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Run once on ``feed``; returns the requested (default: all) outputs by name."""

    @abstractmethod
    def close(self) -> None:
        """Release the session / engine and its memory. Idempotent."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def describe(self) -> str:
        return f"{self.name} on {self.device} ({self.precision})"


def check_feed(specs: Sequence[TensorSpec], feed: Mapping[str, np.ndarray], graph: str) -> dict[str, np.ndarray]:
    """``feed`` as contiguous arrays of the specs' dtypes, after checking names and fixed axes."""
    names = {spec.name for spec in specs}
    if set(feed) != names:
        raise InputError(f"{graph} takes inputs {sorted(names)}, got {sorted(feed)}")
    checked = {}
    for spec in specs:
        array = np.ascontiguousarray(feed[spec.name], dtype=spec.dtype)
        if array.ndim != len(spec.shape) or any(
            isinstance(want, int) and want != got for want, got in zip(spec.shape, array.shape, strict=True)
        ):
            raise InputError(f"input '{spec.name}' must have shape {spec.shape}, got {array.shape}")
        checked[spec.name] = array
    return checked


def first_line(exc: Exception) -> str:
    """The first line of a library's error message (theirs run to pages), or its type."""
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
