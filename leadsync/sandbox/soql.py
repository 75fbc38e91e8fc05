"""The subset of SOQL a sync worker sends, for the Salesforce sandbox: parse once, run many times.

Supported: `SELECT f1, f2 | COUNT() FROM Object [WHERE ...] [ORDER BY ...] [LIMIT n] [OFFSET n]`
with AND/OR/NOT, parentheses, `= != <> < <= > >= LIKE IN NOT IN`, and the literals a worker
needs, including TODAY, YESTERDAY and LAST_N_DAYS:n. As in Salesforce, names and literal types
are checked while parsing and failures carry Salesforce's error codes and message texts.

The WHERE clause is compiled straight into closures while it is parsed, so filtering a record
costs a few function calls and no tree walk. Datetimes are compared as the canonical UTC strings
the sandbox stores (`2024-05-01T10:00:00.000+0000`): those order exactly as the instants do.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from leadsync.sandbox.ids import eighteen_character_id
from leadsync.sandbox.schema import SalesforceField, SalesforceObject, salesforce_object

Record = Mapping[str, Any]
Predicate = Callable[[Record], bool]
_ValueTest = Callable[[Any], bool]

# Salesforce refuses deeper paging by OFFSET; connectors must page with a cursor instead.
MAX_OFFSET = 2000
# "By default, 100,000 characters" (Salesforce Developer Limits, "SOQL and SOSL Limits for
# Search Queries"). A GET query meets the URI limit (16,384 bytes) long before; a Bulk query
# job's SOQL travels in a body and meets this one. The message is *unconfirmed* (older orgs
# said "SOQL statements cannot be longer than 20,000 characters").
MAX_STATEMENT_CHARACTERS = 100_000
# Guards the recursive descent against stack exhaustion; real queries nest a few levels at most.
_MAX_NESTING = 100


class SoqlError(Exception):
    """A query Salesforce would refuse, with its `errorCode` and `message`."""

    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(f"{error_code}: {message}")
        self.error_code = error_code
        self.message = message


@dataclass(frozen=True, slots=True)
class OrderItem:
    """One ORDER BY key; `sort_key` maps a record to a value that sorts ascending correctly."""

    name: str
    descending: bool
    nulls_first: bool
    sort_key: Callable[[Record], tuple[Any, ...]] = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class SoqlQuery:
    sobject: SalesforceObject = field(repr=False)
    fields: tuple[str, ...]  # canonical names in SELECT order; empty for COUNT()
    count_only: bool
    limit: int | None
    offset: int | None
    order_by: tuple[OrderItem, ...] = ()
    where: Predicate | None = field(default=None, repr=False, compare=False)


def parse(
    text: str,
    *,
    now: datetime | None = None,
    objects: dict[str, SalesforceObject] | None = None,
) -> SoqlQuery:
    """Parse and type-check `text`, compiling its WHERE clause; raises only `SoqlError`.

    `now` anchors TODAY, YESTERDAY and LAST_N_DAYS (default: the current time); naive values
    are taken as UTC, the sandbox's only time zone. `objects` is the org's catalogue (default:
    every object with every field, see `schema.salesforce_objects`).
    """
    if len(text) > MAX_STATEMENT_CHARACTERS:
        raise SoqlError(
            "MALFORMED_QUERY",
            f"SOQL statements cannot be longer than {MAX_STATEMENT_CHARACTERS} characters",
        )
    cursor = _Cursor(text)
    cursor.expect_word("SELECT")
    selected = _select_list(cursor)
    cursor.expect_word("FROM")
    sobject = _lookup_object(cursor, cursor.expect_name(), objects)
    fields = () if selected is None else _selected_fields(cursor, sobject, selected)
    clauses = _ClauseParser(cursor, sobject, _utc_today(now))
    where = clauses.where_clause()
    order_by = clauses.order_by_clause()
    limit = _row_count_clause(cursor, "LIMIT")
    offset = _row_count_clause(cursor, "OFFSET")
    cursor.expect_end()
    if offset is not None and offset > MAX_OFFSET:
        raise SoqlError(
            "NUMBER_OUTSIDE_VALID_RANGE", f"Maximum SOQL offset allowed is {MAX_OFFSET}"
        )
    return SoqlQuery(sobject, fields, selected is None, limit, offset, order_by, where)


def run(query: SoqlQuery, records: Iterable[Record]) -> list[Record]:
    """The records `query` matches, sorted and paged as it asks; the dicts are not copied."""
    matched = list(records) if query.where is None else list(filter(query.where, records))
    # Sorting by the last key first, then by each earlier one, gives a multi-key order
    # because Python's sort is stable (also with reverse=True).
    for item in reversed(query.order_by):
        matched.sort(key=item.sort_key, reverse=item.descending)
    start = query.offset or 0
    stop = None if query.limit is None else start + query.limit
    return matched[start:stop]


def project(query: SoqlQuery, record: Record) -> dict[str, Any]:
    """The selected fields of `record`, canonically named, in SELECT order; missing ones null."""
    return {name: record.get(name) for name in query.fields}


# --------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------

_TOKEN_PATTERN = re.compile(
    r"(?P<space>\s+)"
    r"|(?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))"
    r"|(?P<date>\d{4}-\d{2}-\d{2})"
    r"|(?P<number>[+-]?\d+(?:\.\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<string>'(?:[^'\\]|\\.)*')"
    r"|(?P<op>!=|<>|<=|>=|=|<|>)"
    r"|(?P<punct>[,():])",
    # ASCII: a Unicode digit or space must not slip into a number, date or name.
    re.ASCII | re.DOTALL,
)

# Words the grammar uses; none of them can name a field or an object.
_RESERVED = frozenset(
    {
        *("SELECT", "FROM", "WHERE", "ORDER", "BY", "ASC", "DESC", "NULLS", "LIMIT", "OFFSET"),
        *("AND", "OR", "NOT", "IN", "LIKE", "NULL", "TRUE", "FALSE"),
        *("TODAY", "YESTERDAY", "LAST_N_DAYS"),
    }
)

_ESCAPES = {
    "'": "'",
    '"': '"',
    "\\": "\\",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "b": "\b",
    "f": "\f",
    "_": "_",
    "%": "%",
}


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # space | datetime | date | number | name | string | op | punct | end
    text: str
    pos: int

    @property
    def word(self) -> str:
        """The upper-cased text of a name token (keywords are case-insensitive), else ''."""
        return self.text.upper() if self.kind == "name" else ""


def _tokenize(text: str) -> list[_Token]:
    tokens = []
    pos = 0
    while pos < len(text):
        match = _TOKEN_PATTERN.match(text, pos)
        if match is None:
            raise _lexing_error(text, pos)
        token = _Token(str(match.lastgroup), match.group(), pos)
        if token.kind == "string":
            _check_escapes(text, token)
        if token.kind != "space":
            tokens.append(token)
        pos = match.end()
    tokens.append(_Token("end", "<EOF>", len(text)))
    return tokens


def _lexing_error(text: str, pos: int) -> SoqlError:
    if text[pos] == "'":  # the string pattern fails only when the closing quote is missing
        return _located_error(
            "MALFORMED_QUERY", text, len(text), "mismatched character '<EOF>' expecting '''"
        )
    return _located_error("MALFORMED_QUERY", text, pos, f"unexpected token: '{text[pos]}'")


def _check_escapes(text: str, token: _Token) -> None:
    try:
        _string_units(token.text[1:-1])
    except ValueError as illegal:
        detail = (
            f"Invalid string literal {token.text}. "
            f"Illegal character sequence '{illegal}' in string literal."
        )
        raise _located_error("MALFORMED_QUERY", text, token.pos, detail) from None


def _string_units(body: str) -> list[tuple[str, bool]]:
    """Each character of a quoted string's body, flagged when it was written escaped."""
    units = []
    chars: Iterator[str] = iter(body)
    for char in chars:
        if char != "\\":
            units.append((char, False))
            continue
        escaped = next(chars, "")
        if escaped not in _ESCAPES:  # also a lone backslash at the end
            raise ValueError(char + escaped)
        units.append((_ESCAPES[escaped], True))
    return units


