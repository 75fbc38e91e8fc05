"""Bulk API 2.0 on the sandbox, driven by the real simple-salesforce `sf.bulk2`: ingest jobs with
per-record CSV results, query jobs paged by `Sforce-Locator`, and the recorded job shapes."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import pytest
import requests
from simple_salesforce import Salesforce, format_soql
from simple_salesforce.exceptions import SalesforceMalformedRequest

from tests.support import recorded

SEED_LEADS = 60
API = "/services/data/v59.0"
WAIT = 0.05  # simple-salesforce sleeps this long before its first poll, and between polls
BULK_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def rows(text: str) -> list[dict[str, str]]:
    """A result CSV read by its header, as Bulk 2.0 clients must."""
    return list(csv.DictReader(io.StringIO(text)))


def header(text: str) -> list[str]:
    return next(csv.reader(io.StringIO(text)))


def open_leads(sf: Salesforce, count: int) -> list[str]:
    soql = format_soql("SELECT Id FROM Lead WHERE IsConverted = false ORDER BY Id LIMIT {}", count)
    return [row["Id"] for row in sf.query(soql)["records"]]


def rest_values(sf: Salesforce, fields: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    soql = format_soql("SELECT Id, {:literal} FROM Lead WHERE Id IN {}", fields, ids)
    records = sf.query_all(soql)["records"]
    return {row["Id"]: row for row in records}


# ------------------------------------------------------------------------------------ ingest


def test_bulk_update_applies_every_row(salesforce: Salesforce) -> None:
    ids = open_leads(salesforce, 5)
    records = [
        {"Id": lead_id, "Title": f"Bulk {n}", "Leadsync_Score__c": str(10 * n)}
        for n, lead_id in enumerate(ids)
    ]
    (result,) = salesforce.bulk2.Lead.update(records=records, wait=WAIT)
    assert result["job_id"].startswith("750")
    assert (
        result["numberRecordsProcessed"],
        result["numberRecordsFailed"],
        result["numberRecordsTotal"],
    ) == (5, 0, 5)

    stored = rest_values(salesforce, "Title, Leadsync_Score__c, SystemModstamp", ids)
    for n, lead_id in enumerate(ids):
        assert stored[lead_id]["Title"] == f"Bulk {n}"
        assert stored[lead_id]["Leadsync_Score__c"] == 10.0 * n
    # One job's writes share one SystemModstamp, as a mass update's do.
    assert len({row["SystemModstamp"] for row in stored.values()}) == 1

    successes = rows(salesforce.bulk2.Lead.get_successful_records(result["job_id"]))
    assert sorted(row["sf__Id"] for row in successes) == sorted(ids)
    assert {row["sf__Created"] for row in successes} == {"false"}
    by_id = {row["Id"]: row for row in successes}
    assert by_id[ids[3]]["Title"] == "Bulk 3"
    assert rows(salesforce.bulk2.Lead.get_failed_records(result["job_id"])) == []


def test_bulk_insert_reports_the_failing_row(salesforce: Salesforce) -> None:
    records = [
        {"LastName": "Noether", "Company": "Göttingen", "Status": "Working - Contacted"},
        {"LastName": "Badstatus", "Company": "Nowhere", "Status": "Bogus"},
        {"LastName": "Meitner", "Company": "KWI, Berlin", "Status": "Open - Not Contacted"},
    ]
    (result,) = salesforce.bulk2.Lead.insert(records=records, wait=WAIT)
    assert (result["numberRecordsProcessed"], result["numberRecordsFailed"]) == (3, 1)
    job_id = result["job_id"]

    (failed,) = rows(salesforce.bulk2.Lead.get_failed_records(job_id))
    assert failed["sf__Error"].startswith("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST:")
    assert "Bogus" in failed["sf__Error"]
    assert failed["sf__Id"] == ""
    assert (failed["LastName"], failed["Status"]) == ("Badstatus", "Bogus")

    text = salesforce.bulk2.Lead.get_successful_records(job_id)
    # Result files come as `text/csv` with no charset, so requests, and simple-salesforce's
    # `.text`, read the UTF-8 bytes as Latin-1 (simple-salesforce#706): re-decode them.
    assert "GÃ¶ttingen" in text
    successes = rows(text.encode("latin-1").decode("utf-8"))
    assert [row["LastName"] for row in successes] == ["Noether", "Meitner"]
    assert {row["sf__Created"] for row in successes} == {"true"}
    for row in successes:
        lead = salesforce.Lead.get(row["sf__Id"])
        assert (lead["LastName"], lead["Company"], lead["Status"]) == (
            row["LastName"],
            row["Company"],
            row["Status"],
        )
    assert salesforce.query("SELECT COUNT() FROM Lead")["totalSize"] == SEED_LEADS + 2


def test_bulk_upsert_by_id_creates_and_updates(salesforce: Salesforce) -> None:
    (existing,) = open_leads(salesforce, 1)
    records = [
        {"Id": existing, "LastName": "Updated", "Company": "Same Co"},
        {"Id": "", "LastName": "Created", "Company": "New Co"},
    ]
    (result,) = salesforce.bulk2.Lead.upsert(records=records, external_id_field="Id", wait=WAIT)
    assert result["numberRecordsFailed"] == 0
    successes = {
        row["LastName"]: row
        for row in rows(salesforce.bulk2.Lead.get_successful_records(result["job_id"]))
    }
    assert successes["Updated"]["sf__Id"] == existing
    assert successes["Updated"]["sf__Created"] == "false"
    assert successes["Created"]["sf__Created"] == "true"
    assert salesforce.Lead.get(successes["Created"]["sf__Id"])["Company"] == "New Co"


def test_bulk_delete_leaves_records_for_query_all(salesforce: Salesforce) -> None:
    ids = open_leads(salesforce, 2)
    (result,) = salesforce.bulk2.Lead.delete(records=[{"Id": i} for i in ids], wait=WAIT)
    assert result["numberRecordsFailed"] == 0
    soql = format_soql("SELECT Id, IsDeleted FROM Lead WHERE Id IN {}", ids)
    assert salesforce.query(soql)["totalSize"] == 0
    deleted = salesforce.query_all(soql, include_deleted=True)["records"]
    assert {(row["Id"], row["IsDeleted"]) for row in deleted} == {(i, True) for i in ids}


def test_get_all_ingest_records_reads_all_three_result_sets(salesforce: Salesforce) -> None:
    records = [
        {"LastName": "Good", "Company": "Fine"},
        {"LastName": "Bad", "Company": ""},  # an empty cell leaves Company unset: required
    ]
    (result,) = salesforce.bulk2.Lead.insert(records=records, wait=WAIT)
    everything = salesforce.bulk2.Lead.get_all_ingest_records(result["job_id"])
    assert [row["LastName"] for row in everything["successfulRecords"]] == ["Good"]
    (failed,) = everything["failedRecords"]
    assert failed["sf__Error"].startswith("REQUIRED_FIELD_MISSING:")
    assert everything["unprocessedRecords"] == []


# ------------------------------------------------------------------------------------ shapes


def _api(sf: Salesforce, method: str, path: str, **kwargs: Any) -> requests.Response:
    """A raw call with the client's own session and headers, for bodies it does not expose."""
    headers = {**sf.headers, **kwargs.pop("headers", {})}
    return sf.session.request(
        method, f"https://{sf.sf_instance}{API}{path}", headers=headers, **kwargs
    )


