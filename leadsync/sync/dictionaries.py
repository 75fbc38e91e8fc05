"""The dictionaries a store packs its blobs with (`sync.packed`), chosen per kind of blob.

A kind (a CRM's snapshots, the leads, a CRM's audit log or echo fingerprints: the store names
them) is packed with the newest dictionary stored for it; the first is trained once the kind
has TRAIN_SAMPLES rows (or a save of as many trains one on its own rows), and one that proves
poor is replaced, or given up, a few times a process at most. Every process of a store packs
with the newest of a kind; each remembers what it packs with (`keep`) only once the
transaction that chose it committed.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from leadsync.sync import packed
from leadsync.sync import tables as t

log = logging.getLogger("leadsync.sync")

__all__ = ["RETRAINS", "TRAIN_SAMPLES", "PackingDictionaries", "stored_dictionary"]

# A kind is packed with a dictionary (`sync.packed`) once it has this many rows stored to train
# one on.
TRAIN_SAMPLES = 1_000
# A dictionary trained to replace a poor one is judged on one sample in this many, held out of
# its training. A process looks for one at most RETRAINS times a kind: data no dictionary packs
# well costs that many trainings, no more.
_HELD_OUT_EVERY = 8
RETRAINS = 2


class PackingDictionaries:
    """Which dictionary each kind is packed with, in this process; safe to share between
    threads (a Store's are)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        # The dictionaries packed blobs name, and each kind's to pack with.
        self.codebook = packed.Codebook(self._load)
        self._packing: dict[str, packed.Dictionary] = {}
        self._untrainable: set[str] = set()
        # Per kind: the rows saved since its dictionary was last chosen, and how many times
        # this process looked for a better one than a poor dictionary (`_instead_of_poor`),
        # each look taken under the lock (threads share a Store). A look in a transaction
        # rolled back (a transient error) is spent all the same: the next comes 1,000 rows on.
        self._saved_since: Counter[str] = Counter()
        self._retrained: Counter[str] = Counter()
        self._looking = threading.Lock()

    def keep(self, kind: str, dictionary: packed.Dictionary | None) -> None:
        """Keep the dictionary a committed transaction packed `kind` with: one trained in a
        transaction rolled back is not stored, and its id may be another's later."""
        if dictionary is not None:
            self.codebook.add(dictionary)
            if self._packing.get(kind) is not dictionary:
                self._saved_since[kind] = 0
            self._packing[kind] = dictionary

    def choose(
        self,
        connection: Connection,
        kind: str,
        samples: sa.Select[Any],
        now: datetime,
        batch: Callable[[], Iterable[bytes]] | None = None,
        batch_size: int = 0,
    ) -> packed.Dictionary | None:
        """The dictionary to pack `kind` with: the newest stored, or one trained now on
        TRAIN_SAMPLES of the blobs `samples` selects (newest first) once there are as many
        (none before: the first are packed without one); another once it proves poor
        (`_instead_of_poor`). A save of `batch_size` rows, at least TRAIN_SAMPLES,
        trains one on its own texts (`batch()` gives them) when none is stored: a first
        sync's first slice or page is then packed with it too, not left ~3 times larger (and
        rewritten smaller, leaving its pages part empty, when the next sync saves it again)."""
        found = self._packing.get(kind)
        with self._looking:
            self._saved_since[kind] += batch_size
            look = (
                found is not None
                and found.poor
                # Once as many rows as it trains on were saved since: the newest stored are
                # then the rows it packed poorly, not those it was trained on.
                and self._saved_since[kind] >= TRAIN_SAMPLES
                and self._retrained[kind] < RETRAINS
            )
            if look:
                self._retrained[kind] += 1
                self._saved_since[kind] = 0
        if look and found is not None:
            return self._instead_of_poor(connection, kind, samples, now, found, batch, batch_size)
        if found is not None or kind in self._untrainable:
            return found
        d = t.dictionaries
        newest = connection.execute(
            sa.select(d.c.id, d.c.data).where(d.c.kind == kind).order_by(d.c.id.desc()).limit(1)
        ).first()
        if newest is not None:
            return packed.Dictionary(newest.id, bytes(newest.data))
        if batch is not None and batch_size >= TRAIN_SAMPLES:
            data = packed.train(list(itertools.islice(batch(), TRAIN_SAMPLES)))
            if data is None:  # this batch: the stored rows may train one later
                return None
            return stored_dictionary(connection, kind, data, now, trained_on=batch_size)
        texts = self._stored_samples(connection, samples)
        if texts is None:
            return None
        data = packed.train(texts)
        if data is None:
            self._untrainable.add(kind)
            return None
        return stored_dictionary(connection, kind, data, now)

    def _instead_of_poor(
        self,
        connection: Connection,
        kind: str,
        samples: sa.Select[Any],
        now: datetime,
        poor: packed.Dictionary,
        batch: Callable[[], Iterable[bytes]] | None,
        batch_size: int,
    ) -> packed.Dictionary | None:
        """What to pack `kind` with now that its dictionary `poor` packs its rows little or no
        smaller than none: a dictionary trained on the batch (of TRAIN_SAMPLES or more) or the
        newest rows stored, if it packs an eighth of them held out of its training smaller by
        a tenth than both; else no dictionary, if none packs them smaller than `poor`; else
        `poor`. (The newest stored dictionary of a kind is the one every process packs with.)"""
        texts: list[bytes] | None
        if batch is not None and batch_size >= TRAIN_SAMPLES:
            texts, trained_on = list(itertools.islice(batch(), TRAIN_SAMPLES)), batch_size
        else:
            texts, trained_on = self._stored_samples(connection, samples), 0
        if texts is None:
            return poor
        held_out = texts[::_HELD_OUT_EVERY]
        trained = packed.train([text for n, text in enumerate(texts) if n % _HELD_OUT_EVERY])

        def packs(pack: Callable[[bytes], bytes]) -> int:
            return sum(len(pack(text)) for text in held_out)

        without, with_poor = packs(packed.pack_text), packs(poor.compress_unjudged)
        if trained is not None:
            # Judged under a stand-in id: an id's bytes are the same length whatever it is.
            candidate = packed.Dictionary(poor.dictionary_id, trained)
            if packs(candidate.compress_unjudged) < 0.9 * min(without, with_poor):
                log.info("the %s packing dictionary packed little: trained another", kind)
                return stored_dictionary(connection, kind, trained, now, trained_on=trained_on)
        if without < with_poor:
            log.info("the %s packing dictionary packed rows larger: packing without", kind)
            self._packing.pop(kind, None)
            self._untrainable.add(kind)
            return None
        return poor

    def _stored_samples(
        self, connection: Connection, samples: sa.Select[Any]
    ) -> list[bytes] | None:
        """The texts of TRAIN_SAMPLES of the blobs `samples` selects, or None while fewer are
        stored."""
        # Until a kind has TRAIN_SAMPLES stored (a small org's may never), each save asks
        # only whether the last sample needed is there: no blob is read for nothing.
        last_sample = samples.with_only_columns(sa.literal(1), maintain_column_froms=True)
        if connection.execute(last_sample.offset(TRAIN_SAMPLES - 1).limit(1)).first() is None:
            return None
        query = samples.limit(TRAIN_SAMPLES)  # the newest, as `samples` orders them
        blobs = list(connection.execute(query).scalars())
        if len(blobs) < TRAIN_SAMPLES:  # deleted meanwhile (PostgreSQL, another replica)
            return None
        return [packed.unpack_text(blob, self.codebook).encode() for blob in blobs]

    def _load(self, dictionary_id: int) -> bytes | None:
        d = t.dictionaries
        with self._engine.connect() as connection:
            data = connection.execute(
                sa.select(d.c.data).where(d.c.id == dictionary_id)
            ).scalar_one_or_none()
        return None if data is None else bytes(data)


def stored_dictionary(
    connection: Connection, kind: str, data: bytes, now: datetime, *, trained_on: int = 0
) -> packed.Dictionary:
    """Store a dictionary `kind` packs with from now on (the newest of a kind is used);
    `trained_on`: the rows of the batch it was trained on, which it packs first."""
    d = t.dictionaries
    inserted = connection.execute(
        d.insert().values(kind=kind, data=data, created_at=now).returning(d.c.id)
    ).scalar_one()
    return packed.Dictionary(inserted, data, unjudged=trained_on)