def _plain_string(body: str) -> str:
    # \_ and \% only mean something to LIKE; elsewhere they stay as written.
    return "".join(
        "\\" + char if escaped and char in "_%" else char for char, escaped in _string_units(body)
    )


def _like_regex(body: str) -> str:
    parts = []
    for char, escaped in _string_units(body):
        if char == "%" and not escaped:
            parts.append(".*")
        elif char == "_" and not escaped:
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return "".join(parts)


def _located_error(error_code: str, text: str, pos: int, detail: str) -> SoqlError:
    """An error in Salesforce's layout: the offending line, a caret, its row and column."""
    line_start = text.rfind("\n", 0, pos) + 1
    line_end = text.find("\n", pos)
    line = text[line_start : len(text) if line_end == -1 else line_end]
    row = text.count("\n", 0, pos) + 1
    column = pos - line_start + 1
    caret = " " * (column - 1) + "^"
    return SoqlError(error_code, f"\n{line}\n{caret}\nERROR at Row:{row}:Column:{column}\n{detail}")


class _Cursor:
    """The token stream, with the look-ahead and error helpers the grammar needs."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._tokens = _tokenize(text)
        self._index = 0

    def peek(self, ahead: int = 0) -> _Token:
        return self._tokens[min(self._index + ahead, len(self._tokens) - 1)]

    def advance(self) -> _Token:
        token = self._tokens[self._index]
        if token.kind != "end":
            self._index += 1
        return token

    def accept_word(self, *words: str) -> _Token | None:
        return self.advance() if self.peek().word in words else None

    def expect_word(self, word: str) -> _Token:
        token = self.advance()
        if token.word != word:
            raise self.unexpected(token)
        return token

    def accept_punct(self, char: str) -> bool:
        token = self.peek()
        if token.kind == "punct" and token.text == char:
            self.advance()
            return True
        return False

    def expect_punct(self, char: str) -> None:
        if not self.accept_punct(char):
            raise self.unexpected(self.peek())

    def expect_name(self) -> _Token:
        token = self.advance()
        if token.kind != "name" or token.word in _RESERVED:
            raise self.unexpected(token)
        return token

    def expect_whole_number(self) -> int:
        token = self.advance()
        if token.kind != "number" or not token.text.isdigit():
            raise self.unexpected(token)
        return self.integer(token)

    def integer(self, token: _Token) -> int:
        try:
            return int(token.text)
        except ValueError:  # beyond Python's limit on digits converted from text
            raise self.error_at(token.pos, "MALFORMED_QUERY", "number too large") from None

    def expect_end(self) -> None:
        token = self.peek()
        if token.kind != "end":
            raise self.unexpected(token)

    def unexpected(self, token: _Token) -> SoqlError:
        shown = token.text if token.kind == "end" else f"'{token.text}'"
        return self.error_at(token.pos, "MALFORMED_QUERY", f"unexpected token: {shown}")

    def error_at(self, pos: int, error_code: str, detail: str) -> SoqlError:
        return _located_error(error_code, self.text, pos, detail)


# --------------------------------------------------------------------------------------------
# SELECT and FROM
# --------------------------------------------------------------------------------------------


def _select_list(cursor: _Cursor) -> list[_Token] | None:
    """The selected field names, or None for COUNT()."""
    if cursor.peek().word == "COUNT" and cursor.peek(1).text == "(":
        cursor.advance()
        cursor.expect_punct("(")
        cursor.expect_punct(")")
        return None
    names = [cursor.expect_name()]
    while cursor.accept_punct(","):
        names.append(cursor.expect_name())
    return names


def _lookup_object(
    cursor: _Cursor, token: _Token, objects: dict[str, SalesforceObject] | None
) -> SalesforceObject:
    sobject = salesforce_object(token.text, objects)
    if sobject is None:
        detail = (
            f"sObject type '{token.text}' is not supported. If you are attempting to use a custom"
            " object, be sure to append the '__c' after the entity name. Please reference your"
            " WSDL or the describe call for the appropriate names."
        )
        raise cursor.error_at(token.pos, "INVALID_TYPE", detail)
    return sobject


def _lookup_field(cursor: _Cursor, sobject: SalesforceObject, token: _Token) -> SalesforceField:
    sf_field = sobject.field_named(token.text)
    if sf_field is None:
        detail = (
            f"No such column '{token.text}' on entity '{sobject.name}'. If you are attempting to"
            " use a custom field, be sure to append the '__c' after the custom field name. Please"
            " reference your WSDL or the describe call for the appropriate names."
        )
        raise cursor.error_at(token.pos, "INVALID_FIELD", detail)
    return sf_field


def _selected_fields(
    cursor: _Cursor, sobject: SalesforceObject, names: list[_Token]
) -> tuple[str, ...]:
    chosen: list[str] = []
    for token in names:
        name = _lookup_field(cursor, sobject, token).name
        if name in chosen:
            raise cursor.error_at(token.pos, "MALFORMED_QUERY", f"duplicate field selected: {name}")
        chosen.append(name)
    return tuple(chosen)


def _row_count_clause(cursor: _Cursor, word: str) -> int | None:
    if cursor.accept_word(word) is None:
        return None
    return cursor.expect_whole_number()


# --------------------------------------------------------------------------------------------
# Field types
# --------------------------------------------------------------------------------------------

# How SOQL treats each schema type: text compares case-insensitively, ids exactly.
_CATEGORIES = {
    "string": "text",
    "email": "text",
    "phone": "text",
    "url": "text",
    "picklist": "text",
    "textarea": "text",
    "id": "id",
    "reference": "id",
    "int": "number",
    "double": "number",
    "currency": "number",
    "percent": "number",
    "boolean": "boolean",
    "date": "date",
    "datetime": "datetime",
}

_ACCEPTED_LITERALS = {
    "text": ("string",),
    "id": ("string",),
    "number": ("number",),
    "boolean": ("boolean",),
    "date": ("date", "relative"),
    "datetime": ("datetime", "relative"),
}

# The type names Salesforce's messages use.
_SOQL_TYPE_NAMES = {
    "id": "id",
    "reference": "id",
    "int": "integer",
    "double": "double",
    "currency": "double",
    "percent": "double",
    "boolean": "boolean",
    "date": "date",
    "datetime": "dateTime",
}

# Long text areas cannot be filtered or sorted in SOQL; short ones (255 or less) can.
_LONG_TEXT_AREA = 255


def _category(sf_field: SalesforceField) -> str:
    return _CATEGORIES.get(sf_field.type, "text")


def _is_long_text(sf_field: SalesforceField) -> bool:
    return sf_field.type == "textarea" and sf_field.length > _LONG_TEXT_AREA


def _type_mismatch(sf_field: SalesforceField) -> str:
    type_name = _SOQL_TYPE_NAMES.get(sf_field.type, "string")
    quoting = "should be" if _category(sf_field) in ("text", "id") else "should not be"
    return (
        f"value of filter criterion for field '{sf_field.name}' must be of type {type_name}"
        f" and {quoting} enclosed in quotes"
    )


# --------------------------------------------------------------------------------------------
# Literals
# --------------------------------------------------------------------------------------------

_DATETIME_PARTS = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:Z|([+-])(\d{2}):?(\d{2}))",
    re.ASCII,
)


@dataclass(frozen=True, slots=True)
class _DayRange:
    """A relative date literal resolved against today: days `first` up to, not including, `end`.

    None stands for a bound beyond the calendar (LAST_N_DAYS with a huge n).
    """

    first: date | None
    end: date | None


@dataclass(frozen=True, slots=True)
class _Literal:
    kind: str  # string | number | boolean | null | date | datetime | relative
    value: str | int | float | bool | _DayRange | None
    pos: int
    body: str = ""  # a string literal as written between its quotes, for LIKE


def _utc_today(now: datetime | None) -> date:
    if now is None:
        return datetime.now(UTC).date()
    return now.date() if now.tzinfo is None else now.astimezone(UTC).date()


def _shift(day: date, days: int) -> date | None:
    try:
        return day + timedelta(days=days)
    except OverflowError:
        return None


def _utc_datetime_text(lexeme: str) -> str | None:
    """`lexeme` as the stored form `YYYY-MM-DDTHH:MM:SS.sss+0000` in UTC, or None if invalid."""
    parts = _DATETIME_PARTS.fullmatch(lexeme)
    if parts is None:
        return None
    year, month, day, hour, minute, second, fraction, sign, off_hours, off_minutes = parts.groups()
    # Stored values keep milliseconds only; a finer literal could not compare exactly.
    if fraction is not None and len(fraction) > 3:
        return None
    millis = int((fraction or "0").ljust(3, "0"))
    try:
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), millis * 1000
        )
        if sign is not None:
            if int(off_hours) > 23 or int(off_minutes) > 59:
                return None
            offset = timedelta(hours=int(off_hours), minutes=int(off_minutes))
            moment = moment - offset if sign == "+" else moment + offset
    except (ValueError, OverflowError):
        return None
    # Salesforce keeps datetimes to the second and ignores a literal's milliseconds when it
    # compares ("The system currently ignores the milliseconds", salesforce.stackexchange.com
    # question 234824): `>= ...T10:00:00.900Z` matches a stamp of 10:00:00.000.
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:"
        f"{moment.minute:02d}:{moment.second:02d}.000+0000"
    )


# --------------------------------------------------------------------------------------------
# WHERE and ORDER BY
# --------------------------------------------------------------------------------------------


class _ClauseParser:
    """Parses the clauses that name fields of `sobject`, compiling them as it goes."""

    def __init__(self, cursor: _Cursor, sobject: SalesforceObject, today: date) -> None:
        self._cursor = cursor
        self._sobject = sobject
        self._today = today

    def where_clause(self) -> Predicate | None:
        if self._cursor.accept_word("WHERE") is None:
            return None
        return self._condition(depth=0)

    def order_by_clause(self) -> tuple[OrderItem, ...]:
        if self._cursor.accept_word("ORDER") is None:
            return ()
        self._cursor.expect_word("BY")
        items = [self._order_item()]
        while self._cursor.accept_punct(","):
            items.append(self._order_item())
        return tuple(items)

    # -- WHERE ---------------------------------------------------------------------------

    def _condition(self, depth: int) -> Predicate:
        if depth > _MAX_NESTING:
            raise self._cursor.error_at(
                self._cursor.peek().pos, "MALFORMED_QUERY", "too many nested parentheses"
            )
        # SOQL's grammar lets NOT negate only a whole (sub)expression: `a AND NOT b` is
        # refused, `a AND (NOT b)` is fine (jetstreamapp/soql-parser-js#201).
        if self._cursor.accept_word("NOT") is not None:
            return _negation(self._operand(depth))
        operands = [self._operand(depth)]
        connector = ""
        while (token := self._cursor.accept_word("AND", "OR")) is not None:
            # Salesforce refuses AND and OR side by side without parentheses.
            if connector and token.word != connector:
                raise self._cursor.unexpected(token)
            connector = token.word
            operands.append(self._operand(depth))
        return _any_of(operands) if connector == "OR" else _all_of(operands)

    def _operand(self, depth: int) -> Predicate:
        if self._cursor.accept_punct("("):
            predicate = self._condition(depth + 1)
            self._cursor.expect_punct(")")
            return predicate
        return self._comparison()

    def _comparison(self) -> Predicate:
        name_token = self._cursor.expect_name()
        sf_field = self._field(name_token)
        if _is_long_text(sf_field):
            raise self._semantic_error(
                name_token, f"field '{sf_field.name}' can not be filtered in a query call"
            )
        operator = self._operator()
        literals = self._operands(operator)
        self._check_operator(name_token, sf_field, operator)
        for literal in literals:
            self._check_literal(name_token, sf_field, operator, literal)
        return _compile_comparison(sf_field, operator, literals)

    def _operator(self) -> str:
        token = self._cursor.advance()
        if token.kind == "op":
            return "!=" if token.text == "<>" else token.text
        if token.word in ("LIKE", "IN"):
            return token.word
        if token.word == "NOT":
            self._cursor.expect_word("IN")
            return "NOT IN"
        raise self._cursor.unexpected(token)

    def _operands(self, operator: str) -> list[_Literal]:
        if operator not in ("IN", "NOT IN"):
            return [self._literal()]
        self._cursor.expect_punct("(")
        literals = [self._literal()]
        while self._cursor.accept_punct(","):
            literals.append(self._literal())
        self._cursor.expect_punct(")")
        return literals

    def _check_operator(self, name_token: _Token, sf_field: SalesforceField, op: str) -> None:
        category = _category(sf_field)
        like_on_non_text = op == "LIKE" and category != "text"
        ordering_booleans = op in ("<", "<=", ">", ">=") and category == "boolean"
        if like_on_non_text or ordering_booleans:
            raise self._semantic_error(
                name_token, f"invalid operator on field '{sf_field.name}': {op}"
            )

    def _check_literal(
        self, name_token: _Token, sf_field: SalesforceField, op: str, literal: _Literal
    ) -> None:
        accepted = _ACCEPTED_LITERALS[_category(sf_field)]
        if op == "LIKE":
            fits = literal.kind == "string"
        else:
            fits = literal.kind == "null" or literal.kind in accepted
        if not fits:
            raise self._semantic_error(name_token, _type_mismatch(sf_field))

    # -- literals --------------------------------------------------------------------------

    def _literal(self) -> _Literal:
        token = self._cursor.advance()
        if token.kind == "string":
            body = token.text[1:-1]
            return _Literal("string", _plain_string(body), token.pos, body)
        if token.kind == "number":
            return _Literal("number", self._number(token), token.pos)
        if token.kind == "date":
            return _Literal("date", self._date(token), token.pos)
        if token.kind == "datetime":
            return _Literal("datetime", self._datetime(token), token.pos)
        if token.word in ("TRUE", "FALSE"):
            return _Literal("boolean", token.word == "TRUE", token.pos)
        if token.word == "NULL":
            return _Literal("null", None, token.pos)
        if token.word in ("TODAY", "YESTERDAY", "LAST_N_DAYS"):
            return _Literal("relative", self._relative_days(token), token.pos)
        raise self._cursor.unexpected(token)

    def _number(self, token: _Token) -> int | float:
        return float(token.text) if "." in token.text else self._cursor.integer(token)

    def _date(self, token: _Token) -> str:
        try:
            return date.fromisoformat(token.text).isoformat()
        except ValueError:
            raise self._cursor.error_at(
                token.pos, "MALFORMED_QUERY", f"invalid date: {token.text}"
            ) from None

    def _datetime(self, token: _Token) -> str:
        normalised = _utc_datetime_text(token.text)
        if normalised is None:
            raise self._cursor.error_at(
                token.pos, "MALFORMED_QUERY", f"invalid dateTime: {token.text}"
            )
        return normalised

    def _relative_days(self, token: _Token) -> _DayRange:
        if token.word == "TODAY":
            first, end = 0, 1
        elif token.word == "YESTERDAY":
            first, end = -1, 0
        else:
            # LAST_N_DAYS:n covers today and the n days before it (LAST_N_DAYS:1 is
            # yesterday and today), as Salesforce documents.
            self._cursor.expect_punct(":")
            first, end = -self._cursor.expect_whole_number(), 1
        return _DayRange(_shift(self._today, first), _shift(self._today, end))

    # -- ORDER BY --------------------------------------------------------------------------

    def _order_item(self) -> OrderItem:
        name_token = self._cursor.expect_name()
        sf_field = self._field(name_token)
        if _is_long_text(sf_field):
            raise self._semantic_error(
                name_token, f"field '{sf_field.name}' can not be sorted in a query call"
            )
        direction = self._cursor.accept_word("ASC", "DESC")
        descending = direction is not None and direction.word == "DESC"
        nulls_first = not descending  # Salesforce sorts null as the lowest value by default
        if self._cursor.accept_word("NULLS") is not None:
            position = self._cursor.advance()
            if position.word not in ("FIRST", "LAST"):
                raise self._cursor.unexpected(position)
            nulls_first = position.word == "FIRST"
        sort_key = _sort_key(sf_field, descending, nulls_first)
        return OrderItem(sf_field.name, descending, nulls_first, sort_key)

    # -- helpers ---------------------------------------------------------------------------

    def _field(self, token: _Token) -> SalesforceField:
        return _lookup_field(self._cursor, self._sobject, token)

    def _semantic_error(self, name_token: _Token, detail: str) -> SoqlError:
        return self._cursor.error_at(name_token.pos, "INVALID_FIELD", detail)


# --------------------------------------------------------------------------------------------
# Compiling comparisons into closures
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Bounds:
    """A day range as stored-form strings: `start` inclusive, `end` exclusive."""

    start: str
    end: str


_Operand = str | int | float | bool | _Bounds | None

_SCALAR_TESTS: dict[str, Callable[[Any], _ValueTest]] = {
    "=": lambda x: lambda v: bool(v == x),
    "!=": lambda x: lambda v: bool(v != x),
    "<": lambda x: lambda v: bool(v < x),
    "<=": lambda x: lambda v: bool(v <= x),
    ">": lambda x: lambda v: bool(v > x),
    ">=": lambda x: lambda v: bool(v >= x),
}

# A relative date literal is a range: `=` means inside it, `<` before it, `>` after it.
_RANGE_TESTS: dict[str, Callable[[str, str], _ValueTest]] = {
    "=": lambda start, end: lambda v: bool(start <= v < end),
    "!=": lambda start, end: lambda v: not start <= v < end,
    "<": lambda start, end: lambda v: bool(v < start),
    "<=": lambda start, end: lambda v: bool(v < end),
    ">": lambda start, end: lambda v: bool(v >= end),
    ">=": lambda start, end: lambda v: bool(v >= start),
}


def _compile_comparison(
    sf_field: SalesforceField, operator: str, literals: list[_Literal]
) -> Predicate:
    """A predicate over records; SOQL's `!=` and NOT IN, unlike SQL's, match null values."""
    category = _category(sf_field)
    if operator == "LIKE":
        test, matches_null = _like_test(literals[0].body), False
    elif operator in ("IN", "NOT IN"):
        operands = [_comparable(category, literal) for literal in literals]
        test, matches_null = _membership_test(operands, negated=operator == "NOT IN")
    else:
        test, matches_null = _comparison_test(operator, _comparable(category, literals[0]))
    key = str.lower if category == "text" else None
    return _bind(sf_field.name, key, test, matches_null)


def _comparable(category: str, literal: _Literal) -> _Operand:
    """The literal in the form record values are compared in (text lower-cased)."""
    value = literal.value
    if isinstance(value, _DayRange):
        return _day_bounds(value, category)
    if category == "text" and isinstance(value, str):
        return value.lower()
    if category == "id" and isinstance(value, str) and len(value) == 15 and value.isalnum():
        # Ids are stored in their 18-character form; Salesforce accepts either in a filter.
        return eighteen_character_id(value)
    return value


def _day_bounds(days: _DayRange, category: str) -> _Bounds:
    suffix = "T00:00:00.000+0000" if category == "datetime" else ""
    # "" sorts before and "~" after every stored date or datetime string.
    start = "" if days.first is None else days.first.isoformat() + suffix
    end = "~" if days.end is None else days.end.isoformat() + suffix
    return _Bounds(start, end)


def _like_test(body: str) -> _ValueTest:
    pattern = re.compile(_like_regex(body), re.IGNORECASE | re.DOTALL)
    return lambda value: pattern.fullmatch(value) is not None


def _comparison_test(operator: str, operand: _Operand) -> tuple[_ValueTest, bool]:
    """The test for a non-null value, and whether a null value matches."""
    if operand is None:  # only `= null` and `!= null` can ever match
        return _constant(operator == "!="), operator == "="
    if isinstance(operand, _Bounds):
        return _RANGE_TESTS[operator](operand.start, operand.end), operator == "!="
    return _SCALAR_TESTS[operator](operand), operator == "!="


def _membership_test(operands: list[_Operand], *, negated: bool) -> tuple[_ValueTest, bool]:
    lists_null = any(operand is None for operand in operands)
    scalars = frozenset(
        operand for operand in operands if operand is not None and not isinstance(operand, _Bounds)
    )
    ranges = tuple((bounds.start, bounds.end) for bounds in operands if isinstance(bounds, _Bounds))

    def is_listed(value: Any) -> bool:
        return value in scalars or any(start <= value < end for start, end in ranges)

    test: _ValueTest = is_listed if ranges else scalars.__contains__
    if negated:
        return (lambda value: not test(value)), not lists_null
    return test, lists_null


def _constant(result: bool) -> _ValueTest:
    return lambda _value: result


def _bind(name: str, key: Callable[[str], str] | None, test: _ValueTest, null: bool) -> Predicate:
    """Apply `test` to the record's value for `name`, normalised by `key`; null gives `null`."""
    if key is None:

        def predicate(record: Record) -> bool:
            value = record.get(name)
            return null if value is None else test(value)

        return predicate

    def normalised_predicate(record: Record) -> bool:
        value = record.get(name)
        return null if value is None else test(key(value))

    return normalised_predicate


