"""A type for secrets that never print.

Tokens, passwords and keys travel as `Secret`: its `str`, `repr` and format show `***`, so a
secret that slips into a log line, an exception or a report shows nothing. Only `reveal()`
gives the value, at the one place that hands it to a client library.
"""

from __future__ import annotations

import re
from typing import Final

MASK: Final = "***"


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __format__(self, spec: str) -> str:
        return MASK

    def __reduce__(self) -> str | tuple[object, ...]:
        # Pickling would write the value out in clear; refuse instead.
        raise TypeError("a Secret cannot be pickled")


def redact(text: str, secrets: list[Secret | str | None]) -> str:
    """`text` with every occurrence of each secret's value replaced by `***`."""
    for secret in secrets:
        value = secret.reveal() if isinstance(secret, Secret) else secret
        if value and len(value) >= 3:
            text = text.replace(value, MASK)
    return text


# What a CRM's error text may hold of a record: email addresses, and quoted values (`'Ada
# Lovelace' is not valid`, `"firstname":"Ada"`). What names things stays: JSON keys, error
# codes (`INVALID_FIELD`), API names with an underscore (`Leadsync_Score__c`) and the objects
# leadsync reads (`entity 'Lead'`).
_EMAIL = re.compile(r"[^\s@'\"<>()\[\]{},;:]+@[^\s@'\"<>()\[\]{},;:]+")
_QUOTED = re.compile(r"(['\"])(.*?)\1(\s*:)?")
_API_NAME = re.compile(
    r"[A-Za-z][A-Za-z0-9]*_[A-Za-z0-9_]*|[A-Z][A-Z0-9_]*|Lead|Contact|Account|Opportunity|contacts"
)
# Enough for a CRM's error message; a page of contacts echoed back in a body is not.
TEXT_LIMIT: Final = 300


def masked(text: str, *, limit: int = TEXT_LIMIT) -> str:
    """A CRM's (or database's) error text fit for a log line or an error: emails and quoted
    values masked, names kept, cut to `limit` characters."""
    text = _EMAIL.sub(MASK, text)

    def mask(quoted: re.Match[str]) -> str:
        quote, content, key = quoted.group(1), quoted.group(2), quoted.group(3)
        if key or _API_NAME.fullmatch(content):
            return quoted.group(0)
        return f"{quote}{MASK}{quote}"

    return cut(_QUOTED.sub(mask, text), limit=limit)


def cut(text: str, *, limit: int = TEXT_LIMIT) -> str:
    """`text`, cut to `limit` characters, saying how much was left out."""
    if len(text) > limit:
        return f"{text[:limit]}… ({len(text) - limit} more characters cut)"
    return text
