"""bench/full_reconcile.py's rate-limited measures: the rate over the calls' span, what
HubSpot's limits allow for the same calls, where the run's time goes, and the request log
they are read from."""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter

import pytest
from full_reconcile import (
    HUBSPOT_REQUESTS,
    Sample,
    _requests_sent,
    achieved_rate,
    limit_bound_share,
    limit_bound_span,
    span_rate,
    wall_parts,
)


def sample(requests: list[tuple[float, str]], run_seconds: float) -> Sample:
    return Sample(
        wall=run_seconds + 1,
        cpu=1.0,
        peak_rss=1,
        calls=Counter({"hubspot.contacts.search": len(requests)}),
        statuses=Counter(),
        written={},
        pulled={},
        run_seconds=run_seconds,
        write_floor={},
        work={},
        store_bytes=0,
        leads_stored=0,
        hubspot_requests=requests,
    )


# A run: its properties read at 0.5 s, 51 searches 0.25 s apart (4 a second) from 1 s, the
# settle's merge for 5 s, then 110 writes 0.02 s apart, and 1 s after the last.
PULL = [(0.5, "list contact properties")] + [(1 + i / 4, "search contacts") for i in range(51)]
WRITES = [(18.5 + i / 50, "batch update contacts") for i in range(110)]
RUN = sample(PULL + WRITES, run_seconds=WRITES[-1][0] + 1)


def test_the_rate_over_the_span_leaves_out_before_the_first_and_after_the_last_call() -> None:
    span = WRITES[-1][0] - 0.5
    assert span_rate(RUN) == pytest.approx(10 * 161 / span)
    assert span_rate(RUN) > achieved_rate(RUN)  # which counts the sync's whole time


def test_what_the_limits_allow_is_set_by_the_searches_where_the_window_holds_every_call() -> None:
    # 51 searches at 5 in any rolling second: the 51st 10 s after the first; 162 calls are
    # fewer than one 10 s window holds.
    assert limit_bound_span(RUN) == 10.0
    assert limit_bound_share(RUN) == pytest.approx(100 * 10.0 / (WRITES[-1][0] - 0.5))


def test_what_the_limits_allow_is_set_by_the_window_past_190_calls() -> None:
    many = sample([(i / 100, "batch update contacts") for i in range(400)], run_seconds=5)
    assert limit_bound_span(many) == 20.0  # calls 191 and 381 each wait for a new window


def test_the_wall_parts_add_up_to_the_sync_and_put_the_merge_between_pull_and_writes() -> None:
    parts = wall_parts(RUN)
    assert parts == pytest.approx(
        {
            "before the first call": 0.5,
            "pull": 13.0,
            "settle before the first write": 18.5 - 13.5,
            "writes and checks": 109 / 50,
            "after the last call": 1.0,
        }
    )
    assert sum(parts.values()) == pytest.approx(RUN.run_seconds)


def test_a_run_without_requests_has_no_span_rate() -> None:
    assert math.isnan(span_rate(sample([], run_seconds=1)))
    assert wall_parts(sample([], run_seconds=1)) == {}


def test_the_request_log_takes_each_requests_line_from_any_thread_counts_left_out() -> None:
    logger = logging.getLogger(HUBSPOT_REQUESTS)
    level = logger.level
    with _requests_sent(HUBSPOT_REQUESTS) as sent:
        logger.debug("hubspot %s", "search contacts")
        aside = threading.Thread(
            target=logger.debug, args=("hubspot %s", "batch update 100 contacts")
        )
        aside.start()
        aside.join()
        logger.info("created HubSpot contact property %s", "leadsync_score")
    assert [kind for _, kind in sent] == ["search contacts", "batch update contacts"]
    assert logger.level == level
    logger.debug("hubspot %s", "search contacts")
    assert len(sent) == 2  # the log is taken off when the run ends