def _negation(predicate: Predicate) -> Predicate:
    return lambda record: not predicate(record)


# Flat all()/any() rather than nested pairs: a long AND chain must not nest calls deeply.
def _all_of(predicates: list[Predicate]) -> Predicate:
    if len(predicates) == 1:
        return predicates[0]
    if len(predicates) == 2:
        first, second = predicates
        return lambda record: first(record) and second(record)
    chain = tuple(predicates)
    return lambda record: all(predicate(record) for predicate in chain)


def _any_of(predicates: list[Predicate]) -> Predicate:
    if len(predicates) == 2:
        first, second = predicates
        return lambda record: first(record) or second(record)
    chain = tuple(predicates)
    return lambda record: any(predicate(record) for predicate in chain)


# --------------------------------------------------------------------------------------------
# ORDER BY keys
# --------------------------------------------------------------------------------------------


def _sort_key(
    sf_field: SalesforceField, descending: bool, nulls_first: bool
) -> Callable[[Record], tuple[Any, ...]]:
    name = sf_field.name
    convert = _sort_value(sf_field)
    # The sort runs reversed for DESC, so where nulls must land flips with the direction.
    null_key = (-1,) if nulls_first != descending else (1,)

    def key(record: Record) -> tuple[Any, ...]:
        value = record.get(name)
        return null_key if value is None else (0, convert(value))

    return key


def _sort_value(sf_field: SalesforceField) -> Callable[[Any], Any]:
    if sf_field.type == "picklist" and sf_field.picklist:
        # Salesforce sorts picklists in their defined order; values outside it come last.
        rank = {value.lower(): index for index, value in enumerate(sf_field.picklist)}
        return lambda value: (rank.get(value.lower(), len(rank)), value.lower())
    if _category(sf_field) == "text":
        return str.lower  # Salesforce sorts text case-insensitively
    return lambda value: value