def poll_until_done(sf: Salesforce, kind: str, job_id: str) -> list[dict[str, Any]]:
    """Poll a job's status until it ends; every status body seen, in order."""
    seen: list[dict[str, Any]] = []
    for _ in range(10):
        seen.append(_api(sf, "GET", f"/jobs/{kind}/{job_id}").json())
        if seen[-1]["state"] in ("JobComplete", "Failed", "Aborted"):
            return seen
    raise AssertionError(f"job {job_id} never ended: {[s['state'] for s in seen]}")


def submit_insert(sf: Salesforce, data: str) -> str:
    """An insert job with `data` uploaded and closed; its id."""
    job = _api(sf, "POST", "/jobs/ingest", json={"object": "Lead", "operation": "insert"}).json()
    put = _api(
        sf,
        "PUT",
        f"/jobs/ingest/{job['id']}/batches",
        data=data.encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert put.status_code == 201
    _api(sf, "PATCH", f"/jobs/ingest/{job['id']}", json={"state": "UploadComplete"})
    return str(job["id"])


def test_a_job_is_in_progress_for_some_polls_and_writes_only_when_it_completes(
    salesforce: Salesforce,
) -> None:
    job_id = submit_insert(salesforce, "LastName,Company\nLater,Queued Co\n")
    early = _api(salesforce, "GET", f"/jobs/ingest/{job_id}/successfulResults")
    assert early.status_code == 400  # no results before the job has ended
    states = poll_until_done(salesforce, "ingest", job_id)
    assert [s["state"] for s in states] == ["InProgress", "InProgress", "JobComplete"]
    # Nothing was written while the job was queued; all of it when it completed.
    assert salesforce.query("SELECT COUNT() FROM Lead")["totalSize"] == SEED_LEADS + 1
    done = states[-1]
    assert (done["jobType"], done["retries"], done["numberRecordsProcessed"]) == (
        "V2Ingest",
        0,
        1,
    )
    assert done["totalProcessingTime"] >= done["apiActiveProcessingTime"] > 0
    assert done["apexProcessingTime"] == 0


def test_a_query_job_reads_its_rows_when_it_completes(salesforce: Salesforce) -> None:
    created = _api(
        salesforce,
        "POST",
        "/jobs/query",
        json={"operation": "query", "query": "SELECT Id FROM Lead"},
    ).json()
    assert created["state"] == "UploadComplete"
    early = _api(salesforce, "GET", f"/jobs/query/{created['id']}/results")
    assert early.status_code == 400
    salesforce.Lead.create({"LastName": "Late", "Company": "Late Co"})
    states = poll_until_done(salesforce, "query", created["id"])
    assert [s["state"] for s in states] == ["InProgress", "InProgress", "JobComplete"]
    assert states[-1]["jobType"] == "V2Query"
    page = _api(salesforce, "GET", f"/jobs/query/{created['id']}/results")
    assert len(rows(page.text)) == SEED_LEADS + 1


def test_an_injected_failure_ends_the_next_job_failed_having_written_nothing(
    salesforce: Salesforce, control: requests.Session
) -> None:
    base: str = control.base  # type: ignore[attr-defined]
    answer = control.post(
        f"{base}/_sandbox/salesforce/bulk/fail-next",
        json={"message": "InternalServerError : retry later"},
        timeout=5,
    )
    assert answer.status_code == 200
    job_id = submit_insert(salesforce, "LastName,Company\nNever,Failed Co\n")
    done = poll_until_done(salesforce, "ingest", job_id)[-1]
    assert (done["state"], done["errorMessage"]) == ("Failed", "InternalServerError : retry later")
    assert salesforce.query("SELECT COUNT() FROM Lead")["totalSize"] == SEED_LEADS
    # The failure was for one job: the next completes.
    again = submit_insert(salesforce, "LastName,Company\nAfter,Fine Co\n")
    assert poll_until_done(salesforce, "ingest", again)[-1]["state"] == "JobComplete"


def test_ingest_job_bodies_have_the_recorded_shape(salesforce: Salesforce) -> None:
    created_keys = set(recorded("bulk2_create_job_success_response"))
    closed_keys = set(recorded("bulk2_close_job_success_response"))
    status_keys = set(recorded("bulk2_check_status_success_response"))
    success_header = header(recorded("bulk2_success_results_success_response"))
    failed_header = header(recorded("bulk2_failed_results_success_response"))

    created = _api(
        salesforce,
        "POST",
        "/jobs/ingest",
        json={"object": "Lead", "operation": "insert", "contentType": "CSV", "lineEnding": "LF"},
    )
    assert created.status_code == 200
    job = created.json()
    assert created_keys <= set(job)
    assert (job["state"], job["object"], job["operation"]) == ("Open", "Lead", "insert")
    assert job["apiVersion"] == 59.0
    assert job["contentUrl"] == f"services/data/v59.0/jobs/ingest/{job['id']}/batches"

    uploaded = ["LastName", "Company", "Status"]
    data = ",".join(uploaded) + "\nShape,Shape Co,Bogus\nShape2,Shape Co,\n"
    put = _api(
        salesforce,
        "PUT",
        f"/jobs/ingest/{job['id']}/batches",
        data=data.encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert put.status_code == 201

    closed = _api(
        salesforce, "PATCH", f"/jobs/ingest/{job['id']}", json={"state": "UploadComplete"}
    )
    assert closed_keys <= set(closed.json())
    assert closed.json()["state"] == "UploadComplete"
    status = poll_until_done(salesforce, "ingest", job["id"])[-1]
    assert status_keys <= set(status)
    assert (status["state"], status["numberRecordsProcessed"], status["numberRecordsFailed"]) == (
        "JobComplete",
        2,
        1,
    )

    succeeded = _api(salesforce, "GET", f"/jobs/ingest/{job['id']}/successfulResults").text
    failed = _api(salesforce, "GET", f"/jobs/ingest/{job['id']}/failedResults").text
    assert header(succeeded)[:2] == success_header[:2] == ["sf__Id", "sf__Created"]
    assert header(failed)[:2] == failed_header[:2] == ["sf__Id", "sf__Error"]
    # The uploaded columns come back, but not in the uploaded order: read results by header.
    assert sorted(header(succeeded)[2:]) == sorted(uploaded)
    assert header(succeeded)[2:] != uploaded
    assert [row["LastName"] for row in rows(succeeded)] == ["Shape2"]
    assert [row["LastName"] for row in rows(failed)] == ["Shape"]


def test_query_job_info_has_the_recorded_keys(salesforce: Salesforce) -> None:
    created_keys = set(recorded("bulk2_create_job_success_response")) - {"contentUrl", "object"}
    created = _api(
        salesforce,
        "POST",
        "/jobs/query",
        json={"operation": "query", "query": "SELECT Id FROM Lead"},
    ).json()
    assert created_keys <= set(created)
    assert created["operation"] == "query"
    status = poll_until_done(salesforce, "query", created["id"])[-1]
    assert set(recorded("bulk2_check_status_success_response")) <= set(status)
    assert status["state"] == "JobComplete"


# ------------------------------------------------------------------------------------ query


@pytest.mark.parametrize(
    ("max_records", "sizes"),
    [(25, [25, 25, 10]), (30, [30, 30]), (59, [59, 1]), (60, [60]), (50_000, [60])],
)
def test_bulk_query_pages_deliver_every_row_once(
    salesforce: Salesforce, max_records: int, sizes: list[int]
) -> None:
    pages = list(
        salesforce.bulk2.Lead.query(
            "SELECT Id, Email FROM Lead", max_records=max_records, wait=WAIT
        )
    )
    assert [len(rows(page)) for page in pages] == sizes
    assert all(header(page) == ["Id", "Email"] for page in pages)
    ids = [row["Id"] for page in pages for row in rows(page)]
    assert len(ids) == len(set(ids)) == SEED_LEADS
    rest = {
        row["Id"]: row["Email"]
        for row in salesforce.query_all("SELECT Id, Email FROM Lead")["records"]
    }
    assert {row["Id"]: row["Email"] or None for page in pages for row in rows(page)} == rest


def test_bulk_query_results_carry_locator_headers(salesforce: Salesforce) -> None:
    created = _api(
        salesforce,
        "POST",
        "/jobs/query",
        json={"operation": "query", "query": "SELECT Id FROM Lead"},
    ).json()
    poll_until_done(salesforce, "query", created["id"])
    results = f"/jobs/query/{created['id']}/results"
    first = _api(salesforce, "GET", results, params={"maxRecords": 40})
    assert (first.headers["Sforce-Locator"], first.headers["Sforce-NumberOfRecords"]) == (
        "40",
        "40",
    )
    assert first.headers["Content-Type"].startswith("text/csv")
    last = _api(
        salesforce,
        "GET",
        results,
        params={"maxRecords": 40, "locator": first.headers["Sforce-Locator"]},
    )
    assert (last.headers["Sforce-Locator"], last.headers["Sforce-NumberOfRecords"]) == (
        "null",
        "20",
    )
    ids = [row["Id"] for row in rows(first.text) + rows(last.text)]
    assert len(set(ids)) == SEED_LEADS


def test_bulk_query_prints_datetimes_with_z(salesforce: Salesforce) -> None:
    soql = "SELECT Id, SystemModstamp, CreatedDate, ConvertedDate, IsConverted FROM Lead"
    (page,) = salesforce.bulk2.Lead.query(soql, wait=WAIT)
    bulk = {row["Id"]: row for row in rows(page)}
    rest = {row["Id"]: row for row in salesforce.query_all(soql)["records"]}
    assert bulk.keys() == rest.keys()
    for lead_id, row in bulk.items():
        assert BULK_DATETIME.match(row["SystemModstamp"]), row["SystemModstamp"]
        assert BULK_DATETIME.match(row["CreatedDate"]), row["CreatedDate"]
        assert rest[lead_id]["SystemModstamp"] == row["SystemModstamp"][:-1] + "+0000"
        assert row["ConvertedDate"] == (rest[lead_id]["ConvertedDate"] or "")
        assert row["IsConverted"] == str(rest[lead_id]["IsConverted"]).lower()
    assert any(row["ConvertedDate"] for row in bulk.values())


def test_bulk_query_all_includes_deleted_rows(salesforce: Salesforce) -> None:
    (doomed,) = open_leads(salesforce, 1)
    salesforce.Lead.delete(doomed)
    soql = "SELECT Id, IsDeleted FROM Lead"
    live = [row for page in salesforce.bulk2.Lead.query(soql, wait=WAIT) for row in rows(page)]
    every = [row for page in salesforce.bulk2.Lead.query_all(soql, wait=WAIT) for row in rows(page)]
    assert doomed not in {row["Id"] for row in live}
    assert len(live) == SEED_LEADS - 1
    assert {row["Id"]: row["IsDeleted"] for row in every}[doomed] == "true"
    assert len(every) == SEED_LEADS


def test_bulk_query_with_bad_soql_is_refused(salesforce: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as refused:
        list(salesforce.bulk2.Lead.query("SELECT Id, Nope FROM Lead", wait=WAIT))
    assert refused.value.content[0]["errorCode"] == "INVALID_FIELD"
