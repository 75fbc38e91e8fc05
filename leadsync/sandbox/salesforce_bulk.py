"""Bulk API 2.0: ingest jobs (CSV in, per-record results out) and query jobs (CSV pages).

Jobs take time, as real ones do: a job whose data is complete (`UploadComplete`) is
`InProgress` for a few polls of its status (`IN_PROGRESS_POLLS`), then runs and ends
`JobComplete`, or `Failed` with an `errorMessage` when a failure was injected with
`fail_next`. The records change, and a query's rows are read, when the job completes, not
when it is submitted. Job info carries the fields of Salesforce's "Get Information About an
Ingest Job" and "... a Query Job" (jobType, retries, the processing times). Two more real
quirks: result CSVs do not keep the uploaded column order (clients must read by header), and
query results print datetimes as `...Z`, unlike REST.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from leadsync.sandbox import soql
from leadsync.sandbox.http import Request, Response, Route, route
from leadsync.sandbox.ids import salesforce_id
from leadsync.sandbox.salesforce_auth import USER_ID
from leadsync.sandbox.timestamps import salesforce_datetime

if TYPE_CHECKING:
    from leadsync.sandbox.salesforce import SalesforceEmulator

INGEST_OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")
QUERY_PAGE_DEFAULT = 50_000
# Status polls a job answers InProgress before it completes: "a few", so that a client that
# reads results after one poll, or polls without end, fails here as it would against an org.
IN_PROGRESS_POLLS = 2
# `#N/A` in a Bulk CSV sets a field to null; an empty cell leaves it unchanged.
NULL_MARKER = "#N/A"


@dataclass
class Job:
    id: str
    kind: str  # "ingest" | "query"
    operation: str
    object: str
    state: str
    created: str
    external_id_field: str | None = None
    query: str = ""
    upload: str = ""
    successes: list[dict[str, str]] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    error_message: str | None = None
    polls_left: int = IN_PROGRESS_POLLS
    modified: str = ""
    processing_ms: int = 0

    def info(self, version: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.object,
            "createdById": USER_ID,
            "createdDate": self.created,
            "systemModstamp": self.modified or self.created,
            "state": self.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(version),
            "jobType": "V2Ingest" if self.kind == "ingest" else "V2Query",
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
            "retries": 0,
            "totalProcessingTime": self.processing_ms,
        }
        if self.kind == "ingest":
            body["contentUrl"] = f"services/data/v{version}/jobs/ingest/{self.id}/batches"
            body["numberRecordsProcessed"] = len(self.successes) + len(self.failures)
            body["numberRecordsFailed"] = len(self.failures)
            body["apiActiveProcessingTime"] = self.processing_ms
            body["apexProcessingTime"] = 0  # the sandbox runs no triggers
            if self.external_id_field:
                body["externalIdFieldName"] = self.external_id_field
        else:
            body["numberRecordsProcessed"] = len(self.rows)
        if self.error_message:
            body["errorMessage"] = self.error_message
        return body


class BulkJobs:
    def __init__(self, emulator: SalesforceEmulator) -> None:
        self._emulator = emulator
        self._jobs: dict[str, Job] = {}
        self._number = 0
        self._failures: list[str] = []

    def clear(self) -> None:
        self._jobs.clear()
        self._failures.clear()

    def fail_next(self, message: str) -> None:
        """Make the next job to complete end `Failed` with `message`, having changed nothing."""
        self._failures.append(message)

    def routes(self, data: str) -> list[Route]:
        ingest = f"{data}/jobs/ingest"
        query = f"{data}/jobs/query"
        job = "(?P<job>750\\w+)"
        return [
            route("POST", f"{ingest}/?", "salesforce.bulk.ingest_create", self._create_ingest),
            route(
                "PUT", f"{ingest}/{job}/batches/?", "salesforce.bulk.ingest_upload", self._upload
            ),
            route("PATCH", f"{ingest}/{job}/?", "salesforce.bulk.ingest_state", self._set_state),
            route("GET", f"{ingest}/{job}/?", "salesforce.bulk.ingest_info", self._info),
            route("DELETE", f"{ingest}/{job}/?", "salesforce.bulk.ingest_delete", self._delete),
            route(
                "GET",
                # Documented as `unprocessedrecords`; simple-salesforce's
                # get_unprocessed_records asks for `unprocessedRecords`: take both.
                f"{ingest}/{job}/(?P<which>successfulResults|failedResults|unprocessed[rR]ecords)/?",
                "salesforce.bulk.ingest_results",
                self._results,
            ),
            route("POST", f"{query}/?", "salesforce.bulk.query_create", self._create_query),
            route("GET", f"{query}/{job}/?", "salesforce.bulk.query_info", self._info),
            route("PATCH", f"{query}/{job}/?", "salesforce.bulk.query_state", self._set_state),
            route("DELETE", f"{query}/{job}/?", "salesforce.bulk.query_delete", self._delete),
            route(
                "GET",
                f"{query}/{job}/results/?",
                "salesforce.bulk.query_results",
                self._query_results,
            ),
        ]

    def _new_id(self) -> str:
        self._number += 1
        return salesforce_id("750", self._number)

    def _now(self) -> str:
        return salesforce_datetime(self._emulator._now_ms())

    # ---------------------------------------------------------------- ingest

    def _create_ingest(self, request: Request, match: re.Match[str]) -> Response:
        body = _json(request)
        if body is None:
            return _error(400, "JSON_PARSER_ERROR", "The request body is not a JSON object")
        operation = body.get("operation")
        if operation not in INGEST_OPERATIONS:
            return _error(400, "INVALIDJOB", f"InvalidJob : Invalid operation: {operation}")
        obj = self._emulator.object_named(str(body.get("object", "")))
        if obj is None:
            return _error(400, "INVALIDJOB", f"InvalidJob : Invalid object: {body.get('object')}")
        external = body.get("externalIdFieldName")
        if operation == "upsert" and not external:
            return _error(400, "INVALIDJOB", "InvalidJob : External ID was blank for upsert")
        job = Job(self._new_id(), "ingest", str(operation), obj.name, "Open", self._now(), external)
        self._jobs[job.id] = job
        return Response.json(200, job.info(match["version"]))

    def _upload(self, request: Request, match: re.Match[str]) -> Response:
        job = self._jobs.get(match["job"])
        if job is None or job.kind != "ingest":
            return _error(404, "NOT_FOUND", "The requested resource does not exist")
        if job.state != "Open":
            return _error(409, "INVALIDSTATE", f"InvalidJobState : Job is in state {job.state}")
        if job.upload:
            return _error(
                400, "INVALIDBATCH", "InvalidBatch : Only one upload is allowed for a job"
            )
        job.upload = request.body.decode("utf-8")
        return Response.empty(201)

    def _set_state(self, request: Request, match: re.Match[str]) -> Response:
        job = self._jobs.get(match["job"])
        if job is None:
            return _error(404, "NOT_FOUND", "The requested resource does not exist")
        body = _json(request) or {}
        wanted = body.get("state")
        if wanted == "Aborted" and job.state in ("Open", "UploadComplete", "InProgress"):
            job.state = "Aborted"
        elif wanted == "UploadComplete" and job.kind == "ingest" and job.state == "Open":
            job.state = "UploadComplete"  # queued: it runs over the next status polls
        else:
            return _error(
                400, "INVALIDSTATE", f"InvalidJobState : cannot move from {job.state} to {wanted}"
            )
        return Response.json(200, job.info(match["version"]))

    def _advance(self, job: Job) -> None:
        """One status poll of a submitted job: InProgress for a few polls, then it runs."""
        if job.state not in ("UploadComplete", "InProgress"):
            return
        if job.polls_left > 0:
            job.polls_left -= 1
            job.state = "InProgress"
            job.modified = self._now()
            return
        started = self._emulator._now_ms()
        if self._failures:
            job.state, job.error_message = "Failed", self._failures.pop(0)
        elif job.kind == "ingest":
            self._run_ingest(job)
        else:
            self._run_query(job)
        # The sandbox works in no time; a job still reports having taken some.
        job.processing_ms = max(1, self._emulator._now_ms() - started)
        job.modified = self._now()

    def _run_ingest(self, job: Job) -> None:
        emulator = self._emulator
        reader = csv.DictReader(io.StringIO(job.upload))
        if not reader.fieldnames:
            job.state, job.error_message = "Failed", "InvalidBatch : no CSV header found"
            return
        stamp = emulator._stamp()
        for row in reader:
            values = {
                name: (None if cell == NULL_MARKER else cell)
                for name, cell in row.items()
                if name is not None and cell != ""
            }
            outcome = self._ingest_one(job, values, stamp)
            original = {name: cell or "" for name, cell in row.items() if name is not None}
            if outcome.success:
                job.successes.append(
                    {
                        "sf__Id": outcome.record_id or "",
                        "sf__Created": "true" if outcome.created else "false",
                        **original,
                    }
                )
            else:
                message = "; ".join(
                    f"{error.status_code}:{error.message}:{'--'.join(error.fields) or '--'}"
                    for error in outcome.errors
                )
                job.failures.append(
                    {"sf__Id": outcome.record_id or "", "sf__Error": message, **original}
                )
        job.state = "JobComplete"

    def _ingest_one(self, job: Job, values: dict[str, Any], stamp: str) -> Any:
        emulator = self._emulator
        record_id = values.pop("Id", None) or values.pop("id", None)
        if job.operation == "insert":
            return emulator.create_record(job.object, values, stamp=stamp)
        if job.operation in ("delete", "hardDelete"):
            return emulator.delete_record(job.object, str(record_id or ""), stamp=stamp)
        if job.operation == "upsert" and job.external_id_field not in (None, "Id"):
            key_field = str(job.external_id_field)
            key = values.get(key_field)
            match = next(
                (
                    row
                    for row in emulator.snapshot(job.object)
                    if key is not None and row.get(key_field) == key
                ),
                None,
            )
            if match is None:
                return emulator.create_record(job.object, values, stamp=stamp)
            values.pop(key_field, None)
            return emulator.update_record(job.object, match["Id"], values, stamp=stamp)
        if job.operation == "upsert" and not record_id:
            return emulator.create_record(job.object, values, stamp=stamp)
        return emulator.update_record(job.object, str(record_id or ""), values, stamp=stamp)

    def _results(self, request: Request, match: re.Match[str]) -> Response:
        job = self._jobs.get(match["job"])
        if job is None or job.kind != "ingest":
            return _error(404, "NOT_FOUND", "The requested resource does not exist")
        if job.state in ("Open", "UploadComplete", "InProgress"):
            # Results exist once the job has ended (*unconfirmed* status for an early read:
            # refusing it is the stricter choice).
            return _error(400, "INVALIDSTATE", f"InvalidJobState : Job is in state {job.state}")
        which = match["which"]
        if which == "successfulResults":
            rows, lead = job.successes, ["sf__Id", "sf__Created"]
        elif which == "failedResults":
            rows, lead = job.failures, ["sf__Id", "sf__Error"]
        else:
            rows, lead = [], []
        uploaded = next(csv.reader(io.StringIO(job.upload)), []) if job.upload else []
        # Real result files do not keep the uploaded column order: uploaded columns come back
        # reversed, so a client that reads by position fails here as it would in production.
        header = lead + list(reversed(uploaded))
        return Response.text(
            200, _csv(header, ([row.get(c, "") for c in header] for row in rows)), "text/csv"
        )

    # ---------------------------------------------------------------- query

    def _create_query(self, request: Request, match: re.Match[str]) -> Response:
        body = _json(request)
        if body is None:
            return _error(400, "JSON_PARSER_ERROR", "The request body is not a JSON object")
        operation = body.get("operation", "query")
        if operation not in ("query", "queryAll"):
            return _error(400, "INVALIDJOB", f"InvalidJob : Invalid operation: {operation}")
        text = str(body.get("query") or "")
        try:
            # Checked now, as Salesforce refuses a bad query at once; run when the job does.
            query = soql.parse(text, objects=self._emulator.objects)
        except soql.SoqlError as problem:
            return _error(400, problem.error_code, problem.message)
        if query.count_only:
            return _error(
                400, "INVALIDJOB", "InvalidJob : COUNT() is not supported by Bulk API 2.0"
            )
        job = Job(
            self._new_id(),
            "query",
            operation,
            query.sobject.name,
            "UploadComplete",
            self._now(),
            query=text,
        )
        self._jobs[job.id] = job
        return Response.json(200, job.info(match["version"]))

    def _run_query(self, job: Job) -> None:
        try:
            query, rows = self._emulator.run_query(
                job.query, include_deleted=job.operation == "queryAll"
            )
        except soql.SoqlError as problem:  # the org changed under the job
            job.state, job.error_message = "Failed", problem.message
            return
        job.columns = list(query.fields)
        job.rows = [
            [_bulk_cell(value) for value in soql.project(query, row).values()] for row in rows
        ]
        job.state = "JobComplete"

    def _query_results(self, request: Request, match: re.Match[str]) -> Response:
        job = self._jobs.get(match["job"])
        if job is None or job.kind != "query":
            return _error(404, "NOT_FOUND", "The requested resource does not exist")
        if job.state != "JobComplete":
            return _error(400, "INVALIDSTATE", f"InvalidJobState : Job is in state {job.state}")
        try:
            start = int(request.param("locator") or 0)
            size = int(request.param("maxRecords") or QUERY_PAGE_DEFAULT)
        except ValueError:
            return _error(400, "INVALID_LOCATOR", "invalid locator or maxRecords")
        end = min(start + max(size, 1), len(job.rows))
        response = Response.text(200, _csv(job.columns, job.rows[start:end]), "text/csv")
        response.headers["Sforce-Locator"] = str(end) if end < len(job.rows) else "null"
        response.headers["Sforce-NumberOfRecords"] = str(end - start)
        return response

    # ---------------------------------------------------------------- shared

    def _info(self, request: Request, match: re.Match[str]) -> Response:
        job = self._jobs.get(match["job"])
        if job is None:
            return _error(404, "NOT_FOUND", "The requested resource does not exist")
        self._advance(job)
        return Response.json(200, job.info(match["version"]))

    def _delete(self, request: Request, match: re.Match[str]) -> Response:
        if self._jobs.pop(match["job"], None) is None:
            return _error(404, "NOT_FOUND", "The requested resource does not exist")
        return Response.empty(204)


def _bulk_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    # Bulk results print datetimes in ISO form with Z, unlike REST's "+0000".
    if len(text) == 28 and text.endswith("+0000") and text[10] == "T":
        return text[:-5] + "Z"
    return text


def _csv(header: list[str], rows: Any) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def _json(request: Request) -> Mapping[str, Any] | None:
    try:
        body = request.json()
    except ValueError:
        return None
    return body if isinstance(body, Mapping) else None


def _error(status: int, code: str, message: str) -> Response:
    return Response.json(status, [{"message": message, "errorCode": code}])
