"""Bulk API 2.0 for the Salesforce connector: query jobs read page by page, update jobs with
per-record results, and the CSV conventions of both.

Every HTTP step of a job (create, upload, close, each status poll, each result page) is its own
call through the connector, so each is retried, accounted and re-authenticated on its own;
simple-salesforce's `_Bulk2Client` does the HTTP. Its high-level `sf.bulk2.<Object>` helpers
are not used: they run a whole job as one step that cannot be resumed part-way, and they poll
with their own `time.sleep`.

CSV facts that matter (CRM_FACTS.md): result files do not keep the uploaded column order, so
everything is read by header; an empty cell means null when reading and "leave unchanged" when
writing, where `#N/A` sets null; query results print datetimes as `...Z`, REST as `...+0000`;
result files come as `text/csv` without a charset, which requests decodes as Latin-1
(simple-salesforce#706).
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol, TypeVar

from simple_salesforce.bulk2 import Operation, _Bulk2Client

from leadsync.connectors.base import FieldType, RecordUpdate, utc
from leadsync.connectors.errors import ConnectorError, RequestRejectedError

T = TypeVar("T")

log = logging.getLogger("leadsync.connectors.salesforce")

CRM = "salesforce"
NULL_CELL = "#N/A"
_FINISHED = "JobComplete"
_BROKEN = ("Failed", "Aborted")
_ERROR_CODE = re.compile(r"^([A-Z][A-Z0-9_]*):(.*)$", re.DOTALL)


class BulkCall(Protocol):
    """Runs one Bulk API step against a client holding the current session."""

    def __call__(self, description: str, step: Callable[[_Bulk2Client], T]) -> T: ...


@dataclass(frozen=True, slots=True)
class RecordOutcome:
    """What the CRM said about one record of a write: no `code` means it was written."""

    code: str | None = None
    message: str = ""
    # Not refused, just not reached (a job that skipped it): worth sending again.
    unprocessed: bool = False
    # The fields the CRM named as the cause, where it names any.
    fields: tuple[str, ...] = ()


class BulkJobs:
    """Bulk API 2.0 jobs for one object, each HTTP step a separate call through `call`."""

    def __init__(
        self,
        call: BulkCall,
        *,
        poll_seconds: float,
        sleep: Callable[[float], None],
        clock: Callable[[], datetime],
        job_timeout: timedelta,
        page_size: int,
    ) -> None:
        self._call = call
        self._poll_seconds = poll_seconds
        self._sleep = sleep
        self._clock = clock
        self._job_timeout = job_timeout
        self._page_size = page_size

    def query(self, soql: str, *, include_deleted: bool) -> Iterator[ResultPage]:
        """The rows of a query job, one result page (CSV chunk) at a time, each read lazily."""
        operation = Operation.query_all if include_deleted else Operation.query
        job = self._call("create Bulk query job", lambda c: c.create_job(operation, query=soql))
        job_id = str(job["id"])
        self._wait(job_id, is_query=True)
        locator = ""
        while True:
            page = self._query_page(job_id, locator)
            following = page["locator"]
            # Popped, so that the page's rows hold its text and nothing here outlives them.
            yield read_result_page(page.pop("records"))
            if not following:
                return
            if following == locator:
                raise ConnectorError(
                    f"Bulk query job {job_id} repeated the locator {following!r}", crm=CRM
                )
            locator = following

    def _query_page(self, job_id: str, locator: str) -> Any:
        return self._call(
            f"read Bulk query job {job_id} page {locator or 'first'}",
            lambda c: c.get_query_results(job_id, locator, self._page_size),
        )

    def update(self, updates: Sequence[RecordUpdate]) -> list[RecordOutcome]:
        """Run one update job for `updates`; one outcome per update, in order."""
        job = self._call("create Bulk update job", lambda c: c.create_job(Operation.update))
        job_id = str(job["id"])
        data = update_csv(updates)
        self._call(f"upload Bulk job {job_id} data", lambda c: c.upload_job_data(job_id, data))
        self._call(f"close Bulk job {job_id}", lambda c: c.close_job(job_id))
        self._wait(job_id, is_query=False)
        written = self._results(job_id, "successfulResults")
        refused = self._results(job_id, "failedResults")
        return match_outcomes(updates, written, refused)

    def _results(self, job_id: str, kind: str) -> list[dict[str, str]]:
        text = self._call(
            f"read Bulk job {job_id} {kind}", lambda c: c.get_ingest_results(job_id, kind)
        )
        return read_csv(undo_latin1(text))

    def _wait(self, job_id: str, *, is_query: bool) -> None:
        deadline = self._clock() + self._job_timeout
        while True:
            info = self._call(f"poll Bulk job {job_id}", lambda c: c.get_job(job_id, is_query))
            state = info.get("state")
            if state == _FINISHED:
                return
            if state in _BROKEN:
                raise RequestRejectedError(
                    f"Bulk job {job_id} ended {state}: {info.get('errorMessage') or 'no reason'}",
                    crm=CRM,
                    category="bulk_job_failed",
                )
            if self._clock() > deadline:
                raise ConnectorError(
                    f"Bulk job {job_id} still {state} after {self._job_timeout}",
                    crm=CRM,
                    category="bulk_timeout",
                )
            log.debug(
                "Bulk job %s is %s; polling again in %.2fs", job_id, state, self._poll_seconds
            )
            self._sleep(self._poll_seconds)


# ------------------------------------------------------------------------------------ reading


@dataclass(frozen=True, slots=True)
class ResultPage:
    """One page of a query job's results: its header, then its rows as lists of cells in the
    header's order. The rows are parsed as they are read, so a page of 50,000 rows is held
    once, as its text, rather than again as cells and dicts."""

    header: list[str]
    rows: Iterator[list[str]]


def read_result_page(text: str) -> ResultPage:
    """A page of Bulk CSV whose rows are read on demand (column order is not stable: the
    header says it)."""
    rows = csv.reader(_lines(text))
    header = next(rows, [])
    # Blank lines are no rows (as `csv.DictReader` has it).
    return ResultPage(header, (row for row in rows if row))


def _lines(text: str) -> Iterator[str]:
    # One line at a time, as `csv.reader` takes them (it joins a quoted cell's lines again):
    # `io.StringIO(text)` would copy the whole text again at four bytes a character, and
    # `splitlines` breaks at more than "\n".
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end + 1
        yield text[start:end]
        start = end


def read_csv(text: str) -> list[dict[str, str]]:
    """Rows of a Bulk CSV, keyed by its header (column order is not stable)."""
    return [dict(row) for row in csv.DictReader(io.StringIO(text))]


def undo_latin1(text: str) -> str:
    """`text` as the UTF-8 Salesforce sent, where requests decoded it as Latin-1 because the
    answer named no charset (simple-salesforce#706); text that was decoded right is kept."""
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def typed_value(cell: str, kind: FieldType | None) -> Any:
    """A Bulk CSV cell as REST would have returned the value: JSON types, REST's datetime form,
    null for an empty cell."""
    if cell == "":
        return None
    if kind is FieldType.INTEGER:
        return int(float(cell))
    if kind is FieldType.NUMBER:
        return float(cell)
    if kind is FieldType.BOOLEAN:
        return cell.lower() == "true"
    if kind is FieldType.DATETIME:
        return rest_datetime(datetime.fromisoformat(cell))
    return cell


def rest_datetime(moment: datetime) -> str:
    """REST's datetime form: `2024-05-01T10:00:00.000+0000`."""
    moment = utc(moment)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}+0000"


