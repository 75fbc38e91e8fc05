"""Log lines: text and JSON shape, the run id on every line of a run, secrets masked."""

from __future__ import annotations

import contextvars
import io
import json
import logging
import re
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from leadsync.logs import (
    LIBRARY_LOGGERS,
    configure_logging,
    current_run_id,
    new_run_id,
    reset_logging,
    run_context,
)
from leadsync.secrets import Secret

RUN = "1a2b3c4d5e6f478899aabbccddeeff00"
TEXT_LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (?P<level>[A-Z]+) (?P<logger>\S+)"
    r"(?: \[run (?P<run>[0-9a-f]+)\])? (?P<message>.*)$"
)

# Loggers of modules that know nothing of runs.
store_log = logging.getLogger("leadsync.store")
sync_log = logging.getLogger("leadsync.sync")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Leave the loggers as this module found them, for the caplog tests elsewhere."""
    names = ("leadsync", *LIBRARY_LOGGERS)
    saved = {
        name: (logger.level, logger.propagate, list(logger.handlers))
        for name in names
        for logger in [logging.getLogger(name)]
    }
    yield
    reset_logging()
    for name, (level, propagate, handlers) in saved.items():
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.propagate = propagate
        logger.handlers[:] = handlers


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def configured(**options: Any) -> io.StringIO:
    stream = io.StringIO()
    configure_logging(stream=stream, **options)
    return stream


def fixed_record(name: str, message: str) -> logging.LogRecord:
    record = logging.LogRecord(name, logging.INFO, __file__, 1, message, None, None)
    record.created = datetime(2026, 12, 1, 10, 0, 0, 123_999, tzinfo=UTC).timestamp()
    return record


def test_text_line_has_utc_time_level_logger_and_short_run_id() -> None:
    stream = configured()
    with run_context(RUN):
        sync_log.handle(fixed_record("leadsync.sync", "message"))
    sync_log.handle(fixed_record("leadsync.sync", "after"))

    assert stream.getvalue().splitlines() == [
        "2026-12-01T10:00:00.123Z INFO leadsync.sync [run 1a2b3c4d] message",
        "2026-12-01T10:00:00.123Z INFO leadsync.sync after",
    ]


def test_text_lines_from_any_leadsync_logger_carry_the_run_only_inside_it() -> None:
    stream = configured()
    store_log.info("before")
    with run_context(RUN, job="sync"):
        store_log.warning("saved %d leads", 3)
    store_log.info("after")

    matches = [TEXT_LINE.match(line) for line in stream.getvalue().splitlines()]
    assert all(matches)
    assert [(m["level"], m["logger"], m["run"], m["message"]) for m in matches if m] == [
        ("INFO", "leadsync.store", None, "before"),
        ("WARNING", "leadsync.store", RUN[:8], "saved 3 leads"),
        ("INFO", "leadsync.store", None, "after"),
    ]


def test_json_line_shape_with_full_run_id_and_run_fields() -> None:
    stream = configured(format="json")
    with run_context(RUN, job="sync", backfill_id=7):
        sync_log.handle(fixed_record("leadsync.sync", "pulled 3 leads"))
    store_log.info("outside")

    inside, outside = json_lines(stream)
    assert inside == {
        "ts": "2026-12-01T10:00:00.123Z",
        "level": "INFO",
        "logger": "leadsync.sync",
        "message": "pulled 3 leads",
        "run_id": RUN,
        "job": "sync",
        "backfill_id": 7,
    }
    assert list(inside)[:5] == ["ts", "level", "logger", "message", "run_id"]
    assert set(outside) == {"ts", "level", "logger", "message"}
    assert outside["message"] == "outside"


def test_json_carries_extras_and_never_the_record_attributes() -> None:
    stream = configured(format="json")
    event = {"kind": "breached", "lead": "L-1", "due": "2026-12-01T09:00:00Z"}
    when = datetime(2026, 12, 1, tzinfo=UTC)
    sync_log.warning(
        "breach", extra={"sla_event": event, "when": when, "key": Secret("k-123"), "n": 2.5}
    )

    (line,) = json_lines(stream)
    assert line["sla_event"] == event
    assert line["when"] == str(when)
    assert line["key"] == "***"
    assert line["n"] == 2.5
    leaked = set(line) & set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__)
    assert leaked == set()
    assert "k-123" not in stream.getvalue()


def test_an_exception_is_exc_in_json_and_follows_the_line_in_text() -> None:
    json_stream = configured(format="json")
    try:
        raise ValueError("boom")
    except ValueError:
        sync_log.exception("write-back failed")
    (line,) = json_lines(json_stream)
    assert line["message"] == "write-back failed"
    assert line["exc"].startswith("Traceback (most recent call last):")
    assert line["exc"].endswith("ValueError: boom")

    text_stream = configured()
    try:
        raise ValueError("boom")
    except ValueError:
        sync_log.exception("write-back failed")
    first, *rest = text_stream.getvalue().splitlines()
    assert first.endswith("ERROR leadsync.sync write-back failed")
    assert rest[0] == "Traceback (most recent call last):"
    assert rest[-1] == "ValueError: boom"


def test_sensitive_keys_are_masked_in_json_nested_ones_too() -> None:
    stream = configured(format="json")
    with run_context(RUN, api_token="ctx-tok"):
        sync_log.info(
            "login",
            extra={
                "access_token": "tok-1",
                "Authorization": "Bearer tok-2",
                "db_PASSWORD": "pw-3",
                "client_secret": None,
                "request": {"headers": {"authorization": "tok-4"}, "url": "/x"},
                "attempts": [{"refresh_token": "tok-5", "status": 401}],
                "records": 3,
            },
        )

    (line,) = json_lines(stream)
    for key in ("access_token", "Authorization", "db_PASSWORD", "client_secret", "api_token"):
        assert line[key] == "***"
    assert line["request"] == {"headers": {"authorization": "***"}, "url": "/x"}
    assert line["attempts"] == [{"refresh_token": "***", "status": 401}]
    assert line["records"] == 3
    for value in ("ctx-tok", "tok-1", "tok-2", "pw-3", "tok-4", "tok-5"):
        assert value not in stream.getvalue()


def test_nested_runs_restore_the_outer_run_and_its_fields() -> None:
    stream = configured(format="json")
    assert current_run_id() is None
    with run_context("outer", job="service"):
        with run_context("inner", backfill_id="b1") as inner:
            assert inner == current_run_id() == "inner"
            store_log.info("in inner")
        assert current_run_id() == "outer"
        store_log.info("in outer")
    assert current_run_id() is None
    store_log.info("outside")

    lines = [
        {key: line.get(key) for key in ("run_id", "job", "backfill_id")}
        for line in json_lines(stream)
    ]
    assert lines == [
        {"run_id": "inner", "job": "service", "backfill_id": "b1"},
        {"run_id": "outer", "job": "service", "backfill_id": None},
        {"run_id": None, "job": None, "backfill_id": None},
    ]


def test_a_thread_started_in_a_copied_context_carries_the_run() -> None:
    stream = configured(format="json")

    def work(label: str) -> None:
        store_log.info(label)

    with run_context(RUN, job="sync"):
        copied = threading.Thread(target=contextvars.copy_context().run, args=(work, "copied"))
        # A plain thread starts with an empty context: the documented limitation.
        plain = threading.Thread(target=work, args=("plain",))
        for thread in (copied, plain):
            thread.start()
            thread.join()

    by_message = {line["message"]: line for line in json_lines(stream)}
    assert by_message["copied"]["run_id"] == RUN
    assert by_message["copied"]["job"] == "sync"
    assert "run_id" not in by_message["plain"]


def test_configuring_twice_replaces_the_handler_instead_of_adding_one() -> None:
    first = configured()
    second = configured(format="json")
    sync_log.info("once")

    assert first.getvalue() == ""
    assert [line["message"] for line in json_lines(second)] == ["once"]
    leadsync = logging.getLogger("leadsync")
    assert len(leadsync.handlers) == 1
    assert leadsync.propagate is True


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("DEBUG", ["debug", "info", "warning"]),
        ("info", ["info", "warning"]),
        ("WARNING", ["warning"]),
    ],
)
def test_level_filters_leadsync_lines(level: str, expected: list[str]) -> None:
    stream = configured(level=level, format="json")
    sync_log.debug("debug")
    sync_log.info("info")
    sync_log.warning("warning")
    assert [line["message"] for line in json_lines(stream)] == expected


def test_library_loggers_stay_at_warning_and_share_the_format() -> None:
    stream = configured(level="DEBUG", format="json")
    urllib3_log = logging.getLogger("urllib3.connectionpool")
    with run_context(RUN):
        urllib3_log.debug("Starting new HTTPS connection")
        urllib3_log.warning("Retrying after connection broken")

    (line,) = json_lines(stream)
    assert line["logger"] == "urllib3.connectionpool"
    assert line["message"] == "Retrying after connection broken"
    assert line["run_id"] == RUN


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"level": "LOUD"}, "unknown log level 'LOUD'"),
        ({"format": "xml"}, "unknown log format 'xml'"),
    ],
)
def test_unknown_level_or_format_is_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        configure_logging(**options)


@pytest.mark.parametrize("fields", [{"msg": "x"}, {"levelname": "x"}, {"message": "x"}])
def test_run_fields_cannot_shadow_record_attributes(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="log record's own names"), run_context(RUN, **fields):
        pass


def test_a_run_id_must_not_be_empty() -> None:
    with pytest.raises(ValueError, match="non-empty"), run_context(""):
        pass


def test_new_run_ids_are_distinct_hex() -> None:
    first, second = new_run_id(), new_run_id()
    assert first != second
    assert re.fullmatch(r"[0-9a-f]{32}", first)


def test_default_stream_is_the_current_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging()
    sync_log.warning("to stderr")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.rstrip().endswith("WARNING leadsync.sync to stderr")
    assert sys.stderr is not sys.__stderr__


def test_caplog_still_sees_records_while_configured_and_after_reset(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="leadsync.sync")
    stream = configured()
    with run_context(RUN):
        sync_log.info("seen twice")
    reset_logging()
    sync_log.warning("seen by caplog only")

    assert [record.getMessage() for record in caplog.records] == [
        "seen twice",
        "seen by caplog only",
    ]
    assert caplog.records[0].__dict__["run_id"] == RUN
    assert stream.getvalue().count("\n") == 1
    assert logging.getLogger("leadsync").handlers == []
