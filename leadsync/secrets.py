"""A type for secrets that never print.

Tokens, passwords and keys travel as `Secret`: its `str`, `repr` and format show `***`, so a
secret that slips into a log line, an exception or a report shows nothing. Only `reveal()`
gives the value, at the one place that hands it to a client library.
"""

from __future__ import annotations

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
