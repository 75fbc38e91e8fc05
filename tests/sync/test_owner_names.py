"""Owners by name wherever leadsync shows one, over the sandbox: the owner of an SLA clock that
leadsync never handed a lead to (an existing Salesforce lead's owner) is named after the next
writing sync, as the owners of its handoffs are; an owner Salesforce cannot name (a user
deleted) is asked once, and again only a week later; a run with nothing new asks nothing; a
Salesforce that does not answer fails no run; `explain` shows the names beside the ids."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from leadsync.cli import main
from leadsync.config import Config
from leadsync.errors import ConnectorError
from leadsync.runtime import open_runtime
from leadsync.sandbox import Sandbox
from leadsync.sandbox.ids import salesforce_id
from leadsync.sandbox.schema import SANDBOX_OWNERS
from leadsync.sync.engine import SyncEngine
from leadsync.sync.handoff_ledger import CREATED
from leadsync.sync.run_summary import RunSummary
from tests.sync.test_handoff import SETTINGS, config_for
from tests.sync.test_handoff_response import HOUR, NAMES, T0, Moment

# A user id the org does not know (deleted): Salesforce names nobody by it.
GONE_USER = salesforce_id("005", 90)


def _run(
    config: Config,
    moment: Moment,
    asked: list[list[str]],
    *,
    away: bool = False,
    write: bool = True,
    calls: list[int] | None = None,
    sandbox: Sandbox | None = None,
) -> RunSummary:
    """One sync (a plan unless `write`) on `moment`'s clock; each owner names query it makes
    is added to `asked`, and with `sandbox`, the requests it took to `calls`; `away`:
    Salesforce answers none of them."""
    with open_runtime(config) as runtime:
        connectors: dict[str, Any] = dict(runtime.connectors)
        target = connectors["salesforce"]
        names = target.owner_names

        def spy(owner_ids: Any) -> dict[str, str]:
            asked.append(sorted(owner_ids))
            if away:
                raise ConnectorError("salesforce is away", crm="salesforce", status=503)
            before = _queries(sandbox)
            try:
                return dict(names(owner_ids))
            finally:
                if calls is not None:
                    calls.append(_queries(sandbox) - before)

        target.owner_names = spy
        engine = SyncEngine(
            runtime.store,
            connectors,
            runtime.field_map,
            runtime.definition,
            clock=lambda: moment.at,
        )
        return engine.run(write=write)


def _queries(sandbox: Sandbox | None) -> int:
    """The Salesforce queries the sandbox has answered so far."""
    if sandbox is None:
        return 0
    return int(sandbox.stats.as_dict()["endpoints"].get("salesforce.query", 0))


def _known_names(config: Config) -> dict[str, str]:
    with open_runtime(config, connect=False) as runtime:
        return runtime.store.handoffs.names()


def _unnamed_user(config: Config) -> str:
    """A sandbox user no lead was handed off to: the store cannot name them yet."""
    names = _known_names(config)
    unnamed = [user_id for _, user_id, _ in SANDBOX_OWNERS if user_id not in names]
    assert unnamed, "every sandbox user got a handoff: the seed changed"
    return unnamed[0]


def _accepted_by(sandbox: Sandbox, config: Config, owner: str) -> tuple[str, str]:
    """An existing Salesforce lead at MQL, which leadsync never handed off, given to `owner`
    and worked ("Working - Contacted"): the next sync makes it an SAL and starts its response
    clock, owned by `owner`. Returns the lead's id and its Salesforce record's."""
    with open_runtime(config, connect=False) as runtime:
        store = runtime.store
        handed = {h.lead_id for h in store.handoffs.all()}
        leads = store.leads(store.lead_ids_after(None, limit=100_000))
        for lead_id, lead in sorted(leads.items()):
            if lead.stage != "mql" or lead_id in handed:
                continue
            records = store.records_of([lead_id]).get(lead_id, [])
            live = [r for r in records if r.crm == "salesforce" and not r.deleted]
            if live:
                sandbox.salesforce.system_update(
                    "Lead", live[0].record_id, {"OwnerId": owner, "Status": "Working - Contacted"}
                )
                return lead_id, live[0].record_id
    raise AssertionError("no Salesforce lead at MQL leadsync did not hand off: the seed changed")


def _synced_then_accepted(
    sandbox: Sandbox,
    config: Config,
    moment: Moment,
    asked: list[list[str]],
    owner: str | None = None,
) -> tuple[str, str, str]:
    """A first sync, then (an hour on) an existing MQL given to `owner` (else to a user the
    store cannot name yet) and worked, an hour before the next sync. Returns the owner, the
    lead's id and its Salesforce record's."""
    _run(config, moment, asked)
    owner = owner or _unnamed_user(config)
    moment.at += HOUR
    lead_id, record_id = _accepted_by(sandbox, config, owner)
    moment.at += HOUR
    return owner, lead_id, record_id


def _json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> Any:
    capsys.readouterr()
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def _clock_of(config: Config, lead_id: str) -> Any:
    with open_runtime(config, connect=False) as runtime:
        (clock,) = [
            c for c in runtime.store.sla.clocks(lead_ids=[lead_id]) if c.rule == "sal_response"
        ]
    return clock


def test_the_owner_of_a_clock_leadsync_never_handed_a_lead_to_is_named_after_a_sync(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    moment = Moment(T0)
    asked: list[list[str]] = []
    with Sandbox(SETTINGS, clock=moment.seconds) as sandbox:
        config = config_for(sandbox, tmp_path)
        owner, lead_id, _ = _synced_then_accepted(sandbox, config, moment, asked)
        _run(config, moment, asked)
    assert _clock_of(config, lead_id).owner == owner
    assert _known_names(config)[owner] == NAMES[owner]
    path = str(config.path)
    sla = _json(["sla", "--json", "--config", path], capsys)
    (line,) = [c for c in sla["clocks"] if (c["lead_id"], c["rule"]) == (lead_id, "sal_response")]
    assert (line["owner"], line["owner_name"]) == (owner, NAMES[owner])
    report = _json(["report", "--json", "--config", path], capsys)
    rows = [row for row in report["sla"]["by_owner"] if row["owner"] == owner]
    assert rows
    assert all(row["name"] == NAMES[owner] for row in rows)
    capsys.readouterr()
    assert main(["sla", "--config", path]) == 0
    text = capsys.readouterr().out
    assert NAMES[owner][:19] in text
    assert owner not in text


def test_an_owner_salesforce_cannot_name_is_asked_once_and_again_a_week_later(
    tmp_path: Path,
) -> None:
    moment = Moment(T0)
    asked: list[list[str]] = []
    with Sandbox(SETTINGS, clock=moment.seconds) as sandbox:
        config = config_for(sandbox, tmp_path)
        _, lead_id, _ = _synced_then_accepted(sandbox, config, moment, asked, GONE_USER)
        asked.clear()
        _run(config, moment, asked)
        assert _clock_of(config, lead_id).owner == GONE_USER
        assert [ids for ids in asked if GONE_USER in ids] == [[GONE_USER]]
        assert GONE_USER not in _known_names(config)  # asked, not named: no empty name shown
        # The next run, nothing changed in either CRM: no owner asked, no query made at all.
        moment.at += HOUR
        asked.clear()
        sandbox.stats.clear()
        _run(config, moment, asked)
        assert asked == []
        assert "salesforce.query" not in sandbox.stats.as_dict()["endpoints"]
        # Six days later, still not; eight days later, asked again (once).
        moment.at += timedelta(days=6)
        _run(config, moment, asked)
        assert asked == []
        moment.at += timedelta(days=2)
        _run(config, moment, asked)
        assert asked == [[GONE_USER]]


def test_a_salesforce_that_does_not_answer_for_names_fails_no_run_and_is_asked_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    moment = Moment(T0)
    asked: list[list[str]] = []
    with Sandbox(SETTINGS, clock=moment.seconds) as sandbox:
        config = config_for(sandbox, tmp_path)
        owner, _, _ = _synced_then_accepted(sandbox, config, moment, asked)
        asked.clear()
        with caplog.at_level(logging.WARNING):
            summary = _run(config, moment, asked, away=True)
        assert summary.crms["salesforce"].written > 0  # the run went on: it wrote the SAL
        assert [ids for ids in asked if owner in ids] == [[owner]]
        assert owner not in _known_names(config)
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("owner names not read" in message for message in warnings)
        assert not any(name in message for message in warnings for name in NAMES.values())
        moment.at += HOUR
        asked.clear()
        _run(config, moment, asked)
        assert [ids for ids in asked if owner in ids] == [[owner]]
    assert _known_names(config)[owner] == NAMES[owner]


def test_explain_shows_the_owners_name_beside_the_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    moment = Moment(T0)
    asked: list[list[str]] = []
    with Sandbox(SETTINGS, clock=moment.seconds) as sandbox:
        config = config_for(sandbox, tmp_path)
        owner, _, accepted = _synced_then_accepted(sandbox, config, moment, asked)
        _run(config, moment, asked)
        with open_runtime(config, connect=False) as runtime:
            handoff = next(
                h for h in runtime.store.handoffs.all() if h.status == CREATED and h.owner
            )
    assert handoff.owner is not None
    assert handoff.record_id is not None
    path = str(config.path)
    body = _json(["explain", handoff.record_id, "--json", "--config", path], capsys)
    (lead,) = body["leads"]
    named = NAMES[handoff.owner]
    assert (lead["handoff"]["owner"], lead["handoff"]["owner_name"]) == (handoff.owner, named)
    assert f"owner {named} ({handoff.owner})" in lead["handoff"]["summary"]
    assert lead["sla_clocks"]
    assert all(
        (clock["owner"], clock["owner_name"]) == (handoff.owner, named)
        for clock in lead["sla_clocks"]
    )
    capsys.readouterr()
    assert main(["explain", handoff.record_id, "--config", path]) == 0
    text = capsys.readouterr().out
    assert f"owner {named} ({handoff.owner})" in text
    # The clocks of a lead never handed off: its owner, named since the last sync.
    body = _json(["explain", accepted, "--json", "--config", path], capsys)
    (lead,) = body["leads"]
    (clock,) = [c for c in lead["sla_clocks"] if c["rule"] == "sal_response"]
    assert (clock["owner"], clock["owner_name"]) == (owner, NAMES[owner])
    capsys.readouterr()
    assert main(["explain", accepted, "--config", path]) == 0
    assert f"owner {NAMES[owner]} ({owner})" in capsys.readouterr().out


@pytest.mark.parametrize(
    "owner",
    [None, GONE_USER],
    ids=["a user the store cannot name", "a user deleted"],
)
def test_a_plan_counts_the_calls_naming_the_clocks_owners_that_the_sync_makes(
    tmp_path: Path, owner: str | None
) -> None:
    moment = Moment(T0)
    asked: list[list[str]] = []
    with Sandbox(SETTINGS, clock=moment.seconds) as sandbox:
        config = config_for(sandbox, tmp_path)
        owner, _, _ = _synced_then_accepted(sandbox, config, moment, asked, owner)
        asked.clear()
        planned = _run(config, moment, asked, write=False)
        assert asked == []  # a plan asks no name
        assert planned.plan is not None
        assert planned.handoff_plan is not None
        # The sync hands nothing new off: each name it asks is a clock owner's.
        assert planned.handoff_plan.target_calls.get("owner names", 0) == 0
        calls: list[int] = []
        _run(config, moment, asked, calls=calls, sandbox=sandbox)
    assert [ids for ids in asked if owner in ids] == [[owner]]
    assert planned.plan.owner_name_calls == {"salesforce": sum(calls)}
    # The users' query alone: an id of a user, deleted or not, is no queue's.
    assert sum(calls) == 1
    assert "salesforce: about 1 call(s) naming the owners of SLA clocks" in planned.plan.lines()
    assert planned.as_dict()["owner_name_calls"] == {"salesforce": 1}
