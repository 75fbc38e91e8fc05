"""The check before a write (`leadsync.sync.prewrite`): which updates it skips, and how few
calls it asks the CRM what changed in."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from leadsync.connectors.base import CrmRecord, RecordUpdate, Stamps
from leadsync.mapping.fields import CONTACT, WritebackTargets
from leadsync.sync.prewrite import PreWriteCheck, needs_check

PULLED = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
LATER = PULLED + timedelta(minutes=3)

TARGETS = WritebackTargets(
    crm="crm",
    score="Score__c",
    fit_score="Fit__c",
    grade="Grade__c",
    reasons="Reasons__c",
    model_version="Model__c",
    sla_breaches="Breaches__c",
    stage="Stage__c",
    stage_values={"lead": "Lead"},
    status_field="Status",
    status_values={"disqualified": "Closed"},
    handoff_link="Linked__c",
    contact={"score": "Contact_Score__c", "stage": "Stage__c"},
)


def update(*names: str, object_name: str | None = None, record_id: str = "r1") -> RecordUpdate:
    return RecordUpdate(record_id, dict.fromkeys(names, "x"), object_name=object_name)


def test_an_update_of_results_alone_takes_no_check() -> None:
    assert not needs_check(TARGETS, update("Score__c", "Fit__c", "Grade__c", "Reasons__c"))
    assert not needs_check(TARGETS, update("Model__c", "Breaches__c"))
    assert not needs_check(TARGETS, update("Contact_Score__c", object_name=CONTACT))


def test_an_update_of_a_field_people_edit_takes_the_check() -> None:
    # The stage and status are people's too (a rep moves them), and so is any mapped field.
    assert needs_check(TARGETS, update("Score__c", "Stage__c"))
    assert needs_check(TARGETS, update("Score__c", "Status"))
    assert needs_check(TARGETS, update("Score__c", "Phone"))
    assert needs_check(TARGETS, update("Linked__c"))
    # On a Contact, the lead object's names are not results, nor the stage.
    assert needs_check(TARGETS, update("Score__c", object_name=CONTACT))
    assert needs_check(TARGETS, update("Contact_Score__c", "Stage__c", object_name=CONTACT))
    assert needs_check(TARGETS, update("Score__c", object_name="Opportunity"))
    # A CRM without write-back targets has no results to tell apart.
    assert needs_check(None, update("Score__c"))


class FakeCrm:
    """Records at stamps; `read_at_once` ids a stamp read, `fetch` reads whole records."""

    crm = "crm"

    def __init__(self, stamps: Mapping[str, datetime], *, read_at_once: int | None) -> None:
        self.now = dict(stamps)
        self.read_at_once = read_at_once
        self.stamp_calls: list[list[str]] = []
        self.fetch_calls: list[list[str]] = []

    def fetch(
        self, record_ids: Sequence[str], *, fields: Sequence[str], object_name: str | None = None
    ) -> dict[str, CrmRecord]:
        self.fetch_calls.append(list(record_ids))
        return {
            i: CrmRecord("crm", i, self.now[i], {"Phone": "new"})
            for i in record_ids
            if i in self.now
        }

    def __getattr__(self, name: str) -> Any:
        if name == "stamps" and self.read_at_once is not None:
            return self._stamps
        raise AttributeError(name)

    def _stamps(self, record_ids: Sequence[str], *, object_name: str | None = None) -> Stamps:
        assert self.read_at_once is not None
        taken = list(record_ids[: self.read_at_once])
        self.stamp_calls.append(taken)
        return Stamps(len(taken), {i: self.now[i] for i in taken if i in self.now})


def _ids(count: int) -> list[str]:
    return [f"r{n:03d}" for n in range(count)]


def _check_in_batches(crm: FakeCrm, ids: list[str], batch: int) -> list[Any]:
    check = PreWriteCheck(crm, [update(record_id=i) for i in ids], lambda _: ["Phone"])  # type: ignore[arg-type]
    held = dict.fromkeys(ids, PULLED)
    return [check.check(None, ids[s : s + batch], held) for s in range(0, len(ids), batch)]


def test_a_stamp_reader_is_asked_for_several_batches_at_once_and_only_moved_records_are_read() -> (
    None
):
    ids = _ids(60)
    crm = FakeCrm(dict.fromkeys(ids, PULLED), read_at_once=25)
    crm.now["r013"] = LATER  # a person's edit since the pull
    del crm.now["r047"]  # deleted since
    found = _check_in_batches(crm, ids, 10)
    # 60 ids, 25 a stamp read: three reads for six batches, each in write order.
    assert crm.stamp_calls == [ids[0:25], ids[25:50], ids[50:60]]
    assert crm.fetch_calls == [["r013"]]
    assert set(found[1].changed) == {"r013"}
    assert found[1].unchanged == frozenset(ids[10:20]) - {"r013"}
    assert "r047" not in found[4].unchanged
    assert "r047" not in found[4].changed
    assert sum(len(f.unchanged) for f in found) == 58


def test_without_a_stamp_reader_each_batch_is_read_whole() -> None:
    ids = _ids(30)
    crm = FakeCrm(dict.fromkeys(ids, PULLED), read_at_once=None)
    crm.now["r005"] = LATER
    found = _check_in_batches(crm, ids, 10)
    assert crm.fetch_calls == [ids[0:10], ids[10:20], ids[20:30]]
    assert set(found[0].changed) == {"r005"}
    assert found[0].changed["r005"].fields == {"Phone": "new"}
    assert sum(len(f.unchanged) for f in found) == 29


def test_a_batch_asked_out_of_order_is_read_first() -> None:
    ids = _ids(40)
    crm = FakeCrm(dict.fromkeys(ids, PULLED), read_at_once=15)
    check = PreWriteCheck(crm, [update(record_id=i) for i in ids], lambda _: ["Phone"])  # type: ignore[arg-type]
    held = dict.fromkeys(ids, PULLED)
    assert check.check(None, ids[30:40], held).unchanged == frozenset(ids[30:40])
    assert crm.stamp_calls[0][:10] == ids[30:40]
    assert check.check(None, ids[0:10], held).unchanged == frozenset(ids[0:10])
    assert len(crm.stamp_calls) == 2


@pytest.mark.parametrize(
    ("batches", "batch", "limit"),
    [(1, 200, 2000), (10, 200, 2000), (11, 200, 2000), (25, 200, 2000), (7, 100, 250)],
)
def test_the_checks_of_n_batches_cost_n_times_batch_over_the_limit_stamp_reads(
    batches: int, batch: int, limit: int
) -> None:
    ids = [f"r{n:05d}" for n in range(batches * batch)]
    crm = FakeCrm(dict.fromkeys(ids, PULLED), read_at_once=limit)
    found = _check_in_batches(crm, ids, batch)
    assert len(crm.stamp_calls) == math.ceil(batches * batch / limit)
    assert crm.fetch_calls == []
    assert all(
        f.unchanged == frozenset(ids[n * batch : (n + 1) * batch]) for n, f in enumerate(found)
    )


class Ticks:
    """A clock that stands still until moved."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_stamp_read_ahead_longer_ago_than_its_max_age_is_read_again() -> None:
    # A stamp read ahead stands for its record only so long: an edit after the read and
    # before the write would otherwise go unseen for as long as the batches before it take.
    ids = _ids(40)
    crm = FakeCrm(dict.fromkeys(ids, PULLED), read_at_once=30)
    clock = Ticks()
    check = PreWriteCheck(
        crm,  # type: ignore[arg-type]
        [update(record_id=i) for i in ids],
        lambda _: ["Phone"],
        max_age=15.0,
        clock=clock,
    )
    held = dict.fromkeys(ids, PULLED)
    assert check.check(None, ids[0:10], held).unchanged == frozenset(ids[0:10])
    clock.now = 15.0  # still young enough
    assert check.check(None, ids[10:20], held).unchanged == frozenset(ids[10:20])
    assert crm.stamp_calls == [ids[0:30]]
    clock.now = 15.5
    crm.now["r025"] = LATER  # edited after its stamp was read ahead
    found = check.check(None, ids[20:30], held)
    assert set(found.changed) == {"r025"}
    # Read again from this batch on, not the batches already checked.
    assert crm.stamp_calls == [ids[0:30], ids[20:40]]
    assert check.check(None, ids[30:40], held).unchanged == frozenset(ids[30:40])
    assert len(crm.stamp_calls) == 2


def test_stamps_that_age_past_the_max_while_read_are_used_once_and_read_again_later() -> None:
    # A CRM slower than the max age: each batch reads its own stamps (no read ahead worth
    # keeping), and no check loops reading the same ids again.
    ids = _ids(30)
    crm = FakeCrm(dict.fromkeys(ids, PULLED), read_at_once=30)
    ticks = iter(range(0, 10_000, 20))
    check = PreWriteCheck(
        crm,  # type: ignore[arg-type]
        [update(record_id=i) for i in ids],
        lambda _: ["Phone"],
        max_age=15.0,
        clock=lambda: float(next(ticks)),
    )
    held = dict.fromkeys(ids, PULLED)
    found = [check.check(None, ids[s : s + 10], held) for s in range(0, 30, 10)]
    assert [f.unchanged for f in found] == [frozenset(ids[s : s + 10]) for s in range(0, 30, 10)]
    assert crm.stamp_calls == [ids[0:30], ids[10:30], ids[20:30]]
