"""A first batch that is a poor sample of a kind's rows (1,000 and more alike, empty or sparse
records) and the varied rows saved after it: every row still packs and reads back; and the
dictionary later rows are packed with should not make them larger than no dictionary at all."""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from leadsync.sync import packed, tables
from leadsync.sync.database import alembic_config
from leadsync.sync.dictionaries import RETRAINS, TRAIN_SAMPLES
from leadsync.sync.model import Lead, Snapshot
from leadsync.sync.store import Store, _lead_text
from tests.sync.test_store import T0
from tests.sync.test_store_size import a_lead, dictionary_kinds, record

ALIKE = {
    "identical": lambda n: Lead(f"A{n:05d}", {"email": "same@example.com"}),
    "empty": lambda n: Lead(f"A{n:05d}", {}),
    "sparse": lambda n: Lead(f"A{n:05d}", {"email": f"p{n}@list.example", "last_name": f"N{n}"}),
}


def _tiny(number: int) -> Snapshot:
    return Snapshot(
        crm="salesforce",
        record_id=f"00Q{number:015d}",
        modified_at=T0,
        raw={},
        canonical={},
        changed_at={},
        deleted=False,
    )


@pytest.mark.parametrize("alike", sorted(ALIKE))
def test_after_a_first_batch_of_alike_records_every_row_packs_and_reads_back(
    database_url: str, alike: str
) -> None:
    first = [ALIKE[alike](n) for n in range(TRAIN_SAMPLES + 10)]
    varied = [a_lead(n) for n in range(300)]
    tiny = [_tiny(n) for n in range(TRAIN_SAMPLES + 10)]
    snapshots = [record(n, "salesforce") for n in range(TRAIN_SAMPLES + 10, TRAIN_SAMPLES + 300)]
    with Store(database_url, clock=lambda: T0) as store:
        store.save_leads(first)
        store.save_page("salesforce", tiny, position=None, run_id="run-1")
        for start in range(0, len(varied), 50):
            store.save_decisions(leads=varied[start : start + 50], run_id="run-1")
        store.save_page("salesforce", snapshots, position=None, run_id="run-1")
        assert sorted(dictionary_kinds(store)) == ["leads", "snapshots:salesforce"]
    with Store(database_url, clock=lambda: T0) as reader:  # another process's view
        given = {lead.lead_id: lead for lead in [*first, *varied]}
        assert reader.leads(list(given)) == given
        ids = [s.record_id for s in [*tiny, *snapshots]]
        assert reader.snapshots("salesforce", ids) == {
            s.record_id: replace(s, lead_id=None) for s in [*tiny, *snapshots]
        }


def _packed_sizes(store: Store) -> dict[str, int]:
    with store.engine.connect() as connection:
        query = sa.select(tables.leads.c.lead_id, tables.leads.c.packed)
        return {row.lead_id: len(bytes(row.packed)) for row in connection.execute(query)}


@pytest.mark.parametrize("alike", sorted(ALIKE))
def test_leads_after_a_first_batch_of_alike_ones_get_a_dictionary_that_packs_them(
    database_url: str, alike: str
) -> None:
    # An org's oldest leads, pulled first, are a list imported with little in it; thousands
    # of full ones follow, in a sync's smaller saves. Each save a second later.
    ticks = itertools.count()
    varied = [a_lead(n) for n in range(2 * TRAIN_SAMPLES)]
    with Store(database_url, clock=lambda: T0 + timedelta(seconds=next(ticks))) as store:
        store.save_leads([ALIKE[alike](n) for n in range(TRAIN_SAMPLES + 10)])
        for start in range(0, len(varied), 50):
            store.save_leads(varied[start : start + 50])
        sizes = _packed_sizes(store)
        kinds = dictionary_kinds(store)
    with Store(database_url, clock=lambda: T0) as reader:  # another process's view
        assert reader.leads([lead.lead_id for lead in varied]) == {
            one.lead_id: one for one in varied
        }

    def without(leads: list[Lead]) -> int:
        return sum(len(packed.pack_text(_lead_text(lead))) for lead in leads)

    def stored(leads: list[Lead]) -> int:
        return sum(sizes[lead.lead_id] for lead in leads)

    # The first dictionary (trained on the alike ones, or on the newest stored then) packed
    # the full ones little or larger; judged so, another was trained on them: the last
    # thousand pack in a small part of their bytes alone, and all of them in fewer.
    assert kinds.count("leads") >= 2
    last = varied[TRAIN_SAMPLES:]
    assert stored(last) < 0.5 * without(last)
    assert stored(varied) < without(varied)


def test_a_dictionary_is_judged_by_the_rows_it_packs_after_those_it_was_trained_on() -> None:
    alike = [_lead_text(ALIKE["sparse"](n)) for n in range(TRAIN_SAMPLES)]
    varied = [_lead_text(a_lead(n)) for n in range(TRAIN_SAMPLES)]
    trained_on_alike = packed.Dictionary(1, packed.train(alike) or b"", unjudged=len(alike))
    trained_on_varied = packed.Dictionary(2, packed.train(varied[:500]) or b"")
    for text in alike:  # the batch it was trained on: packed, not judged
        trained_on_alike.compress(text)
    assert not trained_on_alike.poor
    for text in varied[500:]:
        trained_on_alike.compress(text)
        trained_on_varied.compress(text)
    assert trained_on_alike.poor
    assert not trained_on_varied.poor
    # Judged by what it packs, read back the same.
    frame = trained_on_alike.compress(varied[-1])
    assert trained_on_alike.decompress(frame[5:]) == varied[-1]


