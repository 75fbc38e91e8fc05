"""A snapshot's raw and canonical values as the store keeps them: one compressed blob.

    pack(raw, canonical)  the blob for values `encode_value` already gave
    unpack(blob)          (raw, canonical) as `json_read` gives them

The two were the store's largest columns (~2 KB of JSON a record, two fifths of a first
sync's store), and nothing queries inside them: the database only keeps them. Compressed
together they take ~40 % of that, the canonical values mostly repeating the raw ones. The
first byte names the format, so a later one can come without rewriting what is stored:

    1   raw DEFLATE (RFC 1951) of the compact JSON text [raw, canonical]
"""

from __future__ import annotations

import zlib
from typing import Any

import orjson

from leadsync.sync import tables as t

__all__ = ["pack", "unpack"]

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
    compressor = zlib.compressobj(_LEVEL, zlib.DEFLATED, _RAW_DEFLATE)
    return bytes((_DEFLATE,)) + compressor.compress(text) + compressor.flush()


def unpack(blob: bytes | memoryview) -> tuple[Any, Any]:
    """The inverse of `pack`: (raw, canonical), decoded."""
    blob = bytes(blob)
    if not blob or blob[0] != _DEFLATE:
        raise ValueError(f"unknown snapshot format {blob[:1]!r}")
    text = zlib.decompress(blob[1:], _RAW_DEFLATE).decode()
    raw, canonical = t.json_read(text)
    return raw, canonical