def match_outcomes(
    updates: Sequence[RecordUpdate],
    written: Sequence[Mapping[str, str]],
    refused: Sequence[Mapping[str, str]],
) -> list[RecordOutcome]:
    """Pair each update with its result row, by the record id the row echoes back."""
    successes = _rows_by_id(written)
    failures = _rows_by_id(refused)
    outcomes = []
    for update in updates:
        if successes.get(update.record_id):
            successes[update.record_id].popleft()
            outcomes.append(RecordOutcome())
        elif failures.get(update.record_id):
            outcomes.append(_refusal(failures[update.record_id].popleft().get("sf__Error", "")))
        else:
            outcomes.append(
                RecordOutcome("UNPROCESSED", "the Bulk job did not process it", unprocessed=True)
            )
    return outcomes


def _rows_by_id(rows: Sequence[Mapping[str, str]]) -> dict[str, deque[Mapping[str, str]]]:
    by_id: dict[str, deque[Mapping[str, str]]] = {}
    for row in rows:
        record_id = row.get("Id") or row.get("sf__Id") or ""
        by_id.setdefault(record_id, deque()).append(row)
    return by_id


def _refusal(error: str) -> RecordOutcome:
    # sf__Error reads "CODE:message:fields"; several errors are joined by "; ".
    found = _ERROR_CODE.match(error.strip())
    if found is None:
        return RecordOutcome("UNKNOWN_EXCEPTION", error)
    return RecordOutcome(found.group(1), found.group(2))


# ------------------------------------------------------------------------------------ writing


def update_csv(updates: Sequence[RecordUpdate]) -> str:
    """The CSV of an update job: Id, then every field any update sets; a cell left empty
    leaves that field unchanged."""
    columns = sorted({name for update in updates for name in update.values} - {"Id"})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["Id", *columns])
    for update in updates:
        cells = [csv_cell(update.values[name]) if name in update.values else "" for name in columns]
        writer.writerow([update.record_id, *cells])
    return out.getvalue()


def csv_cell(value: Any) -> str:
    if value is None:
        return NULL_CELL
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def iso_utc(moment: datetime) -> str:
    """A datetime as Salesforce reads it on input: ISO-8601 in UTC, to the millisecond."""
    moment = utc(moment)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"
