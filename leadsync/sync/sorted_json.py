"""JSON text exactly as `json.dumps(value, sort_keys=True, separators=(",", ":"))` writes it,
made by orjson wherever the two write the same bytes.

A snapshot's fingerprint hashes this text (`store.content_digest`): a text that changed by a
byte would make every stored record look changed at its next pull. The json module takes
~30 µs for a lead's record, orjson a tenth of it, but they differ on what the json module
escapes (everything past ASCII, and DEL: escaped here after orjson, as the json module
does), on floats below 1e-4 in magnitude (json `1e-05`,
orjson `0.00001`), on NaN and infinities (orjson writes null), on integers past 64 bits
(orjson refuses them) and on subclasses of str or int (an enum): values holding any of
those are written by the json module.
"""

from __future__ import annotations

import functools
import json
import math
import re
from typing import Any

import orjson

__all__ = ["sorted_json_text"]

_PLAIN = frozenset({str, int, bool, type(None)})
_STR = frozenset({str})
_SMALLEST_ALIKE = 1e-4  # the json module writes smaller floats with an exponent

# Floats as the json module writes them (repr), checked once against the orjson installed.
_FLOAT_SAMPLES = (0.1, -2.5, 1e-4, 123456.789, 1e15, 1e16, 1.5e300, 9007199254740993.0)
_FLOATS_ALIKE = all(orjson.dumps(x) == json.dumps(x).encode() for x in _FLOAT_SAMPLES)


def sorted_json_text(value: Any) -> str:
    """`value` as `json.dumps(value, sort_keys=True, separators=(",", ":"))` writes it."""
    if _alike(value):
        try:
            data = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except TypeError:  # an int past 64 bits
            pass
        else:
            if data.isascii() and b"\x7f" not in data:
                return data.decode("ascii")
            # Only text values and keys hold such characters: escaped, the text is the json
            # module's (a name with an accent is common).
            return _PAST_ASCII.sub(_escaped, data.decode())
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


_PAST_ASCII = re.compile("[\x7f-\U0010ffff]")


@functools.lru_cache(maxsize=1_024)
def _escape(char: str) -> str:
    """`char` as the json module's ensure_ascii writes it: a UTF-16 code unit or two."""
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 | (code >> 10):04x}\\u{0xDC00 | (code & 0x3FF):04x}"


def _escaped(found: re.Match[str]) -> str:
    return _escape(found.group())


def _alike(value: Any) -> bool:
    """Whether orjson writes `value` as the json module does, but for the characters the
    caller checks in what orjson wrote."""
    kind = type(value)
    if kind in _PLAIN:
        return True
    if kind is dict:
        if not _STR.issuperset(map(type, value)):
            return False  # the json module writes other keys as text, orjson refuses them
        values = value.values()
        return _PLAIN.issuperset(map(type, values)) or all(map(_alike, values))
    if kind is float:
        return (
            _FLOATS_ALIKE and math.isfinite(value) and (not value or abs(value) >= _SMALLEST_ALIKE)
        )
    if kind is list or kind is tuple:
        return all(map(_alike, value))
    return False
