"""Attacks on naming the owners of SLA clocks (`leadsync.sync.owner_names`) against the
sandbox's Salesforce: queues, odd ids, more than a query's 200, a Salesforce that answers 500
or times out; never a name in the logs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from leadsync.config import Config
from leadsync.connectors import salesforce as salesforce_module
from leadsync.connectors.salesforce import SalesforceConnector
from leadsync.runtime import Runtime, open_runtime
from leadsync.sandbox import RequestFault, Sandbox
from leadsync.sandbox.ids import salesforce_id
from leadsync.sandbox.schema import INBOUND_QUEUE_ID, SANDBOX_OWNERS
from leadsync.sync.owner_names import learn_names
from tests.support import set_up_sandbox_config

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
QUERY = "/services/data/v59.0/query"
NAMES = {user_id: name for _, user_id, name in SANDBOX_OWNERS}


@pytest.fixture
def config(sandbox: Sandbox, tmp_path: Path) -> Config:
    loaded: Config = set_up_sandbox_config(sandbox, tmp_path)
    return loaded


@pytest.fixture
def runtime(config: Config) -> Iterator[Runtime]:
    with open_runtime(config) as opened:
        yield opened


def _salesforce(runtime: Runtime) -> SalesforceConnector:
    connector = runtime.connectors["salesforce"]
    assert isinstance(connector, SalesforceConnector)
    return connector


@pytest.fixture
def no_waits(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every retry at once: a failing answer is tried as often, without the minute of waits."""
    connector = _salesforce(runtime)
    retry = replace(connector.connection.retry, sleep=lambda _: None)
    monkeypatch.setattr(connector, "connection", replace(connector.connection, retry=retry))


def _learn(runtime: Runtime, owners: list[str]) -> dict[str, str]:
    learn_names(runtime.store.handoffs, _salesforce(runtime), owners, now=NOW)
    return runtime.store.handoffs.names("salesforce")


def test_users_and_a_queue_among_more_than_two_hundred_unknown_owners_are_all_named(
    runtime: Runtime, sandbox: Sandbox
) -> None:
    gone_users = [salesforce_id("005", 5_000 + n) for n in range(250)]
    gone_queues = [salesforce_id("00G", 5_000 + n) for n in range(210)]
    owners = [*NAMES, INBOUND_QUEUE_ID, *gone_users, *gone_queues]
    sandbox.stats.clear()
    names = _learn(runtime, owners)
    assert {owner: names.get(owner) for owner in NAMES} == NAMES
    assert names[INBOUND_QUEUE_ID] == "Inbound Leads"
    assert not set(names) & {*gone_users, *gone_queues}
    known = runtime.store.handoffs.known("salesforce", asked_since=NOW)
    assert known >= set(owners)  # every one asked: none asked again before a week
    sandbox.stats.clear()
    _learn(runtime, owners)
    assert "salesforce.query" not in sandbox.stats.as_dict()["endpoints"]


@pytest.mark.parametrize(
    "odd", ["005' OR Name != '", "00G\\'x", "005é😀", "005 with spaces", "x" * 300]
)
def test_an_owner_id_of_odd_characters_spoils_no_other_owners_name(
    runtime: Runtime, odd: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[Any] = []
    formatted = salesforce_module.format_soql  # type: ignore[attr-defined]

    def spy(query: str, *args: Any) -> str:
        asked.extend(args[0])
        return formatted(query, *args)

    monkeypatch.setattr(salesforce_module, "format_soql", spy)
    owners = [odd, *NAMES, INBOUND_QUEUE_ID]
    names = _learn(runtime, owners)
    # Salesforce refuses an Id filter holding a value no id can be ("invalid ID field"): the
    # query of every owner with it would fail at every run.
    assert odd not in asked
    assert odd in runtime.store.handoffs.known("salesforce", asked_since=NOW)
    assert {owner: names.get(owner) for owner in NAMES} == NAMES
    assert names[INBOUND_QUEUE_ID] == "Inbound Leads"
    assert odd not in names


def _failing_names(
    runtime: Runtime, caplog: pytest.LogCaptureFixture, owners: list[str]
) -> list[str]:
    with caplog.at_level(logging.DEBUG):
        names = _learn(runtime, owners)
    assert names == {}
    logged = [record.getMessage() for record in caplog.records]
    assert not [line for line in logged for name in NAMES.values() if name in line]
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.usefixtures("no_waits")
def test_a_salesforce_that_answers_500_for_names_raises_nothing_and_logs_no_name(
    runtime: Runtime, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    _salesforce(runtime).fetch([], fields=["Id"])  # logged in before the fault
    sandbox.faults.fail_requests(RequestFault("GET", QUERY, 500))
    sandbox.faults.fail_requests(RequestFault("GET", QUERY + "/", 500))
    warnings = _failing_names(runtime, caplog, [*NAMES, INBOUND_QUEUE_ID])
    assert any("owner names not read" in line for line in warnings)
    sandbox.faults.clear_request_faults()
    # Not kept as asked in vain: the next run asks again, and learns them.
    assert _learn(runtime, list(NAMES)) == NAMES


@pytest.mark.usefixtures("no_waits")
def test_a_salesforce_that_times_out_for_names_raises_nothing_and_logs_no_name(
    runtime: Runtime, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    connector = _salesforce(runtime)
    call = connector._call

    def timing_out(description: str, operation: Any) -> Any:
        if description.startswith("name "):

            def timeout(_: Any) -> Any:
                raise requests.exceptions.ReadTimeout("read timed out")

            return call(description, timeout)
        return call(description, operation)

    monkeypatch.setattr(connector, "_call", timing_out)
    warnings = _failing_names(runtime, caplog, [*NAMES, INBOUND_QUEUE_ID])
    assert any("owner names not read" in line for line in warnings)


def test_two_hundred_long_owner_ids_keep_the_names_query_within_the_uri_limit(
    runtime: Runtime, sandbox: Sandbox
) -> None:
    # An owner field a mapping reads from a text field: ids far longer than Salesforce's 18.
    long_ids = [f"005{n:04d}" + "q" * 90 for n in range(200)]
    names = _learn(runtime, [*long_ids, *NAMES])
    assert {owner: names.get(owner) for owner in NAMES} == NAMES
