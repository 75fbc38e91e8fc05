"""JSON the store keeps compressed: a snapshot's raw and canonical values, an audit-log row's
fields.

    pack(raw, canonical)  a snapshot's blob, for values `encode_value` already gave
    unpack(blob)          (raw, canonical) as `json_read` gives them
    unpack_fields(blob, codebook, raw, canonical)
                          the same, holding only the fields named (read for less)
    text_of(raw, canonical)  the JSON text `pack` packs
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
    3   a Zstandard frame packed with a dictionary the store keeps (table `dictionaries`),
        its id in the 4 bytes before the frame (big-endian). A record alone repeats little
        that zstd can find; its field names and most of its value shapes are every record's:
        trained on a CRM's first records, a dictionary packs the next ones in ~30 % of
        format 2's bytes (`train`, `Dictionary`, `Codebook`).
"""

from __future__ import annotations

import itertools
import threading
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import zstandard

from leadsync.sync import tables as t

__all__ = [
    "Codebook",
    "Dictionary",
    "pack",
    "pack_text",
    "text_of",
    "train",
    "unpack",
    "unpack_fields",
    "unpack_text",
]

_DEFLATE = 1
_ZSTD = 2
_ZSTD_MARK = bytes((_ZSTD,))
_DICTIONARY = 3
_ID_BYTES = 4
# A dictionary's size: within ~3 % of a 64 KB one's packing for a CRM's records (a 16 KB one
# packs ~5 % larger), and half the bytes to keep, load and prime.
DICTIONARY_SIZE = 32_768
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


# A dictionary is judged by the first rows it packs: one in JUDGE_EVERY is packed without it
# too, until JUDGED_BYTES of them were. Trained on rows unlike the later ones (a first batch
# of alike, empty or sparse records: an org's oldest imports), it packs them larger than no
# dictionary at all; it is `poor` if it saved less than a tenth of their bytes (a dictionary
# trained on rows like them packs them in ~30 %).
JUDGE_EVERY = 4
JUDGED_BYTES = 4_096
_POOR_SHARE = 0.9


def _judged(row: int) -> bool:
    return row >= 0 and row % JUDGE_EVERY == 0


class Dictionary:
    """A Zstandard dictionary the store keeps under `dictionary_id`, ready to pack and unpack
    with. Safe to share between threads (a codec per thread)."""

    def __init__(self, dictionary_id: int, data: bytes, *, unjudged: int = 0) -> None:
        """`unjudged`: how many of the first rows it packs not to judge it by (the batch it
        was trained on packs well by any dictionary)."""
        if not 0 < dictionary_id < 2 ** (8 * _ID_BYTES):
            raise ValueError(f"a dictionary id is 1 to 2**32 - 1, not {dictionary_id}")
        self.dictionary_id = dictionary_id
        self.data = data
        self._mark = bytes((_DICTIONARY,)) + dictionary_id.to_bytes(_ID_BYTES, "big")
        self._zstd = zstandard.ZstdCompressionDict(data)
        self._local = threading.local()
        # The judged rows' bytes packed with it and without it; `_packed` counts every row.
        # Read and added to without a lock: a row judged twice or missed moves no verdict.
        self._packed = itertools.count(-unjudged)
        self._with = 0
        self._without = 0

    @property
    def poor(self) -> bool:
        """Whether the rows it packed, judged, came out less than a tenth smaller than they
        would without it."""
        return self._without >= JUDGED_BYTES and self._with > _POOR_SHARE * self._without

    def compress(self, text: bytes) -> bytes:
        frame = self.compress_unjudged(text)
        if self._without < JUDGED_BYTES and _judged(next(self._packed)):
            self._with += len(frame)
            self._without += len(pack_text(text))
        return frame

    def compress_unjudged(self, text: bytes) -> bytes:
        """`compress`, leaving the judgement alone (for comparing dictionaries on texts)."""
        compressor = getattr(self._local, "compressor", None)
        if compressor is None:
            compressor = self._local.compressor = zstandard.ZstdCompressor(
                level=_LEVEL,
                dict_data=self._zstd,
                write_checksum=False,
                write_content_size=True,
                write_dict_id=False,
            )
        return self._mark + compressor.compress(text)

    def decompress(self, frame: bytes) -> bytes:
        decompressor = getattr(self._local, "decompressor", None)
        if decompressor is None:
            decompressor = self._local.decompressor = zstandard.ZstdDecompressor(
                dict_data=self._zstd
            )
        return decompressor.decompress(frame)


