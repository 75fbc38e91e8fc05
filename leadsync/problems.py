"""Mistakes in the files people edit, reported the same way everywhere.

A `ConfigProblem` names the file, the key (dotted, as in the TOML, `[i]` for array items) and,
where it can be found, the line. `ConfigError` carries all the problems of a load at once, so
`leadsync check` lists every one and every command exits 2 without a traceback.

The one place for both halves of that: `validation_problems` turns a pydantic ValidationError
into located problems (one wording for every file), and `TomlLines` finds the line of a key.
"""

from __future__ import annotations

import contextlib
import difflib
import re
import tomllib
import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from leadsync.errors import ConfigError

__all__ = [
    "FILE_ENCODING",
    "PROBLEMS_ERROR",
    "ConfigError",
    "ConfigProblem",
    "TomlLines",
    "below",
    "dotted",
    "parse_toml",
    "read_text",
    "read_toml",
    "unknown_key_message",
    "validation_problems",
]

# How every file people edit is read: UTF-8, a byte-order mark at its start (Windows editors
# save one) dropped, which tomllib would refuse as "Invalid statement" at line 1.
FILE_ENCODING = "utf-8-sig"

# The pydantic error type whose context carries (key below the error's, message) pairs: how
# one validator names the exact keys below it, several at once (mapping.validation.problems).
PROBLEMS_ERROR = "lead_definition"


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One mistake in a file the user edits."""

    file: str
    key: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


def read_text(path: Path) -> str:
    """A file the user edits, as text; a ConfigError naming it when it cannot be read."""
    try:
        return path.read_text(encoding=FILE_ENCODING)
    except FileNotFoundError:
        raise ConfigError([ConfigProblem(str(path), "", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as problem:
        raise ConfigError([ConfigProblem(str(path), "", f"cannot read: {problem}")]) from None


def parse_toml(text: str, *, file: str) -> dict[str, Any]:
    """`text` parsed as TOML; a ConfigError naming `file` and the line when it is not.

    tomllib says "at end of document" for a text cut short, which is its last line.
    """
    text = text.removeprefix("\ufeff")  # text not read by read_text: an upload, a stored copy
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as problem:
        message = str(problem)
        found = re.search(r"line (\d+)", message)
        line = int(found.group(1)) if found else max(1, len(text.splitlines()))
        raise ConfigError([ConfigProblem(file, "", f"not valid TOML: {message}", line)]) from None
    nul_keys = list(_keys_holding_nul(data))
    if nul_keys:
        lines = TomlLines(text)
        raise ConfigError(
            [ConfigProblem(file, key, _NUL_MESSAGE, lines.line_of(key)) for key in nul_keys]
        )
    return data


# TOML can spell U+0000 ("\u0000"), but no CRM field, no PostgreSQL text and no terminal
# keeps it: refused where it is written, not by the first record it would reach.
_NUL_MESSAGE = "holds a NUL character (U+0000), which no CRM and no store can keep"


def _keys_holding_nul(value: object, key: str = "") -> Iterable[str]:
    """The dotted keys of `value` (a parsed TOML table) whose name or text holds a NUL, the
    NUL shown escaped as TOML writes it."""
    if isinstance(value, str):
        if "\x00" in value:
            yield key
    elif isinstance(value, dict):
        for name, item in value.items():
            if "\x00" in name:
                escaped = name.replace("\x00", "\\u0000")
                yield below(key, f'"{escaped}"')
            else:
                yield from _keys_holding_nul(item, below(key, name))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _keys_holding_nul(item, f"{key}[{index}]")


def read_toml(path: Path) -> tuple[str, dict[str, Any]]:
    """The text and the parsed table of a TOML file the user edits."""
    text = read_text(path)
    return text, parse_toml(text, file=str(path))


# --------------------------------------------------------------------------------------------
# Validation errors as located problems
# --------------------------------------------------------------------------------------------


def validation_problems(
    invalid: ValidationError,
    *,
    file: str,
    lines: TomlLines,
    model: type[BaseModel],
    under: str = "",
    skip: Iterable[str] = (),
) -> list[ConfigProblem]:
    """Every error of `invalid` (raised validating `model`) as a problem of `file`, keyed
    below `under`, located by `lines`. Keys in `skip` (already reported otherwise) are left
    out. An unknown key names the key of `model` it is closest to, if any."""
    skipped = set(skip)
    found = []
    for error in invalid.errors():
        key = below(under, dotted(error["loc"]))
        for sub_key, message in _messages(error, model):
            full_key = below(key, sub_key)
            if full_key not in skipped:
                found.append(ConfigProblem(file, full_key, message, lines.line_of(full_key)))
    return found


def unknown_key_message(key: str, known: Iterable[str]) -> str:
    """What is said of an unknown `key`, with the known key it is closest to (a typo)."""
    close = difflib.get_close_matches(key, list(known), n=1)
    return f"unknown key (did you mean {close[0]!r}?)" if close else "unknown key"


def _messages(error: ErrorDetails, model: type[BaseModel]) -> list[tuple[str, str]]:
    kind = error["type"]
    if kind == PROBLEMS_ERROR:
        return list((error.get("ctx") or {})["problems"])
    if kind == "extra_forbidden":
        *parent, name = error["loc"]
        return [("", unknown_key_message(str(name), _keys_at(model, parent)))]
    if kind == "missing":
        return [("", "missing: this key is required")]
    # A validator's own ValueError reads as its message, not "Value error, ...".
    message = str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    value = error.get("input")
    if (kind.endswith("_type") or kind in _SHOW_VALUE) and _is_scalar(value):
        message = f"{message}, not {value!r}"
    return [("", message)]


# Errors whose message does not repeat the value refused: the problem names it.
_SHOW_VALUE = frozenset(
    {
        "literal_error",
        "finite_number",
        "greater_than",
        "greater_than_equal",
        "less_than",
        "less_than_equal",
        "string_pattern_mismatch",
        "enum",
    }
)


def _keys_at(model: type[BaseModel], location: Sequence[int | str]) -> list[str]:
    """The keys the models at `location` below `model` accept (pydantic's error names no
    model, so its location is followed down the annotations: models, lists, tables)."""
    kinds: list[Any] = [model]
    for part in location:
        kinds = [found for kind in kinds for found in _step(kind, part)]
    keys: dict[str, None] = {}
    for kind in kinds:
        for member in _members(kind):
            if isinstance(member, type) and issubclass(member, BaseModel):
                for name, field in member.model_fields.items():
                    keys[field.alias or name] = None
    return list(keys)


def _step(kind: Any, part: int | str) -> list[Any]:
    """What `kind` holds at `part` of a location."""
    found: list[Any] = []
    for member in _members(kind):
        origin = get_origin(member)
        if isinstance(member, type) and issubclass(member, BaseModel):
            if member.__name__ == part:  # a union's member names itself in the location
                found.append(member)
            for name, field in member.model_fields.items():
                if part in (name, field.alias):
                    found.append(field.annotation)
        elif isinstance(part, int) and origin in (list, tuple, set, frozenset, Sequence):
            args = [arg for arg in get_args(member) if arg is not Ellipsis]
            found.extend(args[part : part + 1] if origin is tuple and len(args) > 1 else args[:1])
        elif isinstance(part, str) and origin in (dict, Mapping):
            found.extend(get_args(member)[1:2])
    return found


def _members(kind: Any) -> list[Any]:
    """`kind` without its Annotated metadata, a union as its members."""
    if get_origin(kind) is Annotated:
        return _members(get_args(kind)[0])
    if get_origin(kind) in (Union, types.UnionType):
        return [found for member in get_args(kind) for found in _members(member)]
    return [kind]


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool | date)


def dotted(location: Iterable[int | str]) -> str:
    """A pydantic location as a key: `("fit", "rules", 2, "field")` -> `fit.rules[2].field`."""
    key = ""
    for part in location:
        key = below(key, f"[{part}]" if isinstance(part, int) else str(part))
    return key


def below(key: str, sub_key: str) -> str:
    """`sub_key` below `key`: `a` + `b` -> `a.b`, `a` + `[2]` -> `a[2]`."""
    if not sub_key:
        return key
    if not key or sub_key.startswith("["):
        return f"{key}{sub_key}"
    return f"{key}.{sub_key}"


# --------------------------------------------------------------------------------------------
# Where each key is: a position scanner for TOML that tomllib has already accepted
# --------------------------------------------------------------------------------------------

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _parent(key: str) -> str:
    """`a.b[2]` -> `a.b` -> `a` -> ``."""
    return key[: key.rindex("[")] if key.endswith("]") else key.rpartition(".")[0]


class TomlLines:
    """The line of each table, key and array item of a valid TOML text, by dotted key with
    `[i]` for items: `scoring.fit.rules[2].field`.

    tomllib keeps no positions. This follows `[table]` headers, arrays of tables, inline tables
    and arrays, dotted and quoted keys and multi-line strings.
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._at = 0
        self._line = 1
        self._lines: dict[str, int] = {}
        self._items: dict[str, int] = {}  # array of tables -> how many items so far
        # Read on the first question: most files loaded have no problem to locate, and reading
        # one costs more than loading it (every run loads the mapping and the definition).
        self._read = False

    def line_of(self, key: str) -> int | None:
        """The line of `key`, else of its nearest parent found (a missing key's table).
        Quoted segments (`value_map."Closed Won"`) are looked up unquoted, as TOML reads them."""
        if not self._read:
            self._read = True
            with contextlib.suppress(IndexError):  # a text tomllib refused: keep what was found
                self._document()
        key = key.replace('"', "")
        while key:
            if key in self._lines:
                return self._lines[key]
            key = _parent(key)
        return None

    # ------------------------------------------------------------------ the grammar

    def _document(self) -> None:
        table = ""
        while self._skip_blank(newlines=True):
            start = self._at
            if self._text.startswith("[[", self._at):
                table = self._header(new_item=True)
            elif self._peek() == "[":
                table = self._header(new_item=False)
            else:
                self._pair(table)
            if self._at == start:  # never loop on something unexpected
                self._advance(1)

    def _header(self, *, new_item: bool) -> str:
        self._advance(2 if new_item else 1)
        segments = self._key()
        line = self._line
        self._advance(self._text.index("]", self._at) - self._at + (2 if new_item else 1))
        path = ""
        for index, segment in enumerate(segments):
            path = below(path, segment)
            if new_item and index == len(segments) - 1:
                count = self._items.get(path, 0)
                self._items[path] = count + 1
                self._lines.setdefault(path, line)
                path = f"{path}[{count}]"
            elif path in self._items:  # a sub-table of the latest item of an array of tables
                path = f"{path}[{self._items[path] - 1}]"
            self._lines.setdefault(path, line)
        return path

    def _pair(self, table: str) -> None:
        path = table
        line = self._line
        for segment in self._key():
            path = below(path, segment)
            self._lines.setdefault(path, line)
        self._skip_blank(newlines=False)
        if self._peek() == "=":
            self._advance(1)
            self._skip_blank(newlines=False)
            self._value(path)

    def _key(self) -> list[str]:
        segments = []
        while self._skip_blank(newlines=False):
            if self._peek() in "\"'":
                start = self._at
                self._string()
                segments.append(self._text[start + 1 : self._at - 1])
            else:
                bare = _BARE_KEY.match(self._text, self._at)
                if not bare:
                    break
                segments.append(bare.group())
                self._advance(len(bare.group()))
            self._skip_blank(newlines=False)
            if self._peek() != ".":
                break
            self._advance(1)
        return segments

    def _value(self, path: str) -> None:
        char = self._peek()
        if char == "{":
            self._inline_table(path)
        elif char == "[":
            self._array(path)
        elif char in "\"'":
            self._string()
        else:  # numbers, booleans, dates: up to the next delimiter
            while self._at < len(self._text) and self._peek() not in ",]}\r\n#":
                self._advance(1)

    def _inline_table(self, path: str) -> None:
        self._advance(1)
        while self._skip_blank(newlines=True) and self._peek() != "}":
            if self._peek() == ",":
                self._advance(1)
            else:
                start = self._at
                self._pair(path)
                if self._at == start:
                    self._advance(1)
        self._advance(1)

    def _array(self, path: str) -> None:
        self._advance(1)
        index = 0
        while self._skip_blank(newlines=True) and self._peek() != "]":
            if self._peek() == ",":
                self._advance(1)
                continue
            item = f"{path}[{index}]"
            self._lines.setdefault(item, self._line)
            start = self._at
            self._value(item)
            if self._at == start:
                self._advance(1)
            index += 1
        self._advance(1)

    def _string(self) -> None:
        quote = self._peek()
        escapes = quote == '"'
        closing = quote * 3 if self._text.startswith(quote * 3, self._at) else quote
        self._advance(len(closing))
        while not self._text.startswith(closing, self._at):
            self._advance(2 if escapes and self._peek() == "\\" else 1)
        self._advance(len(closing))
        while len(closing) == 3 and self._peek() == quote:  # up to two quotes end the content
            self._advance(1)

    # ------------------------------------------------------------------ characters

    def _peek(self) -> str:
        return self._text[self._at] if self._at < len(self._text) else ""

    def _advance(self, count: int) -> None:
        if self._at + count > len(self._text):
            raise IndexError("past the end")
        self._line += self._text.count("\n", self._at, self._at + count)
        self._at += count

    def _skip_blank(self, *, newlines: bool) -> bool:
        """Skip spaces, comments and (when allowed) line ends; False at the end of the text."""
        blank = " \t\r\n" if newlines else " \t"
        while self._at < len(self._text):
            char = self._text[self._at]
            if char == "#":
                end = self._text.find("\n", self._at)
                self._advance((len(self._text) if end < 0 else end) - self._at)
            elif char in blank:
                self._advance(1)
            else:
                return True
        return False
