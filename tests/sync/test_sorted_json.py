"""`sorted_json_text` writes what the json module writes, byte for byte: a snapshot's
fingerprint hashes it (`store.content_digest`)."""

from __future__ import annotations

import enum
import json
import math
import random
import struct
from typing import Any

import pytest

from leadsync.sync.sorted_json import sorted_json_text


def by_json_module(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class Colour(enum.StrEnum):
    RED = "red"


class Size(enum.IntEnum):
    BIG = 3


ODD_VALUES: list[Any] = [
    {"b": "1", "a": 2, "c": None, "d": True},  # flat: orjson's way
    {"email": "zoë@example.com"},  # past ASCII: escaped by json
    {"name": "雪"},
    {"emoji": "😀"},  # past the BMP: a surrogate pair in json's escape
    {"del": "a\x7fb"},  # DEL: escaped by json, not by orjson
    {"controls": '\x00\x01\b\t\n\f\r\x1f"\\/'},
    {"small": 1e-5, "smaller": 9.9e-5, "tiny": 5e-324, "neg": -2.2e-9},
    {"edge": 1e-4, "big": 1e16, "huge": 1.5e300, "zero": 0.0, "minus_zero": -0.0},
    {"nan": math.nan},
    {"inf": math.inf, "minus_inf": -math.inf},
    {"long": 2**70, "minus_long": -(2**64)},
    {"word": 2**63 - 1, "negative_word": -(2**63)},
    {"enum": Colour.RED, "int_enum": Size.BIG},
    {"nested": {"$datetime": "2026-01-02T03:04:05+00:00"}, "list": ["a", ("b", 1.5)]},
    {"z": {"y": {"x": [1, {"b": 1, "a": 2}]}}, "a": []},
    [{"b": 1, "a": "é"}, (), 1.0],
    "plain text",
    None,
    {"1": "key as text", "10": 1, "2": 2, "A": 0, "_": 0, "a": 0},
]


@pytest.mark.parametrize("value", ODD_VALUES, ids=range(len(ODD_VALUES)))
def test_it_writes_what_the_json_module_writes(value: Any) -> None:
    assert sorted_json_text(value) == by_json_module(value)


def test_non_text_keys_are_written_as_the_json_module_writes_them() -> None:
    value = {1: "a", "b": 2}
    with pytest.raises(TypeError):
        by_json_module(value)  # mixed keys cannot be sorted: nor by sorted_json_text
    with pytest.raises(TypeError):
        sorted_json_text(value)
    assert sorted_json_text({1: "a", 2: "b"}) == by_json_module({1: "a", 2: "b"})


def test_floats_of_every_magnitude_are_written_as_the_json_module_writes_them() -> None:
    rng = random.Random(20)
    floats = [rng.random() * 10.0**exponent for exponent in range(-320, 308)]
    floats += [
        struct.unpack("d", rng.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(20_000)
    ]
    for number in floats:
        for value in (number, -number):
            assert sorted_json_text({"x": value}) == by_json_module({"x": value}), value


def test_text_of_every_plane_is_escaped_and_sorted_as_the_json_module_does() -> None:
    rng = random.Random(21)
    planes = [(0x20, 0x7F), (0x7F, 0x800), (0x800, 0xD800), (0xE000, 0x10000), (0x10000, 0x110000)]

    def text() -> str:
        return "".join(chr(rng.randrange(*rng.choice(planes))) for _ in range(rng.randrange(6)))

    for _ in range(2_000):
        value = {text(): text() for _ in range(4)}
        value["nested"] = {text(): [text(), 1, None]}  # type: ignore[assignment]
        assert sorted_json_text(value) == by_json_module(value), value


def test_a_record_of_plain_values_is_written_by_orjson(monkeypatch: pytest.MonkeyPatch) -> None:
    # The point of the module: the usual record never reaches the json module.
    def refused(*args: Any, **kwargs: Any) -> str:
        raise AssertionError("written by the json module")

    monkeypatch.setattr(json, "dumps", refused)
    record = {"raw": {"email": "a@example.com", "n": 3, "x": 1.5}, "deleted": False}
    assert (
        sorted_json_text(record)
        == '{"deleted":false,"raw":{"email":"a@example.com","n":3,"x":1.5}}'
    )
    # A name past ASCII too: orjson's text, escaped as the json module escapes it.
    assert sorted_json_text({"name": "Zoë 雪 😀"}) == '{"name":"Zo\\u00eb \\u96ea \\ud83d\\ude00"}'
