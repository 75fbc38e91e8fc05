"""Fault specs, the fault draw, and the rate-limit windows, without HTTP."""

from __future__ import annotations

from collections import Counter

import pytest

from leadsync.sandbox.faults import Fault, FaultInjector, FaultSpec, FaultSpecError
from leadsync.sandbox.limits import DailyAllowance, RollingWindow
from tests.support import FakeClock


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", FaultSpec()),
        ("5xx=0.1", FaultSpec(server_error=0.1)),
        (
            "5xx=0.1, 429=0.05,drop=0.02,latency=20ms",
            FaultSpec(server_error=0.1, rate_limited=0.05, drop=0.02, latency_seconds=0.02),
        ),
        ("latency=0.5s", FaultSpec(latency_seconds=0.5)),
        ("LOCK=0.3", FaultSpec(record_lock=0.3)),
    ],
)
def test_fault_spec_parses(text: str, expected: FaultSpec) -> None:
    assert FaultSpec.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("5xx", "needs a value"),
        ("boom=0.1", "unknown fault 'boom'"),
        ("5xx=lots", "not a number"),
        ("429=1.5", "between 0 and 1"),
        ("5xx=0.6,429=0.6", "more than 1"),
        ("latency=fast", "use e.g. 50ms"),
        ("latency=-1ms", "cannot be negative"),
    ],
)
def test_fault_spec_rejects_with_a_message(text: str, message: str) -> None:
    with pytest.raises(FaultSpecError, match=message):
        FaultSpec.parse(text)


def test_fault_draw_follows_the_shares() -> None:
    spec = FaultSpec(server_error=0.2, rate_limited=0.1, drop=0.05)
    injector = FaultInjector(spec, seed=3)
    counts = Counter(injector.draw() for _ in range(20_000))
    assert counts[Fault.SERVER_ERROR] / 20_000 == pytest.approx(0.2, abs=0.015)
    assert counts[Fault.RATE_LIMITED] / 20_000 == pytest.approx(0.1, abs=0.015)
    assert counts[Fault.DROP] / 20_000 == pytest.approx(0.05, abs=0.01)
    assert counts[None] / 20_000 == pytest.approx(0.65, abs=0.02)


def test_same_seed_same_faults() -> None:
    spec = FaultSpec(server_error=0.3, drop=0.3)
    first = FaultInjector(spec, seed=11)
    second = FaultInjector(spec, seed=11)
    assert [first.draw() for _ in range(500)] == [second.draw() for _ in range(500)]


def test_no_faults_draws_nothing() -> None:
    injector = FaultInjector(FaultSpec(latency_seconds=0.01), seed=1)
    assert all(injector.draw() is None for _ in range(1000))


def test_rolling_window_admits_the_limit_then_frees_as_time_passes() -> None:
    clock = FakeClock(1000.0)
    window = RollingWindow(3, 10.0, clock)
    assert [window.try_acquire() for _ in range(4)] == [True, True, True, False]
    assert window.remaining() == 0
    assert window.seconds_until_free() == pytest.approx(10.0)
    clock.advance(9.999)
    assert not window.try_acquire()
    clock.advance(0.002)  # all three were taken at the same moment: all free again
    assert window.try_acquire()
    assert window.remaining() == 2


def test_daily_allowance_counts_a_trailing_day() -> None:
    clock = FakeClock(0.0)
    daily = DailyAllowance(2, clock)
    assert daily.try_acquire()
    clock.advance(3600)
    assert daily.try_acquire()
    assert not daily.try_acquire()
    assert daily.used == 2
    clock.advance(23 * 3600 + 60)  # the first request is now more than a day old
    assert daily.used == 1
    assert daily.try_acquire()
    assert daily.remaining() == 0
