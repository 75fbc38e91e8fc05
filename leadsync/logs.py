"""Logging for every command and the service: one handler, and the run id on every line.

`configure_logging()` installs one handler on the `leadsync` logger, and on the few library
loggers in `LIBRARY_LOGGERS` (held at WARNING or above), so their warnings come out in the
same format, and a JSON log stays one object per line. Calling it again replaces that handler.
The `leadsync` logger keeps `propagate = True`, so pytest's `caplog` still sees every record;
the flip side is that a handler someone else puts on the root logger prints each line again.

A run is opened with `run_context()`. The handler's filter copies the current run id and the
run's fields onto every record it handles, so every line logged during the run carries them,
from modules that know nothing of runs too.

The run id lives in a `contextvars.ContextVar`, so it follows the *context*, not the thread:
asyncio tasks and `asyncio.to_thread` copy the context, but a plain `threading.Thread`,
`ThreadPoolExecutor.submit` and APScheduler's executors start with an empty one. Start such
work as `Thread(target=contextvars.copy_context().run, args=(work,))`, or open a
`run_context()` inside the job itself.
"""

from __future__ import annotations

import contextvars
import json
import logging
import math
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Final, Literal, TextIO

from leadsync.secrets import MASK

__all__ = [
    "LIBRARY_LOGGERS",
    "configure_logging",
    "current_run_id",
    "new_run_id",
    "redact",
    "reset_logging",
    "run_context",
    "run_id",
]

# Libraries whose INFO and DEBUG lines are noise for an operator (urllib3 logs every request,
# APScheduler every job start): they stay at WARNING even when leadsync logs at DEBUG.
LIBRARY_LOGGERS: Final = (
    "urllib3",
    "requests",
    "simple_salesforce",
    "hubspot",
    "apscheduler",
    "sqlalchemy",
    "alembic",
)

# Extras and run fields whose key contains one of these are masked in JSON output: a safety
# net under `Secret`, for the token that reaches a log call as a plain string.
SENSITIVE_KEY_PARTS: Final = ("token", "password", "secret", "authorization")

run_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("leadsync_run_id", default=None)
_EMPTY: Final[Mapping[str, object]] = MappingProxyType({})
_run_fields: contextvars.ContextVar[Mapping[str, object]] = contextvars.ContextVar(
    "leadsync_run_fields", default=_EMPTY
)

# Which record attributes the filter set from the run's fields, so JSON lists them first.
_FIELDS_ATTR: Final = "_leadsync_run_fields"
# Every attribute a record has before `extra=` and the filter add theirs; `message` and
# `asctime` are added by `Formatter.format`, which another handler may have run already.
_STANDARD_ATTRS: Final = frozenset(
    logging.LogRecord("", logging.INFO, "", 0, "", None, None).__dict__
) | {"message", "asctime", "run_id", _FIELDS_ATTR}
_SHORT_RUN_ID: Final = 8
# Deeper structures than this are written with str(): a cycle must not recurse forever.
_MAX_DEPTH: Final = 20


def new_run_id() -> str:
    """A fresh run id: 32 hex digits, the first 8 of which the text format shows."""
    return uuid.uuid4().hex


def current_run_id() -> str | None:
    """The id of the run open in this context, or None outside any run."""
    return run_id.get()


@contextmanager
def run_context(run: str, /, **fields: object) -> Iterator[str]:
    """Open run `run` for the duration of the block; yields the run id.

    `fields` (e.g. `job="sync"`, `backfill_id=...`) go on every record with the run id. A run
    opened inside another replaces its id and adds to (or overrides) its fields; leaving it
    restores the outer run.
    """
    if not isinstance(run, str) or not run:
        raise ValueError(f"a run id must be a non-empty string, not {run!r}")
    reserved = sorted(name for name in fields if name in _STANDARD_ATTRS)
    if reserved:
        raise ValueError(f"run fields cannot use the log record's own names: {reserved}")
    run_token = run_id.set(run)
    fields_token = _run_fields.set(MappingProxyType({**_run_fields.get(), **fields}))
    try:
        yield run
    finally:
        _run_fields.reset(fields_token)
        run_id.reset(run_token)


def redact(fields: Mapping[str, object]) -> dict[str, object]:
    """`fields` with the value of every sensitive key masked, in nested mappings too.

    A key is sensitive when it contains one of `SENSITIVE_KEY_PARTS`, in any case. (Unlike
    `leadsync.secrets.redact`, which masks known secret values inside a text.)
    """
    return {key: _redact_value(key, value, 0) for key, value in fields.items()}


