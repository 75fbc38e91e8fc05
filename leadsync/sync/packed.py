"""JSON the store keeps compressed: a snapshot's raw and canonical values, an audit-log row's
fields.

    pack(raw, canonical)  a snapshot's blob, for values `encode_value` already gave
    unpack(blob)          (raw, canonical) as `json_read` gives them
    pack_text(text)       a blob of JSON text (a `writes` row's fields)
    unpack_text(blob)     the JSON text again

They were the store's largest columns (~2 KB of JSON a record, ~430 bytes a log row), and
nothing queries inside them: the database only keeps them. Compressed they take ~40 % (a
snapshot's canonical values mostly repeat its raw ones) to ~55 % (a log row). The first byte
names the format, so a later one can come without rewriting what is stored:

    1   raw DEFLATE (RFC 1951) of compact JSON text; a snapshot's is [raw, canonical]
"""

from __future__ import annotations

import zlib
from typing import Any

import orjson

from leadsync.sync import tables as t

__all__ = ["pack", "pack_text", "unpack", "unpack_text"]

_DEFLATE = 1
# zlib's default level: a first sync's record packs in ~25 µs, as small as level 9 within 1 %.
_LEVEL = 6
_RAW_DEFLATE = -15  # window bits: no zlib header or checksum (the database keeps the bytes)


def pack(raw: Any, canonical: Any) -> bytes:
    """The blob for `raw` and `canonical`, each as `encode_value` gave it."""
    try:
        text = orjson.dumps([raw, canonical])
    except TypeError:  # what orjson does not write: `encoded_json_text` takes the long way
        text = t.encoded_json_text([raw, canonical]).encode()
    return pack_text(text)


def unpack(blob: bytes | memoryview) -> tuple[Any, Any]:
    """The inverse of `pack`: (raw, canonical), decoded."""
    raw, canonical = t.json_read(unpack_text(blob))
    return raw, canonical


def pack_text(text: bytes) -> bytes:
    """The blob for JSON `text` (UTF-8)."""
    compressor = zlib.compressobj(_LEVEL, zlib.DEFLATED, _RAW_DEFLATE)
    return bytes((_DEFLATE,)) + compressor.compress(text) + compressor.flush()


def unpack_text(blob: bytes | memoryview) -> str:
    """The inverse of `pack_text`."""
    blob = bytes(blob)
    if not blob or blob[0] != _DEFLATE:
        raise ValueError(f"unknown packed format {blob[:1]!r}")
    return zlib.decompress(blob[1:], _RAW_DEFLATE).decode()
