"""The one interface every inference backend offers (load an artifact, run a feed, close).

Comparison, chunking and noise live elsewhere (lifter.py, parity.py), so a new backend is one
new file implementing :class:`Backend`.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from posedeploy.errors import InputError


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy dtype name
    shape: tuple[int | str, ...]  # ints for fixed axes, strings for dynamic ones


class Backend(ABC):
    """A loaded graph or engine that maps named numpy arrays to named numpy arrays.

    :meth:`run` checks that the backend is open and that the feed has the inputs' names, dtypes and
    fixed axes, then runs the backend's :meth:`_execute` under its lock (unless it may run calls
    concurrently); :meth:`close` releases it once. A backend sets ``_inputs``, ``_outputs`` and
    ``source`` in its constructor, after ``super().__init__()``, and implements the abstract parts.
    """

    name: str = "backend"
    source: str = "graph"  # what the feed is checked against, in error messages (a file name)
    _inputs: tuple[TensorSpec, ...] = ()
    _outputs: tuple[TensorSpec, ...] = ()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closed = False

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return self._inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return self._outputs

    @property
    @abstractmethod
    def device(self) -> str:
        """Where it computes, e.g. 'cpu' or 'cuda:0'."""

    @property
    @abstractmethod
    def precision(self) -> str:
        """'fp32', 'fp16-mixed', ... as recorded in the artifact."""

    @property
    def concurrent_calls(self) -> bool:
        """Whether :meth:`_execute` may run from several threads at once (else calls take turns)."""
        return False

    def computed_precision(self, asked: str) -> str:
        """The precision a run asked for as ``asked`` really computes in (the backends that run the
        graph of that precision: ``asked`` itself)."""
        return asked

    @property
    def limits(self) -> dict[str, tuple[int, int]] | None:
        """Smallest and largest batch B and hypotheses S one call accepts (None: any)."""
        return None

    def run(self, feed: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Run once on ``feed``; returns the requested (default: all) outputs by name."""
        self._check_open()
        names = self._output_names(outputs)
        checked = check_feed(self.inputs, feed, self.source)
        if self.concurrent_calls:
            return self._execute(checked, names)
        with self._lock:
            self._check_open()
            return self._execute(checked, names)

    @abstractmethod
    def _execute(self, feed: dict[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
        """Run on a checked feed (contiguous arrays of the inputs' dtypes); the ``names`` outputs."""

    def close(self) -> None:
        """Release the session / engine and its memory. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._release()

    @abstractmethod
    def _release(self) -> None:
        """Free what the backend holds (called once, by :meth:`close`)."""

    def _check_open(self) -> None:
        if self._closed:
            raise InputError(f"this {self.name} backend is closed")

    def _output_names(self, outputs: Sequence[str] | None) -> list[str]:
        known = [spec.name for spec in self.outputs]
        if outputs is None:
            return known
        wanted = [outputs] if isinstance(outputs, str) else list(outputs)
        if not wanted or any(name not in known for name in wanted):
            raise InputError(f"{self.source} has outputs {known}; asked for {wanted}")
        return wanted

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> str:
        return f"{self.name} on {self.device} ({self.precision})"


def check_feed(specs: Sequence[TensorSpec], feed: Mapping[str, np.ndarray], graph: str) -> dict[str, np.ndarray]:
    """``feed`` as contiguous arrays of the specs' dtypes, after checking names and fixed axes
    (an axis is fixed where the spec has a whole number >= 0; TensorRT writes -1 for dynamic ones)."""
    names = {spec.name for spec in specs}
    if not isinstance(feed, Mapping) or set(feed) != names:
        got = sorted(feed) if isinstance(feed, Mapping) else type(feed).__name__
        raise InputError(f"{graph} takes inputs {sorted(names)}, got {got}")
    checked = {}
    for spec in specs:
        try:
            array = np.ascontiguousarray(feed[spec.name], dtype=spec.dtype)
        except (TypeError, ValueError) as exc:
            raise InputError(f"input '{spec.name}' must be an array of {spec.dtype}: {first_line(exc)}") from None
        fixed = [
            (want, got)
            for want, got in zip(spec.shape, array.shape, strict=False)
            if isinstance(want, int) and want >= 0
        ]
        if array.ndim != len(spec.shape) or any(want != got for want, got in fixed):
            raise InputError(f"input '{spec.name}' must have shape {spec.shape}, got {array.shape}")
        checked[spec.name] = array
    return checked


def first_line(exc: Exception) -> str:
    """The first line of a library's error message (theirs run to pages), or its type."""
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