def _redact_value(key: object, value: object, depth: int) -> object:
    lowered = str(key).lower()
    if any(part in lowered for part in SENSITIVE_KEY_PARTS):
        return MASK
    if depth >= _MAX_DEPTH:
        return value
    if isinstance(value, Mapping):
        return {k: _redact_value(k, v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        # A list under a harmless key can hold mappings with sensitive keys.
        return [_redact_value("", item, depth + 1) for item in value]
    return value


def _jsonable(value: object, depth: int = 0) -> object:
    """`value` as plain JSON data; anything JSON has no type for becomes its str()."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        # json.dumps would write NaN and Infinity, which are not JSON.
        return value if math.isfinite(value) else str(value)
    if depth < _MAX_DEPTH:
        if isinstance(value, Mapping):
            return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [_jsonable(item, depth + 1) for item in value]
    return str(value)


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, tz=UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


class _RunFilter(logging.Filter):
    """Copies the current run id and run fields onto each record; an explicit extra wins."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = run_id.get()
        if current is not None and "run_id" not in record.__dict__:
            record.run_id = current
        fields = _run_fields.get()
        for name, value in fields.items():
            record.__dict__.setdefault(name, value)
        record.__dict__.setdefault(_FIELDS_ATTR, tuple(fields))
        return True


class _TextFormatter(logging.Formatter):
    """`2026-12-01T10:00:00.123Z INFO leadsync.sync [run 1a2b3c4d] message`."""

    def format(self, record: logging.LogRecord) -> str:
        run = record.__dict__.get("run_id")
        run_part = f" [run {str(run)[:_SHORT_RUN_ID]}]" if run else ""
        line = f"{_timestamp(record)} {record.levelname} {record.name}{run_part} "
        line += record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class _JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, message, run id, fields, extras, exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        attrs = record.__dict__
        details: dict[str, object] = {}
        if attrs.get("run_id") is not None:
            details["run_id"] = attrs["run_id"]
        for name in attrs.get(_FIELDS_ATTR, ()):
            if name in attrs:
                details[name] = attrs[name]
        for name, value in attrs.items():
            if name not in _STANDARD_ATTRS and name not in entry:
                details.setdefault(name, value)
        entry.update(redact(details))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(_jsonable(entry))


class _Handler(logging.StreamHandler[TextIO]):
    """The one handler leadsync installs; without a stream it writes to the current stderr.

    Looking `sys.stderr` up on each line (as `logging.lastResort` does) keeps the handler
    writing to the right place after something swaps stderr, as pytest's capsys does.
    """

    def __init__(self, stream: TextIO | None) -> None:
        # StreamHandler.__init__ would pin sys.stderr as it is now.
        logging.Handler.__init__(self)
        self._fixed_stream = stream

    @property
    def stream(self) -> TextIO:
        return self._fixed_stream if self._fixed_stream is not None else sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        self._fixed_stream = value


_FORMATTERS: Final[Mapping[str, type[logging.Formatter]]] = {
    "text": _TextFormatter,
    "json": _JsonFormatter,
}


def _level_number(level: str) -> int:
    number = logging.getLevelNamesMapping().get(level.upper())
    if number is None:
        raise ValueError(f"unknown log level {level!r}")
    return number


def configure_logging(
    *,
    level: str = "INFO",
    format: Literal["text", "json"] = "text",
    stream: TextIO | None = None,
) -> None:
    """Send leadsync's log lines, at `level` and above, to `stream` (default: stderr).

    Replaces the handler an earlier call installed. Library loggers stay at WARNING, or at
    `level` when that is higher.
    """
    number = _level_number(level)
    formatter = _FORMATTERS.get(format)
    if formatter is None:
        raise ValueError(f"unknown log format {format!r}: expected 'text' or 'json'")
    handler = _Handler(stream)
    handler.setFormatter(formatter())
    handler.addFilter(_RunFilter())
    _remove_handlers()
    for name in ("leadsync", *LIBRARY_LOGGERS):
        logging.getLogger(name).addHandler(handler)
    logging.getLogger("leadsync").setLevel(number)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(max(number, logging.WARNING))


def reset_logging() -> None:
    """Undo `configure_logging()`: remove its handler and set the loggers' levels back to NOTSET."""
    _remove_handlers()
    for name in ("leadsync", *LIBRARY_LOGGERS):
        logging.getLogger(name).setLevel(logging.NOTSET)


def _remove_handlers() -> None:
    for name in ("leadsync", *LIBRARY_LOGGERS):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if isinstance(handler, _Handler):
                handler.flush()
                logger.removeHandler(handler)