def test_a_process_looks_for_a_better_dictionary_than_a_poor_one_a_few_times_at_most(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Were none better and the poor one still better than none (data a dictionary helps
    # little), each look would cost a training: a process looks RETRAINS times, a thousand
    # rows apart, and no more.
    looks = []

    def keep_the_poor_one(*args: Any) -> packed.Dictionary:
        poor: packed.Dictionary = args[4]  # (connection, kind, samples, now, poor, ...)
        looks.append(poor.dictionary_id)
        return poor

    ticks = itertools.count()
    varied = [a_lead(n) for n in range(5 * TRAIN_SAMPLES)]
    with Store(database_url, clock=lambda: T0 + timedelta(seconds=next(ticks))) as store:
        store.save_leads([ALIKE["sparse"](n) for n in range(TRAIN_SAMPLES + 10)])
        monkeypatch.setattr(store._dictionaries, "_instead_of_poor", keep_the_poor_one)
        saved = []
        for start in range(0, len(varied), 100):
            store.save_leads(varied[start : start + 100])
            saved.append((start + 100, len(looks)))
    assert looks == [1] * RETRAINS
    # The first look once a thousand rows were saved after the poor one was chosen.
    assert dict(saved)[TRAIN_SAMPLES - 100] == 0
    assert dict(saved)[TRAIN_SAMPLES] == 1


def test_rows_a_poor_dictionary_packs_larger_are_packed_without_one_when_none_is_better(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticks = itertools.count()
    varied = [a_lead(n) for n in range(2 * TRAIN_SAMPLES)]
    with Store(database_url, clock=lambda: T0 + timedelta(seconds=next(ticks))) as store:
        store.save_leads([ALIKE["sparse"](n) for n in range(TRAIN_SAMPLES + 10)])
        # Nothing trains another (as if zstd found nothing in the newest rows).
        monkeypatch.setattr(packed, "train", lambda samples, **options: None)
        for start in range(0, len(varied), 50):
            store.save_leads(varied[start : start + 50])
        sizes = _packed_sizes(store)
        formats = {lead.lead_id: sizes[lead.lead_id] for lead in varied}
        with store.engine.connect() as connection:
            query = sa.select(tables.leads.c.lead_id, tables.leads.c.packed)
            formats = {row.lead_id: bytes(row.packed)[0] for row in connection.execute(query)}
        assert dictionary_kinds(store) == ["leads"]  # on the open store: a closed one leaks
    assert {formats[lead.lead_id] for lead in varied[: TRAIN_SAMPLES // 2]} == {3}
    assert {formats[lead.lead_id] for lead in varied[-TRAIN_SAMPLES // 2 :]} == {2}
    later = varied[-TRAIN_SAMPLES // 2 :]
    assert sum(sizes[lead.lead_id] for lead in later) == sum(
        len(packed.pack_text(_lead_text(lead))) for lead in later
    )
    with Store(database_url, clock=lambda: T0) as reader:
        assert reader.leads([lead.lead_id for lead in varied]) == {
            one.lead_id: one for one in varied
        }


def test_a_store_downgraded_after_a_retrain_and_upgraded_again_reads_every_lead(
    database_url: str,
) -> None:
    # Leads packed with the poor dictionary and with the one trained to replace it: the
    # downgrade unpacks both, the upgrade and the next process pack and read them again.
    ticks = itertools.count()
    first = [ALIKE["sparse"](n) for n in range(TRAIN_SAMPLES + 10)]
    varied = [a_lead(n) for n in range(2 * TRAIN_SAMPLES)]
    with Store(database_url, clock=lambda: T0 + timedelta(seconds=next(ticks))) as store:
        store.save_leads(first)
        for start in range(0, len(varied), 50):
            store.save_leads(varied[start : start + 50])
        assert dictionary_kinds(store).count("leads") >= 2
    engine = sa.create_engine(database_url)
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection=connection), "0016_expected_row_stamps")
        assert not sa.inspect(connection).has_table("dictionaries")
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection=connection), "head")
    engine.dispose()
    given = {lead.lead_id: lead for lead in [*first, *varied]}
    with Store(database_url, clock=lambda: T0 + timedelta(seconds=next(ticks))) as store:
        assert store.leads(list(given)) == given
        store.save_leads(varied[:TRAIN_SAMPLES])  # a dictionary again, from the stored rows
        assert store.leads(list(given)) == given
        assert dictionary_kinds(store) == ["leads"]


def test_threads_sharing_a_store_look_for_a_better_dictionary_a_few_times_at_most(
    database_url: str,
) -> None:
    # The service runs jobs in threads on one Store: saves that find the poor dictionary at
    # once must not each look (a training each), only RETRAINS of them in all.
    ticks = itertools.count()
    lock = threading.Lock()

    def clock() -> datetime:
        with lock:
            return T0 + timedelta(seconds=next(ticks))

    varied = [a_lead(n) for n in range(4 * TRAIN_SAMPLES)]
    with Store(database_url, clock=clock) as store:
        store.save_leads([ALIKE["sparse"](n) for n in range(TRAIN_SAMPLES + 10)])
        with ThreadPoolExecutor(8) as pool:
            saves = range(0, len(varied), 50)
            list(pool.map(lambda start: store.save_leads(varied[start : start + 50]), saves))
        assert 1 < dictionary_kinds(store).count("leads") <= 1 + RETRAINS
        given = {lead.lead_id: lead for lead in varied}
        assert store.leads(list(given)) == given
