"""The handoff's table (`Store.handoffs`): each lead's handoff, from pending to its outcome.

pending  about to be created; a run killed now creates it again by the same key (the lead
         id), which finds the record the cut-off call made: never two. A lead no longer
         due by then (its stage moved back, nobody holds the person) is not sent: its row
         goes (`save`'s `withdrawn`), as if its handoff had never begun, unless the cut-off
         create landed: then it is created
created  the CRM holds it, with an owner, since `handed_off_at`
matched  the CRM already held the person (a lead or contact with the email): nothing made
failed   the CRM refused it (`problem`: its reason); tried again when the lead changes
blocked  it cannot be handed off (`problem`: no company, no owner); the same
deleted  sales deleted the record it got (created or matched): sales see the lead no more, so
         it counts in no figure of handed-off leads; handed off again, to a new record, by
         the first run that finds it due (see `HandoffStep`)

A handed-off lead's `responded_at` is when it was first worked there (see `mark_responded`);
the owners' names, where the CRM gave them, are kept beside (`names`, `save_names`), with the
owners it was asked about and could not name (`known`; see `leadsync.sync.owner_names`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RowMapping

from leadsync.sync import tables as t
from leadsync.sync.database import retry_transient, writing
from leadsync.sync.sla.clocks import ClockChanges
from leadsync.sync.sla.ledger import save_clock_changes
from leadsync.sync.sql import chunks, excluded, insert_for, upsert

PENDING = "pending"
CREATED = "created"
MATCHED = "matched"
FAILED = "failed"
BLOCKED = "blocked"
DELETED = "deleted"
# Sales can see the lead: what the acceptance clock and the speed-to-lead figures start from.
HANDED_OFF = (CREATED, MATCHED)


@dataclass(frozen=True, slots=True)
class Handoff:
    lead_id: str
    crm: str
    status: str
    eligible_at: datetime
    run_id: str
    record_id: str | None = None
    record_object: str | None = None
    owner: str | None = None
    rule: str = ""
    problem: str = ""
    handed_off_at: datetime | None = None
    linked_at: datetime | None = None
    responded_at: datetime | None = None

    @property
    def handed_off(self) -> bool:
        return self.status in HANDED_OFF

    @property
    def own_record(self) -> bool:
        """Whether the record sales got is a lead of its own (created, or an open lead
        matched), not a person of another kind (a contact): its changes are the lead's."""
        return self.record_object in (None, "Lead")


@dataclass(frozen=True, slots=True)
class OwnerLoad:
    """An owner's handoffs so far (round-robin picks the fewest) and those still open (not yet
    accepted: at the handoff stage), which `capacity` bounds."""

    total: int = 0
    open: int = 0


