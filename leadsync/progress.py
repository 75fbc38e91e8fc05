"""How a backfill shows its progress: a bar per CRM on a terminal, periodic log lines elsewhere.

    progress_for(stream, every_seconds=30)   a BarProgress when `stream` is a terminal, else
                                             a LogProgress (the service, CI, a pipe)

Both show records pulled, of how many the CRM said it holds, the rate and the time left.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Never, TextIO

from tqdm import tqdm

__all__ = ["BarProgress", "LogProgress", "progress_for"]

log = logging.getLogger("leadsync.backfill")


class BarProgress:
    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._bars: dict[str, tqdm[Never]] = {}

    def start(self, crm: str, *, total: int | None, done: int) -> None:
        self._bars[crm] = tqdm(
            total=total,
            initial=done,
            desc=f"{crm:<10}",
            unit=" records",
            file=self._stream,
            dynamic_ncols=True,
        )

    def advance(self, crm: str, records: int) -> None:
        self._bars[crm].update(records)

    def finish(self, crm: str) -> None:
        self._bars.pop(crm).close()


class LogProgress:
    """A line every `every_seconds`: `hubspot: 12,000 of 50,000 (24%), 410/s, 1m33s left`."""

    def __init__(
        self, *, every_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._every = every_seconds
        self._clock = clock
        self._state: dict[str, tuple[int | None, int, int, float, float]] = {}

    def start(self, crm: str, *, total: int | None, done: int) -> None:
        now = self._clock()
        # total, done at start, done now, started, last line
        self._state[crm] = (total, done, done, now, now)
        log.info("backfill %s: starting at %s of %s records", crm, f"{done:,}", _count(total))

    def advance(self, crm: str, records: int) -> None:
        total, first, done, started, last = self._state[crm]
        done += records
        now = self._clock()
        if now - last >= self._every:
            log.info("backfill %s", _line(crm, total, first, done, now - started))
            last = now
        self._state[crm] = (total, first, done, started, last)

    def finish(self, crm: str) -> None:
        total, first, done, started, _ = self._state.pop(crm)
        log.info(
            "backfill %s done: %s", crm, _line(crm, total, first, done, self._clock() - started)
        )


def progress_for(stream: TextIO, *, every_seconds: float) -> BarProgress | LogProgress:
    is_terminal = getattr(stream, "isatty", lambda: False)()
    return BarProgress(stream) if is_terminal else LogProgress(every_seconds=every_seconds)


def _line(crm: str, total: int | None, first: int, done: int, seconds: float) -> str:
    rate = (done - first) / seconds if seconds > 0 else 0.0
    text = f"{crm}: {done:,} of {_count(total)}"
    if total:
        text += f" ({done / total:.0%})"
    text += f", {rate:,.0f}/s"
    if total and rate > 0 and done < total:
        text += f", {_duration((total - done) / rate)} left"
    return text


def _count(total: int | None) -> str:
    return "?" if total is None else f"{total:,}"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02}m" if hours else f"{minutes}m{secs:02}s"
