"""The SLA ledger in the store, on every backend: each status move and each event once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from leadsync.mapping.lifecycle import Stage, Transition
from leadsync.sync.sla.clocks import Clock, ClockChanges, ClockStatus, ClockStop, Outcome
from leadsync.sync.sla.ledger import BREACHED, RESOLVED, SlaEvent
from leadsync.sync.store import Store

T0 = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
DUE = T0 + timedelta(hours=8)


class HeldClock:
    """The store's bookkeeping clock, moved by the test."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def moment() -> HeldClock:
    return HeldClock()


@pytest.fixture
def store(database_url: str, moment: HeldClock) -> Iterator[Store]:
    with Store(database_url, clock=moment) as opened:
        yield opened


def clock(lead: str = "L1", rule: str = "mql_acceptance", due: datetime = DUE) -> Clock:
    return Clock(f"{rule}-{lead}", rule, lead, T0, due, "America/New_York", owner="005A")


def start(store: Store, *clocks: Clock) -> None:
    store.save_decisions(clocks=[ClockChanges(opened=clocks)], run_id="r1")


def stop(store: Store, target: Clock, at: datetime, outcome: Outcome = Outcome.MET) -> None:
    store.save_decisions(
        clocks=[ClockChanges(stopped=(ClockStop(target.clock_id, at, outcome, "why"),))],
        run_id="r2",
    )


def test_a_started_clock_is_running_and_starting_it_again_changes_nothing(store: Store) -> None:
    start(store, clock())
    start(store, clock(due=DUE + timedelta(hours=5)))  # the same id: ignored
    (running,) = store.sla.running(["L1"])["L1"]
    assert running == clock()
    assert store.sla.running(["nobody"]) == {}


def test_a_clock_stopped_in_time_is_met(store: Store) -> None:
    start(store, clock())
    stop(store, clock(), DUE - timedelta(minutes=1))
    (done,) = store.sla.clocks()
    assert (done.status, done.outcome, done.stop_reason) == (ClockStatus.MET, Outcome.MET, "why")
    assert done.breached_at is None
    assert store.sla.running(["L1"]) == {}


def test_a_clock_stopped_late_is_a_breach_resolved_late(store: Store, moment: HeldClock) -> None:
    start(store, clock())
    moment.now = DUE + timedelta(hours=2)
    stop(store, clock(), DUE + timedelta(hours=1), Outcome.REJECTED)
    (done,) = store.sla.clocks()
    assert done.status is ClockStatus.RESOLVED_LATE
    assert done.outcome is Outcome.REJECTED
    assert done.breached_at == moment.now


def test_a_stopped_clock_is_not_stopped_again(store: Store) -> None:
    start(store, clock())
    stop(store, clock(), T0 + timedelta(hours=1))
    stop(store, clock(), DUE + timedelta(hours=3))
    (done,) = store.sla.clocks()
    assert (done.status, done.stopped_at) == (ClockStatus.MET, T0 + timedelta(hours=1))


def test_open_clocks_past_due_are_marked_breached_once(store: Store) -> None:
    start(store, clock("L1"), clock("L2", due=DUE + timedelta(days=1)))
    after = DUE + timedelta(seconds=1)
    assert store.sla.overdue_leads(after, rules=["mql_acceptance"]) == ["L1"]
    assert store.sla.overdue_leads(after, rules=["another_rule"]) == []
    assert store.sla.mark_breached(DUE) == 0  # due at DUE: not yet late
    assert store.sla.mark_breached(after) == 1
    assert store.sla.mark_breached(DUE + timedelta(hours=1)) == 0
    statuses = {c.lead_id: (c.status, c.breached_at) for c in store.sla.clocks()}
    assert statuses == {"L1": (ClockStatus.BREACHED, after), "L2": (ClockStatus.OPEN, None)}
    # Recorded as breached, its flag is written: it is not merged again for it.
    assert store.sla.overdue_leads(DUE + timedelta(days=2), rules=["mql_acceptance"]) == ["L2"]


def test_clocks_of_rules_no_longer_defined_are_not_judged(store: Store) -> None:
    start(store, clock("L1"), clock("L2", rule="removed_rule"))
    later = DUE + timedelta(hours=1)
    assert store.sla.mark_breached(later, rules=["mql_acceptance"]) == 1
    assert store.sla.open_breaches(later, rules=["mql_acceptance"]) == 1
    assert {c.rule: c.status for c in store.sla.clocks()} == {
        "mql_acceptance": ClockStatus.BREACHED,
        "removed_rule": ClockStatus.OPEN,
    }


def test_a_breach_is_announced_once_across_ten_checks(store: Store) -> None:
    start(store, clock())
    announced: list[SlaEvent] = []
    for minutes in range(10):
        now = DUE + timedelta(minutes=5 * minutes)
        store.sla.mark_breached(now)
        announced += store.sla.announce(now)
    assert [(e.event_id, e.kind) for e in announced] == [(f"breached:{clock().clock_id}", BREACHED)]
    assert announced[0].payload["rule"] == "mql_acceptance"
    assert announced[0].payload["owner"] == "005A"
    assert [e.event_id for e in store.sla.events()] == [announced[0].event_id]