class HandoffLedger:
    """The handoffs table of one store."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @retry_transient
    def of(self, lead_ids: Sequence[str]) -> dict[str, Handoff]:
        found: dict[str, Handoff] = {}
        with self._engine.connect() as connection:
            for chunk in chunks(lead_ids):
                rows = connection.execute(
                    sa.select(t.handoffs).where(t.handoffs.c.lead_id.in_(chunk))
                ).mappings()
                found.update((row["lead_id"], _handoff(row)) for row in rows)
        return found

    @retry_transient
    def unfinished(self) -> list[str]:
        """The leads whose handoff was cut off (pending), whose link back is not written, or
        whose record the store holds deleted: the next run takes them up again, changed or
        not. (A record created and deleted before any pull brought it live is linked to no
        lead: its deletion alone would bring nobody to the merge.)"""
        h, snapshots, related = t.handoffs, t.snapshots, t.related
        deleted = sa.or_(
            sa.exists().where(
                snapshots.c.crm == h.c.crm,
                snapshots.c.record_id == h.c.record_id,
                snapshots.c.deleted.is_(True),
            ),
            sa.exists().where(
                related.c.crm == h.c.crm,
                related.c.record_id == h.c.record_id,
                related.c.deleted.is_(True),
            ),
        )
        query = sa.select(h.c.lead_id).where(
            (h.c.status == PENDING)
            | ((h.c.status == CREATED) & h.c.linked_at.is_(None))
            | (h.c.status.in_([CREATED, MATCHED]) & deleted)
        )
        with self._engine.connect() as connection:
            return sorted(connection.execute(query).scalars())

    @retry_transient
    def save(
        self,
        handoffs: Sequence[Handoff],
        *,
        clocks: Sequence[ClockChanges] = (),
        now: datetime | None = None,
        withdrawn: Sequence[str] = (),
    ) -> None:
        """Record these handoffs (replacing each lead's earlier one) and the SLA clocks they
        start, in one transaction: a handoff is never recorded without its clocks. The
        pending handoffs of the `withdrawn` leads go: a lead not due when its cut-off handoff
        was taken up again is one never handed off (no row), and its owner's load is freed."""
        with writing(self._engine) as connection:
            _save_rows(connection, [_row(h) for h in handoffs])
            _withdraw(connection, withdrawn)
            if clocks:
                run_id = handoffs[0].run_id if handoffs else ""
                save_clock_changes(connection, clocks, run_id=run_id, now=now or datetime.now(UTC))

    @retry_transient
    def loads(self, owners: Sequence[str], *, open_stage: str) -> dict[str, OwnerLoad]:
        """Owner -> handoffs to them so far, and those whose lead is still at `open_stage`."""
        if not owners:
            return {}
        handoffs, leads = t.handoffs, t.leads
        still_open = sa.func.sum(sa.case((leads.c.stage == open_stage, 1), else_=0))
        query = (
            sa.select(handoffs.c.owner, sa.func.count(), still_open)
            .select_from(handoffs.outerjoin(leads, leads.c.lead_id == handoffs.c.lead_id))
            .where(
                handoffs.c.owner.in_(list(owners)),
                handoffs.c.status.in_([PENDING, CREATED]),
            )
            .group_by(handoffs.c.owner)
        )
        with self._engine.connect() as connection:
            return {
                str(owner): OwnerLoad(int(total), int(opened or 0))
                for owner, total, opened in connection.execute(query)
            }

    @retry_transient
    def mark_responded(self, responses: Mapping[str, datetime]) -> None:
        """Lead id -> when it was first worked after its handoff. A time once recorded stays:
        a later sync sees later work, not the first."""
        if not responses:
            return
        with writing(self._engine) as connection:
            for lead_id, at in sorted(responses.items()):
                connection.execute(
                    sa.update(t.handoffs)
                    .where(t.handoffs.c.lead_id == lead_id, t.handoffs.c.responded_at.is_(None))
                    .values(responded_at=at)
                )

    @retry_transient
    def names(self, crm: str | None = None) -> dict[str, str]:
        """Owner id -> name, of the owners (of `crm`, else of any) whose name it knows (not
        those the CRM was asked and could not name)."""
        query = sa.select(t.owner_names.c.owner_id, t.owner_names.c.name).where(
            t.owner_names.c.name != ""
        )
        if crm is not None:
            query = query.where(t.owner_names.c.crm == crm)
        with self._engine.connect() as connection:
            return {str(owner): str(name) for owner, name in connection.execute(query)}

    @retry_transient
    def known(self, crm: str, *, asked_since: datetime) -> set[str]:
        """The owners of `crm` not to ask now: those it named, and those it was asked since
        `asked_since` and could not name."""
        names = t.owner_names
        query = sa.select(names.c.owner_id).where(
            names.c.crm == crm, (names.c.name != "") | (names.c.seen_at >= asked_since)
        )
        with self._engine.connect() as connection:
            return {str(owner) for owner in connection.execute(query).scalars()}

    @retry_transient
    def save_names(
        self, crm: str, names: Mapping[str, str], *, at: datetime, asked: Sequence[str] = ()
    ) -> None:
        """Keep the names `crm` gave; the owners among `asked` it did not name (a user
        deleted) are kept without one, as asked `at` (see `known`)."""
        unnamed = {owner: "" for owner in asked if owner not in names}
        rows = [
            {"crm": crm, "owner_id": owner, "name": name, "seen_at": at}
            for owner, name in sorted({**unnamed, **names}.items())
        ]
        if rows:
            with writing(self._engine) as connection:
                upsert(connection, t.owner_names, rows)

    @retry_transient
    def all(self) -> list[Handoff]:
        """Every handoff (the reports' speed to lead), oldest eligible first."""
        with self._engine.connect() as connection:
            rows = connection.execute(
                sa.select(t.handoffs).order_by(t.handoffs.c.eligible_at, t.handoffs.c.lead_id)
            ).mappings()
            return [_handoff(row) for row in rows]


def _save_rows(connection: Connection, rows: Sequence[dict[str, object]]) -> None:
    """Upsert handoff rows. A response time once recorded stays: a handoff read before
    `mark_responded` and saved after it (its link written, say) does not clear it."""
    if not rows:
        return
    insert = insert_for(connection, t.handoffs)
    others = [c.name for c in t.handoffs.c if c.name not in ("lead_id", "responded_at")]
    kept = sa.func.coalesce(t.handoffs.c.responded_at, insert.excluded["responded_at"])
    connection.execute(
        insert.on_conflict_do_update(
            index_elements=["lead_id"],
            set_={**excluded(insert, t.handoffs, others), "responded_at": kept},
        ),
        list(rows),
    )


def _withdraw(connection: Connection, lead_ids: Sequence[str]) -> None:
    """Delete the handoffs of `lead_ids` that are still pending (any other came after)."""
    for chunk in chunks(lead_ids):
        connection.execute(
            sa.delete(t.handoffs).where(
                t.handoffs.c.lead_id.in_(chunk), t.handoffs.c.status == PENDING
            )
        )


def _handoff(row: RowMapping) -> Handoff:
    return Handoff(
        lead_id=row["lead_id"],
        crm=row["crm"],
        status=row["status"],
        eligible_at=row["eligible_at"],
        run_id=row["run_id"],
        record_id=row["record_id"],
        record_object=row["record_object"],
        owner=row["owner"],
        rule=row["rule"],
        problem=row["problem"],
        handed_off_at=row["handed_off_at"],
        linked_at=row["linked_at"],
        responded_at=row["responded_at"],
    )


def _row(handoff: Handoff) -> dict[str, object]:
    return {
        "lead_id": handoff.lead_id,
        "crm": handoff.crm,
        "status": handoff.status,
        "record_id": handoff.record_id,
        "record_object": handoff.record_object,
        "owner": handoff.owner,
        "rule": handoff.rule,
        "problem": handoff.problem,
        "eligible_at": handoff.eligible_at,
        "handed_off_at": handoff.handed_off_at,
        "linked_at": handoff.linked_at,
        "responded_at": handoff.responded_at,
        "run_id": handoff.run_id,
    }
