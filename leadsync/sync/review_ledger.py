"""The review queue as the store keeps it (`Store.reviews`): matches too ambiguous to make,
each waiting for a person with the leads the record could belong to.

    add, resolve, items     queue one item (or reopen it), close it with what was decided,
                            the queue (open items, or all)

Within a batch's transaction (`Store.save_decisions`): `upsert_reviews`, `close_reviews`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RowMapping

from leadsync.connectors.base import utc
from leadsync.sync import tables as t
from leadsync.sync.database import retry_transient, writing
from leadsync.sync.sql import chunks, excluded, insert_for, last_by_key

__all__ = ["IGNORED", "ReviewItem", "ReviewLedger", "close_reviews", "upsert_reviews"]

# The resolution of a review item a person chose to leave as it is (`leadsync review ... ignore`).
IGNORED = "ignored"


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """An ambiguous match waiting for a person: the leads the record could belong to."""

    crm: str
    record_id: str
    candidates: tuple[str, ...]
    reason: str
    run_id: str
    at: datetime
    resolved_at: datetime | None = None
    resolution: str | None = None


class ReviewLedger:
    """The review table. Each method is one short transaction, retried after transient
    errors; `clock` stamps when an item was queued or resolved."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime]) -> None:
        self._engine = engine
        self._clock = clock

    def _now(self) -> datetime:
        return utc(self._clock())

    @retry_transient
    def add(
        self, crm: str, record_id: str, candidates: Sequence[str], reason: str, *, run_id: str
    ) -> None:
        """Queue an ambiguous match for a person. One item per record: adding it again while
        open updates its candidates and reason; adding it after resolution reopens it."""
        with writing(self._engine) as connection:
            upsert_reviews(connection, [(crm, record_id, candidates, reason)], run_id, self._now())

    @retry_transient
    def resolve(self, crm: str, record_id: str, *, resolution: str) -> bool:
        """Close an open review item, saying what was decided; False when none was open."""
        with writing(self._engine) as connection:
            done = connection.execute(
                t.review.update()
                .where(
                    t.review.c.crm == crm,
                    t.review.c.record_id == record_id,
                    t.review.c.resolved_at.is_(None),
                )
                .values(resolved_at=self._now(), resolution=resolution)
            )
        return bool(done.rowcount)

    @retry_transient
    def items(self, *, open_only: bool = True) -> list[ReviewItem]:
        """Review items, oldest first; with `open_only`, those still waiting."""
        query = sa.select(t.review).order_by(t.review.c.at, t.review.c.crm, t.review.c.record_id)
        if open_only:
            query = query.where(t.review.c.resolved_at.is_(None))
        with self._engine.connect() as connection:
            return [_review(row) for row in connection.execute(query).mappings()]


def upsert_reviews(
    connection: Connection,
    reviews: Sequence[tuple[str, str, Sequence[str], str]],
    run_id: str,
    now: datetime,
) -> None:
    rows = last_by_key(
        (
            {
                "crm": crm,
                "record_id": record_id,
                "candidates": list(candidates),
                "reason": reason,
                "run_id": run_id,
                "at": now,
                "resolved_at": None,
                "resolution": None,
            }
            for crm, record_id, candidates, reason in reviews
        ),
        ("crm", "record_id"),
    )
    if not rows:
        return
    rows = _not_ignored(connection, _not_decided_since(connection, rows, run_id))
    if not rows:
        return
    insert = insert_for(connection, t.review)
    still_open = t.review.c.resolved_at.is_(None)
    update = {
        **excluded(insert, t.review, ("candidates", "reason", "run_id")),
        # An open item keeps the time it was first queued; a resolved one reopens now.
        "at": sa.case((still_open, t.review.c.at), else_=insert.excluded.at),
        "resolved_at": None,
        "resolution": None,
    }
    statement = insert.on_conflict_do_update(
        index_elements=[t.review.c.crm, t.review.c.record_id], set_=update
    )
    connection.execute(statement, rows)


def _not_decided_since(
    connection: Connection, rows: list[dict[str, Any]], run_id: str
) -> list[dict[str, Any]]:
    """The review rows of records no person resolved while run `run_id` was matching them: a
    run that matched before the decision must not undo it (the next run matches again)."""
    started = connection.execute(
        sa.select(t.runs.c.started_at).where(t.runs.c.run_id == run_id)
    ).scalar()
    if started is None:
        return rows
    decided: set[tuple[str, str]] = set()
    for chunk in chunks([row["record_id"] for row in rows]):
        query = sa.select(t.review.c.crm, t.review.c.record_id).where(
            t.review.c.record_id.in_(chunk), t.review.c.resolved_at >= started
        )
        decided.update((found.crm, found.record_id) for found in connection.execute(query))
    return [row for row in rows if (row["crm"], row["record_id"]) not in decided]


def _not_ignored(connection: Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The review rows that are not the very conflict a person ignored: an ignored item
    stays closed while matching finds the same candidates for the same reason (a Contact
    is matched again at every merge of its person), and reopens once either changes."""
    ignored: dict[tuple[str, str], tuple[list[str], str]] = {}
    for chunk in chunks([row["record_id"] for row in rows]):
        query = sa.select(
            t.review.c.crm, t.review.c.record_id, t.review.c.candidates, t.review.c.reason
        ).where(t.review.c.record_id.in_(chunk), t.review.c.resolution == IGNORED)
        for found in connection.execute(query):
            ignored[(found.crm, found.record_id)] = (list(found.candidates), found.reason)
    return [
        row
        for row in rows
        if ignored.get((row["crm"], row["record_id"])) != (row["candidates"], row["reason"])
    ]


def close_reviews(
    connection: Connection, links: Sequence[tuple[str, str, str, str]], now: datetime
) -> None:
    """A record in review that matching now links without doubt: its cause went away (a
    duplicate deleted, an email corrected), so its item closes itself, saying how."""
    if not links:
        return
    # The open queue is short, the links of a batch may be thousands: read the one.
    still_open = t.review.c.resolved_at.is_(None)
    query = sa.select(t.review.c.crm, t.review.c.record_id).where(still_open)
    waiting = {(row.crm, row.record_id) for row in connection.execute(query)}
    for crm, record_id, lead_id, kind in links:
        if (crm, record_id) not in waiting:
            continue
        connection.execute(
            t.review.update()
            .where(
                t.review.c.crm == crm,
                t.review.c.record_id == record_id,
                t.review.c.resolved_at.is_(None),
            )
            .values(resolved_at=now, resolution=f"closed itself: matched {lead_id} by {kind}")
        )


def _review(row: RowMapping) -> ReviewItem:
    return ReviewItem(
        crm=row["crm"],
        record_id=row["record_id"],
        candidates=tuple(row["candidates"]),
        reason=row["reason"],
        run_id=row["run_id"],
        at=row["at"],
        resolved_at=row["resolved_at"],
        resolution=row["resolution"],
    )
