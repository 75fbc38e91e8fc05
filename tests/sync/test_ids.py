"""The ids leadsync makes for runs and leads: short, one spelling, and the UUIDs an earlier
release made still work beside them."""

# The fixtures imported from test_engine are named as the tests' parameters.
# ruff: noqa: F811

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from leadsync.cli import main
from leadsync.config import Config
from leadsync.sandbox import Sandbox
from leadsync.sync import engine as engine_module
from leadsync.sync import ids
from leadsync.sync import tables as t
from leadsync.sync.ids import ID_DIGITS, is_new_id, new_id
from leadsync.sync.run_summary import _lead_key
from leadsync.sync.runs import find_run
from leadsync.sync.store import Store
from tests.console.conftest import GRACE_PASSWORD, console_config, serve, sign_in
from tests.support import search_caught_up, twin_of_a_linked_salesforce_lead

# The engine tests' sandbox (seed 21, 150 leads a CRM) and config, as fixtures.
from tests.sync.test_engine import config, cycle, sandbox_settings  # noqa: F401


def test_a_new_id_is_twenty_lowercase_hex_digits_and_each_is_another() -> None:
    made = [new_id() for _ in range(10_000)]
    assert all(len(one) == ID_DIGITS == 20 for one in made)
    assert all(set(one) <= set("0123456789abcdef") for one in made)
    assert len(set(made)) == len(made)
    assert all(is_new_id(one) for one in made)


@pytest.mark.parametrize(
    "text",
    [
        "0x" + "a" * 18,  # int(text, 16) reads these four: they are not its spelling
        "a" * 9 + "_" + "a" * 10,
        " " + "a" * 19,
        "A" * 20,
        "a" * 19,
        "a" * 21,
        "g" * 20,
        "0f6e1c2a-5b7d-4e9a-8c3b-1d2e3f405162",  # a UUID 4, fixed: xdist workers collect one id
        "",
    ],
)
def test_only_the_one_spelling_is_a_new_id(text: str) -> None:
    assert not is_new_id(text)


def test_a_runs_counts_key_a_new_id_and_a_uuid_apart_even_when_their_numbers_are_one() -> None:
    new = "4000800000000000000a"
    old = str(uuid.UUID(int=int(new, 16)))
    assert old == "00000000-0000-4000-8000-00000000000a"  # a UUID 4's spelling
    assert _lead_key(new) != _lead_key(old)
    assert isinstance(_lead_key(new), int)
    assert isinstance(_lead_key(old), int)
    assert _lead_key(new) != _lead_key("4000800000000000000b")
    # Spellings that are not leadsync's stay strings, each its own key.
    assert _lead_key(new.upper()) == new.upper()
    assert _lead_key(old.upper()) == old.upper()


def _ids(config: Config) -> tuple[set[str], set[str]]:
    with Store(config.database_url) as store, store.engine.connect() as connection:
        runs = set(connection.execute(t.runs.select().with_only_columns(t.runs.c.run_id)).scalars())
        leads = set(
            connection.execute(t.leads.select().with_only_columns(t.leads.c.lead_id)).scalars()
        )
    return runs, leads


def test_a_sync_names_its_run_and_its_leads_with_new_ids(config: Config) -> None:
    summary = cycle(config)
    runs, leads = _ids(config)
    assert runs == {summary.run_id}
    assert is_new_id(summary.run_id)
    assert leads
    assert all(is_new_id(lead_id) for lead_id in leads)


def test_a_store_an_earlier_release_filled_with_uuids_syncs_on_and_finds_its_runs(
    sandbox: Sandbox,
    config: Config,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def uuid_id() -> str:
        return str(uuid.uuid4())

    with monkeypatch.context() as earlier_release:
        earlier_release.setattr(ids, "new_id", uuid_id)  # the store's run ids
        earlier_release.setattr(engine_module, "new_id", uuid_id)  # the engine's lead ids
        first = cycle(config)
    old_runs, old_leads = _ids(config)
    assert old_leads
    assert all(uuid.UUID(lead_id) for lead_id in old_leads | old_runs)

    created = sandbox.salesforce.create_record(
        "Lead", {"LastName": "Newcomer", "Company": "Later Inc", "Email": "newcomer@later.example"}
    )
    assert created.record_id is not None
    second = cycle(config)
    runs, leads = _ids(config)
    # Every earlier lead kept its id (none made again for its records); the newcomer's is new.
    assert old_leads < leads
    assert [is_new_id(lead_id) for lead_id in leads - old_leads] == [True]
    assert runs == old_runs | {second.run_id}
    assert is_new_id(second.run_id)
    assert sum(c.written for c in cycle(config).crms.values()) == 0
    # The earlier run is still found by its short id, and by its full one.
    with Store(config.database_url) as store:
        assert find_run(store, first.run_id[:8]).run_id == first.run_id
    assert main(["runs", "show", first.run_id[:8], "--config", str(config.path)]) == 0
    assert capsys.readouterr().out.startswith(f"run {first.run_id} ")


def test_a_store_an_earlier_release_filled_is_read_and_changed_by_id_in_every_command(
    sandbox: Sandbox,
    config: Config,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """The earlier release's first sync and a duplicate it put in review; then today's
    commands name its UUID leads and runs: review keeps the duplicate apart, explain and the
    console's lead page show the lead, `runs show` and `revert` find the run by short id."""

    def uuid_id() -> str:
        return str(uuid.uuid4())

    with monkeypatch.context() as earlier_release:
        earlier_release.setattr(ids, "new_id", uuid_id)
        earlier_release.setattr(engine_module, "new_id", uuid_id)
        first = cycle(config)
        original, old_lead, twin = twin_of_a_linked_salesforce_lead(sandbox, config)
        search_caught_up(config)
        cycle(config)
    assert uuid.UUID(old_lead)
    assert uuid.UUID(first.run_id)
    argv = ["--config", str(config.path)]

    capsys.readouterr()
    assert main(["review", "--json", *argv]) == 0
    (item,) = [i for i in json.loads(capsys.readouterr().out) if i["record_id"] == twin]
    assert [c["lead_id"] for c in item["candidates"]] == [old_lead]
    assert main(["review", "resolve", twin, "apart", *argv]) == 0
    assert "kept apart as lead" in capsys.readouterr().out
    search_caught_up(config)
    cycle(config)
    with Store(config.database_url) as store:
        apart = store.lead_ids_for("salesforce", [twin])[twin]
        assert store.lead_ids_for("salesforce", [original["Id"]]) == {original["Id"]: old_lead}
    assert is_new_id(apart)

    assert main(["explain", original["Id"], *argv]) == 0
    assert capsys.readouterr().out.startswith(f"lead {old_lead}: ")
    console = tmp_path / "console"
    console.mkdir()
    with serve(console_config((config.path, config.database_url), console)) as served:
        assert sign_in(served.client, "grace", GRACE_PASSWORD).status_code == 303
        page = served.page(f"/console/leads/{old_lead}")
        assert f"Lead {old_lead[:8]}" in page
        assert original["Id"] in page

    assert main(["runs", "show", first.run_id[:8], *argv]) == 0
    assert capsys.readouterr().out.startswith(f"run {first.run_id} ")
    assert main(["revert", first.run_id[:8], *argv]) == 0
    assert capsys.readouterr().out.startswith(f"revert of run {first.run_id[:8]} ")
    with Store(config.database_url) as store:
        (revert,) = store.run_log.latest(kind="revert")
    assert is_new_id(revert.run_id)
    assert revert.status == "succeeded"