class Codebook:
    """The dictionaries of one store, by id: each loaded (`load(id)` gives its bytes, None for
    no such dictionary) the first time a blob names it, then kept (a stored dictionary never
    changes)."""

    def __init__(self, load: Callable[[int], bytes | None]) -> None:
        self._load = load
        self._found: dict[int, Dictionary] = {}
        self._lock = threading.Lock()

    def add(self, dictionary: Dictionary) -> None:
        """Keep `dictionary`, once it is stored (committed)."""
        with self._lock:
            self._found[dictionary.dictionary_id] = dictionary

    def get(self, dictionary_id: int) -> Dictionary:
        found = self._found.get(dictionary_id)
        if found is not None:
            return found
        data = self._load(dictionary_id)
        if data is None:
            raise ValueError(f"packed with dictionary {dictionary_id}, which the store lacks")
        dictionary = Dictionary(dictionary_id, data)
        self.add(dictionary)
        return dictionary


def train(samples: Sequence[bytes], *, size: int = DICTIONARY_SIZE) -> bytes | None:
    """A dictionary's bytes for texts like `samples`, or None where zstd finds too little in
    them to train on (too few, too small, all alike)."""
    try:
        return bytes(zstandard.train_dictionary(size, list(samples)).as_bytes())
    except zstandard.ZstdError:
        return None


def pack(raw: Any, canonical: Any, dictionary: Dictionary | None = None) -> bytes:
    """The blob for `raw` and `canonical`, each as `encode_value` gave it."""
    return pack_text(text_of(raw, canonical), dictionary)


def text_of(raw: Any, canonical: Any) -> bytes:
    """The JSON text `pack` packs for `raw` and `canonical` (a dictionary trains on these)."""
    try:
        return orjson.dumps([raw, canonical])
    except TypeError:  # what orjson does not write: `encoded_json_text` takes the long way
        return t.encoded_json_text([raw, canonical]).encode()


def unpack(blob: bytes | memoryview, codebook: Codebook | None = None) -> tuple[Any, Any]:
    """The inverse of `pack`: (raw, canonical), decoded."""
    raw, canonical = t.json_read(unpack_text(blob, codebook))
    return raw, canonical


def unpack_fields(
    blob: bytes | memoryview,
    codebook: Codebook | None,
    raw: Sequence[str],
    canonical: Sequence[str],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """`unpack`'s (raw, canonical), holding only the fields named: the others are parsed but
    not decoded (for a record's few identity fields, a quarter of `unpack`'s cost)."""
    text = unpack_text(blob, codebook)
    try:
        picked = _picked(orjson.loads(text), raw, canonical)
    except orjson.JSONDecodeError:
        picked = None
    if picked is None or not _UNTAGGED.issuperset(
        map(type, itertools.chain(picked[0].values(), picked[1].values()))
    ):
        # Not a text orjson reads, a float (maybe an integer past 64 bits orjson rounded) or
        # a container (maybe tagged): the whole text read as `unpack` reads it.
        picked = _picked(t.json_read(text), raw, canonical)
    return picked


def _picked(
    values: Sequence[Any], raw: Sequence[str], canonical: Sequence[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    held_raw, held_canonical = values
    return (
        {name: held_raw[name] for name in raw if name in held_raw},
        {name: held_canonical[name] for name in canonical if name in held_canonical},
    )


# The types of stored JSON values read as they are: nothing tagged, no float.
_UNTAGGED = frozenset({str, int, bool, type(None)})


def pack_text(text: bytes, dictionary: Dictionary | None = None) -> bytes:
    """The blob for JSON `text` (UTF-8), with `dictionary` where given."""
    if dictionary is not None:
        return dictionary.compress(text)
    return _ZSTD_MARK + _CODECS.compressor.compress(text)


def unpack_text(blob: bytes | memoryview, codebook: Codebook | None = None) -> str:
    """The inverse of `pack_text`, for any format (a dictionary's through `codebook`)."""
    blob = bytes(blob)
    kind = blob[0] if blob else None
    if kind == _ZSTD:
        return _CODECS.decompressor.decompress(blob[1:]).decode()
    if kind == _DICTIONARY and codebook is not None:
        dictionary = codebook.get(int.from_bytes(blob[1 : 1 + _ID_BYTES], "big"))
        return dictionary.decompress(blob[1 + _ID_BYTES :]).decode()
    if kind == _DEFLATE:
        return zlib.decompress(blob[1:], _RAW_DEFLATE).decode()
    raise ValueError(f"unknown packed format {blob[:1]!r}")
