"""Backfill progress: a bar on a terminal, log lines elsewhere, both with counts and time left."""

from __future__ import annotations

import io
import logging

import pytest

from leadsync.progress import BarProgress, LogProgress, progress_for


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_bar_with_counts_and_a_pipe_gets_log_lines() -> None:
    terminal = Terminal()
    bar = progress_for(terminal, every_seconds=30)
    assert isinstance(bar, BarProgress)
    bar.start("hubspot", total=1_000, done=200)
    bar.advance("hubspot", 300)
    bar.finish("hubspot")
    shown = terminal.getvalue()
    assert "hubspot" in shown
    assert "500/1000" in shown
    assert isinstance(progress_for(io.StringIO(), every_seconds=30), LogProgress)


def test_log_lines_come_every_so_often_with_rate_and_time_left(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    progress = LogProgress(every_seconds=10, clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="leadsync.backfill")
    progress.start("salesforce", total=10_000, done=0)
    for _ in range(4):  # 1,000 records every 5 s: a line every other step
        now[0] += 5
        progress.advance("salesforce", 1_000)
    progress.finish("salesforce")
    lines = [record.getMessage() for record in caplog.records]
    assert lines[0] == "backfill salesforce: starting at 0 of 10,000 records"
    assert lines[1:3] == [
        "backfill salesforce: 2,000 of 10,000 (20%), 200/s, 0m40s left",
        "backfill salesforce: 4,000 of 10,000 (40%), 200/s, 0m30s left",
    ]
    assert (
        lines[3] == "backfill salesforce done: salesforce: 4,000 of 10,000 (40%), 200/s, 0m30s left"
    )