def test_a_late_acceptance_resolves_the_breach_and_announces_it_once(
    store: Store, moment: HeldClock
) -> None:
    start(store, clock())
    store.sla.mark_breached(DUE + timedelta(hours=1))
    assert [e.kind for e in store.sla.announce(DUE + timedelta(hours=1))] == [BREACHED]
    assert store.sla.overdue_leads(DUE + timedelta(hours=2), rules=["mql_acceptance"]) == []
    moment.now = DUE + timedelta(hours=3)
    stop(store, clock(), DUE + timedelta(hours=2, minutes=30))
    (done,) = store.sla.clocks()
    assert done.status is ClockStatus.RESOLVED_LATE
    assert done.breached_at == DUE + timedelta(hours=1)  # kept from the check that saw it
    resolved = store.sla.announce(moment.now)
    assert [(e.kind, e.payload["reason"]) for e in resolved] == [(RESOLVED, "why")]
    assert store.sla.announce(moment.now + timedelta(hours=1)) == []
    assert store.sla.open_breaches(moment.now) == 0


def test_a_breach_no_check_saw_running_is_announced_as_breach_and_resolution(
    store: Store, moment: HeldClock
) -> None:
    start(store, clock())
    moment.now = DUE + timedelta(hours=4)
    stop(store, clock(), DUE + timedelta(hours=4))
    kinds = sorted(event.kind for event in store.sla.announce(moment.now))
    assert kinds == [BREACHED, RESOLVED]


def test_events_added_twice_are_added_once(store: Store) -> None:
    event = SlaEvent("volume_behind:weekly:*:2026-11-30", "volume_behind", "weekly", T0)
    assert store.sla.add_events([event, event]) == [event]
    assert store.sla.add_events([event]) == []
    assert [e.event_id for e in store.sla.events(kind="volume_behind")] == [event.event_id]


def test_entries_are_each_leads_first_entry_into_a_stage_within_the_period(
    store: Store,
) -> None:
    def entered(lead: str, at: datetime, to: Stage = Stage.MQL) -> tuple[str, Transition]:
        return lead, Transition(Stage.LEAD, to, at, "because", "advance")

    store.transitions.add(
        [
            entered("L1", T0),
            entered("L1", T0 + timedelta(hours=2)),  # again, after a recycle
            entered("L2", T0 + timedelta(days=1)),
            entered("L3", T0 - timedelta(seconds=1)),  # before the period
            entered("L4", T0 + timedelta(days=7)),  # at its end: the next period's
            entered("L5", T0, to=Stage.SQL),
        ],
        run_id="r1",
    )
    found = store.sla.entries("mql", T0, T0 + timedelta(days=7))
    assert found == {"L1": T0, "L2": T0 + timedelta(days=1)}
    assert all(moment.tzinfo is not None for moment in found.values())


def test_the_outbox_keeps_an_event_until_it_is_delivered_and_gives_up_when_told(
    store: Store,
) -> None:
    start(store, clock("L1"), clock("L2"))
    store.sla.mark_breached(DUE + timedelta(seconds=1))
    first, second = store.sla.announce(DUE)
    assert [e.event_id for e in store.sla.due_deliveries(DUE)] == [first.event_id, second.event_id]
    store.sla.delivered(first.event_id, DUE)
    store.sla.delivery_failed(second.event_id, DUE, error="503", retry_in=timedelta(minutes=2))
    assert store.sla.due_deliveries(DUE + timedelta(minutes=1)) == []
    (again,) = store.sla.due_deliveries(DUE + timedelta(minutes=2))
    assert (again.event_id, again.attempts, again.last_error) == (second.event_id, 1, "503")
    store.sla.delivery_failed(second.event_id, DUE, error="404", retry_in=None)
    assert store.sla.due_deliveries(datetime(9000, 1, 1, tzinfo=UTC)) == []
    delivered = {e.event_id: e.delivered_at for e in store.sla.events()}
    assert delivered == {first.event_id: DUE, second.event_id: None}


def test_without_a_webhook_announced_events_are_not_kept_waiting(store: Store) -> None:
    start(store, clock())
    store.sla.mark_breached(DUE + timedelta(seconds=1))
    store.sla.announce(DUE, delivered=True)
    assert store.sla.due_deliveries(DUE) == []


def test_an_event_is_claimed_by_one_check_at_a_time(store: Store) -> None:
    start(store, clock())
    store.sla.mark_breached(DUE + timedelta(seconds=1))
    (event,) = store.sla.announce(DUE)
    hold = timedelta(minutes=2)
    assert store.sla.claim_delivery(event.event_id, DUE, hold=hold)
    assert not store.sla.claim_delivery(event.event_id, DUE + timedelta(minutes=1), hold=hold)
    assert store.sla.due_deliveries(DUE + timedelta(minutes=1)) == []
    # A check that died mid-post leaves it to be tried again once the hold has passed.
    assert store.sla.claim_delivery(event.event_id, DUE + hold, hold=hold)
