"""`leadsync review`: a duplicate Salesforce lead waits for a person, is shown beside the lead
it duplicates, is resolved, and closes itself when its cause goes away."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from leadsync.cli import main
from leadsync.config import Config
from leadsync.sandbox import Sandbox
from leadsync.sync.model import Lead
from leadsync.sync.review import (
    Candidate,
    ReviewView,
    UnknownReviewError,
    _candidate_named,
)
from leadsync.sync.review_ledger import ReviewItem
from leadsync.sync.store import Store
from tests.support import twin_of_a_linked_salesforce_lead


def _sync(config: Config) -> None:
    assert main(["sync", "--once", "--config", str(config.path)]) == 0


@pytest.fixture
def duplicate(sandbox: Sandbox, config: Config) -> dict[str, Any]:
    """After a first sync, a second Salesforce lead with the email of one leadsync linked."""
    _sync(config)
    original, lead_id, twin = twin_of_a_linked_salesforce_lead(sandbox, config)
    _sync(config)
    return {
        "original": original["Id"],
        "twin": twin,
        "lead_id": lead_id,
        "email": original["Email"],
    }


def _queue(config: Config, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    capsys.readouterr()
    assert main(["review", "--json", "--config", str(config.path)]) == 0
    found: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    return found


def _lead_of(config: Config, record_id: str) -> str | None:
    with Store(config.database_url) as store:
        return store.lead_ids_for("salesforce", [record_id]).get(record_id)


def test_review_shows_the_duplicate_beside_its_lead_with_why(
    config: Config, duplicate: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    (item,) = _queue(config, capsys)
    assert (item["crm"], item["record_id"]) == ("salesforce", duplicate["twin"])
    assert [c["lead_id"] for c in item["candidates"]] == [duplicate["lead_id"]]
    assert ["salesforce", duplicate["original"]] in item["candidates"][0]["records"]
    assert "a duplicate" in item["reason"]
    this, theirs = item["fields"]["last_name"]
    assert this == "Twin"
    assert theirs != "Twin"
    assert main(["review", "--config", str(config.path)]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"salesforce record {duplicate['twin']}, in review since ")
    assert f"lead {duplicate['lead_id'][:8]}" in text
    assert any(line.split()[:2] == ["last_name", "Twin"] for line in text.splitlines())


def test_explain_says_a_record_waits_in_review(
    config: Config, duplicate: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    # By the 15-character form of its id, as Salesforce shows it in some places.
    assert main(["explain", duplicate["twin"][:15], "--config", str(config.path)]) == 0
    out = capsys.readouterr().out
    assert f"salesforce record {duplicate['twin']} waits in review since" in out
    assert duplicate["lead_id"] in out


def test_kept_apart_the_next_sync_makes_it_a_lead_of_its_own(
    config: Config, duplicate: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    twin = duplicate["twin"]
    assert main(["review", "resolve", twin, "apart", "--config", str(config.path)]) == 0
    assert "kept apart as lead" in capsys.readouterr().out
    assert _queue(config, capsys) == []
    _sync(config)
    own = _lead_of(config, twin)
    assert own is not None
    assert own != duplicate["lead_id"]
    with Store(config.database_url) as store:
        assert store.leads([own])[own].values["last_name"] == "Twin"


def test_linked_the_next_sync_merges_it_into_the_lead(
    config: Config, duplicate: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    twin, lead_id = duplicate["twin"], duplicate["lead_id"]
    args = ["review", "resolve", twin, "link", "--lead", lead_id, "--config", str(config.path)]
    assert main(args) == 0
    assert f"linked to {lead_id}" in capsys.readouterr().out
    _sync(config)
    assert _lead_of(config, twin) == lead_id
    assert _queue(config, capsys) == []


def test_a_candidate_is_named_by_the_start_of_its_id_the_review_shows(
    config: Config, duplicate: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    twin, lead_id = duplicate["twin"], duplicate["lead_id"]
    capsys.readouterr()
    assert main(["review", "--config", str(config.path)]) == 0
    assert f"lead {lead_id[:8]}" in capsys.readouterr().out
    resolve = ["review", "resolve", twin, "link", "--config", str(config.path)]
    # Too short to name anything, or naming no candidate nor lead: bad usage, nothing linked.
    for given in (lead_id[:3], "zzzzzzzz"):
        assert main([*resolve, "--lead", given]) == 2
        assert f"no lead {given}" in capsys.readouterr().err
    assert main([*resolve, "--lead", lead_id[:8].upper()]) == 0
    assert f"linked to {lead_id}" in capsys.readouterr().out
    _sync(config)
    assert _lead_of(config, twin) == lead_id


def test_a_start_two_candidates_share_names_neither() -> None:
    ids = ("abcd1111aaaaaaaaaaaa", "abcd2222aaaaaaaaaaaa")
    item = ReviewItem("salesforce", "00Q1", ids, "same email", "run", datetime.now(UTC))
    view = ReviewView(item, None, tuple(Candidate(Lead(i, {}), ()) for i in ids))
    with pytest.raises(UnknownReviewError, match="names more than one candidate"):
        _candidate_named(view, "abcd")
    assert _candidate_named(view, "ABCD2") == ids[1]
    assert _candidate_named(view, ids[0]) == ids[0]


def test_ignored_it_stays_unlinked_and_resolving_again_is_bad_usage(
    config: Config, duplicate: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    twin = duplicate["twin"]
    assert main(["review", "resolve", twin, "ignore", "--config", str(config.path)]) == 0
    _sync(config)
    assert _lead_of(config, twin) is None
    assert main(["review", "resolve", twin, "apart", "--config", str(config.path)]) == 2
    assert f"no record {twin} in review" in capsys.readouterr().err


def test_the_item_closes_itself_once_the_duplicate_it_stood_against_is_deleted(
    sandbox: Sandbox, config: Config, duplicate: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert len(_queue(config, capsys)) == 1
    sandbox.salesforce.delete_record("Lead", duplicate["original"])
    _sync(config)
    assert _queue(config, capsys) == []
    # Linked now: to the lead it duplicated if that lead has another live record, else to
    # a lead of its own (the deleted record's lead answers to nothing any more).
    assert _lead_of(config, duplicate["twin"]) is not None
    with Store(config.database_url) as store:
        (closed,) = store.reviews.items(open_only=False)
    assert closed.resolution is not None
    assert closed.resolution.startswith("closed itself: matched")


def test_the_item_of_a_record_deleted_in_its_crm_closes_itself(
    sandbox: Sandbox, config: Config, duplicate: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox.salesforce.delete_record("Lead", duplicate["twin"])
    _sync(config)
    assert _queue(config, capsys) == []
    with Store(config.database_url) as store:
        (closed,) = store.reviews.items(open_only=False)
    assert closed.resolution == "closed itself: the record was deleted"


def test_resolve_json_gives_the_record_and_the_decision(
    config: Config, duplicate: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    twin = duplicate["twin"]
    capsys.readouterr()
    argv = ["review", "resolve", twin, "apart", "--json", "--config", str(config.path)]
    assert main(argv) == 0
    body = json.loads(capsys.readouterr().out)
    assert (body["crm"], body["record_id"]) == ("salesforce", twin)
    assert body["decision"].startswith("kept apart as lead")
