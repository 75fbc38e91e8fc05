"""Record ids in the formats the real CRMs use.

Salesforce ids are 15 case-sensitive characters (3-character key prefix, then base-62) plus a
3-character suffix that encodes which of the 15 are upper case, so the 18-character form survives
case-insensitive systems. Generating the real suffix keeps ids the shape connectors will meet.
"""

from __future__ import annotations

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
# Sandbox records live on pod "5g"; the server id digits come right after the key prefix.
_POD = "5g00000"


def salesforce_id(key_prefix: str, number: int) -> str:
    """The 18-character id of the `number`-th record of the object with `key_prefix`."""
    digits = []
    remaining = number
    while remaining:
        remaining, digit = divmod(remaining, 62)
        digits.append(_BASE62[digit])
    body = "".join(reversed(digits)).rjust(15 - len(key_prefix) - len(_POD), "0")
    short = f"{key_prefix}{_POD}{body}"
    if len(short) != 15:
        raise ValueError(f"record number {number} does not fit a Salesforce id")
    return short + case_suffix(short)


def case_suffix(short_id: str) -> str:
    """The 3-character suffix that turns a 15-character id into its 18-character form."""
    suffix = []
    for chunk_start in range(0, 15, 5):
        bits = 0
        for position, char in enumerate(short_id[chunk_start : chunk_start + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << position
        suffix.append(_SUFFIX_ALPHABET[bits])
    return "".join(suffix)


def is_salesforce_id(value: str) -> bool:
    """True for a well-formed 15- or 18-character id (the 18-character suffix is checked)."""
    if len(value) not in (15, 18) or any(char not in _BASE62 for char in value):
        return False
    return len(value) == 15 or case_suffix(value[:15]) == value[15:]


def eighteen_character_id(record_id: str) -> str:
    """The 18-character form of an id given in either form (Salesforce accepts both)."""
    return record_id + case_suffix(record_id) if len(record_id) == 15 else record_id
