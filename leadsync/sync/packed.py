"""JSON the store keeps compressed: a snapshot's raw and canonical values, an audit-log row's
fields.

    pack(raw, canonical)  a snapshot's blob, for values `encode_value` already gave
    unpack(blob)          (raw, canonical) as `json_read` gives them
    pack_text(text)       a blob of JSON text (a `writes` row's fields)
    unpack_text(blob)     the JSON text again

They were the store's largest columns (~2 KB of JSON a record, ~430 bytes a log row), and
nothing queries inside them: the database only keeps them. Compressed they take ~40 % (a
snapshot's canonical values mostly repeat its raw ones) to ~60 % (a log row). The first byte
names the format, so a later one comes without rewriting what is stored:

    1   raw DEFLATE (RFC 1951): what revision 0014 carried stored rows over in (stdlib only)
    2   a Zstandard frame, content size included: what the store writes. zstd level 3 packs
        a first sync's record in ~9 µs where DEFLATE took ~27 µs (~8 % larger), so keeping
        the store small costs a sync no CPU it can feel.
"""

from __future__ import annotations

import threading
import zlib
from typing import Any

import orjson
import zstandard

from leadsync.sync import tables as t

__all__ = ["pack", "pack_text", "unpack", "unpack_text"]

_DEFLATE = 1
_ZSTD = 2
_ZSTD_MARK = bytes((_ZSTD,))
_RAW_DEFLATE = -15  # window bits: no zlib header or checksum (the database keeps the bytes)
_LEVEL = 3  # zstd's default: as small as level 9 within 1 % for records this size


class _Codecs(threading.local):
    """A compressor and a decompressor per thread: a zstandard one may not be used by two
    threads at once, and the store is shared between threads."""

    def __init__(self) -> None:
        self.compressor = zstandard.ZstdCompressor(
            level=_LEVEL, write_checksum=False, write_content_size=True, write_dict_id=False
        )
        self.decompressor = zstandard.ZstdDecompressor()


_CODECS = _Codecs()


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
    return _ZSTD_MARK + _CODECS.compressor.compress(text)


def unpack_text(blob: bytes | memoryview) -> str:
    """The inverse of `pack_text`, for either format."""
    blob = bytes(blob)
    kind = blob[0] if blob else None
    if kind == _ZSTD:
        return _CODECS.decompressor.decompress(blob[1:]).decode()
    if kind == _DEFLATE:
        return zlib.decompress(blob[1:], _RAW_DEFLATE).decode()
    raise ValueError(f"unknown packed format {blob[:1]!r}")
