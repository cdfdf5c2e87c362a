"""Progress for long work: a line every tenth of the way through the ``posedeploy.progress`` logger,
or a live bar on a terminal where the command line asked for bars (:func:`show_bars`)."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator

logger = logging.getLogger(__name__)
_bars = False


def show_bars(enabled: bool) -> None:
    """Draw a live bar instead of log lines when stderr is a terminal (the CLI's choice, not the API's)."""
    global _bars
    _bars = enabled


@contextlib.contextmanager
def progress(total: int, description: str, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``; shows ``description`` with a bar (TTY) or periodic lines (logs)."""
    if not enabled or total <= 0:
        yield lambda n: None
        return
    if _bars and sys.stderr.isatty() and logger.isEnabledFor(logging.INFO):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n: bar.advance(task, n)
        return
    done, next_report, start = 0, total / 10, time.monotonic()

    def advance(n: int) -> None:
        nonlocal done, next_report
        done += n
        if done >= next_report and done < total:
            logger.info(f"{description}: {done}/{total} ({100 * done // total}%, {time.monotonic() - start:.0f} s)")
            next_report += total / 10

    yield advance
