"""What the command line shows on stderr: posedeploy's log records as plain lines (warnings marked),
at the verbosity of ``-q`` / ``-v``. The library itself only logs (see posedeploy/__init__.py)."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from posedeploy import progress

LEVELS = {-1: logging.WARNING, 0: logging.INFO, 1: logging.DEBUG}


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of each record (tests and pipes swap it)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


class _Format(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            return f"warning: {message}"
        if record.levelno <= logging.DEBUG:
            return f"{record.name}: {message}"
        return message


def configure(verbosity: int = 0) -> None:
    """Show posedeploy's records on stderr: -1 warnings only (-q), 0 progress and notes, 1 debug (-v)."""
    package = logging.getLogger("posedeploy")
    for handler in [h for h in package.handlers if isinstance(h, _Stderr)]:
        package.removeHandler(handler)
    handler = _Stderr()
    handler.setFormatter(_Format())
    package.addHandler(handler)
    package.setLevel(LEVELS[max(-1, min(1, verbosity))])
    progress.show_bars(True)
