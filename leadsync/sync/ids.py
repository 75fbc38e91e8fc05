"""The ids leadsync makes for its own rows: runs and leads.

80 random bits as 20 lowercase hex digits. Each id is stored many times over (a run's on every
snapshot, log row, echo fingerprint and transition it made; a lead's on its links, transitions,
handoffs, clocks and their indexes): a UUID's 36 characters were ~0.3 KB of a lead's ~3.2 in
the store (issue 20). 80 bits keep two alike out of reach: a lead is saved by upsert, so two
alike would be one lead, and among ten million leads that is a chance of ~1 in 2 x 10^10.
Ids an earlier release made (UUIDs) stay as they are: nothing reads meaning into an id's shape.
"""

from __future__ import annotations

import secrets

__all__ = ["ID_DIGITS", "is_new_id", "new_id"]

ID_DIGITS = 20
_HEX_DIGITS = frozenset("0123456789abcdef")


def new_id() -> str:
    """A new run's or lead's id."""
    return secrets.token_hex(ID_DIGITS // 2)


def is_new_id(text: str) -> bool:
    """Whether `text` is spelt as `new_id` spells an id (not merely hex that `int` reads: no
    sign, prefix, underscore, capital or other length)."""
    return len(text) == ID_DIGITS and _HEX_DIGITS.issuperset(text)
