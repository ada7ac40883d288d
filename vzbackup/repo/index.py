"""The index: which pack holds each chunk, at which offset.

On the backend it is a set of ``index/<id>`` objects, each listing some packs and their
entries (the trailers' content), written by a writer only after the packs it names are
durable; the id is the SHA-256 of the plaintext. Several objects may name the same chunk
(two writers stored it at once): any copy serves. In memory, :class:`ChunkIndex` maps every
chunk id to one location, and keeps the other copies aside for repairs.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Iterator, Mapping, Sequence
from typing import NamedTuple

from ..errors import IntegrityError
from .codec import Buffer, Codec
from .packs import ENTRY, PackEntry, decode_entries

INDEX_HEAD = b"VZIX\x01"  # magic and version of an index object's plaintext
PACK_HEAD = struct.Struct(">32sI")  # pack id, number of entries
MAX_INDEX = 1 << 30

PackEntries = Mapping[bytes, Sequence[PackEntry]]  # pack id -> its entries


class Location(NamedTuple):
    pack_id: bytes
    offset: int
    length: int


def encode_index(codec: Codec, packs: PackEntries) -> tuple[str, bytes]:
    """The id and stored form of an index object naming ``packs``."""
    plain = INDEX_HEAD + encode_pack_list(packs)
    index_id = hashlib.sha256(plain).hexdigest()
    return index_id, codec.encode(bytes.fromhex(index_id), plain)


def decode_index(codec: Codec, index_id: str, blob: Buffer) -> dict[bytes, list[PackEntry]]:
    """The packs an index object names, after checking it against its id."""
    what = f"index object {index_id[:12]}"
    plain = codec.decode(bytes.fromhex(index_id), blob, what=what, max_size=MAX_INDEX)
    if not hmac.compare_digest(hashlib.sha256(plain).hexdigest(), index_id):
        raise IntegrityError(f"{what} does not match its id")
    if plain[:len(INDEX_HEAD)] != INDEX_HEAD:
        raise IntegrityError(f"{what}: unknown format")
    return decode_pack_list(memoryview(plain)[len(INDEX_HEAD):], what)


def encode_pack_list(packs: PackEntries) -> bytes:
    """Packs and their entries, as index objects and garbage records hold them."""
    return b"".join(PACK_HEAD.pack(pack_id, len(entries)) + b"".join(ENTRY.pack(*e) for e in entries)
                    for pack_id, entries in packs.items())


def decode_pack_list(view: memoryview, what: str) -> dict[bytes, list[PackEntry]]:
    packs: dict[bytes, list[PackEntry]] = {}
    at = 0
    while at < len(view):
        if at + PACK_HEAD.size > len(view):
            raise IntegrityError(f"{what}: truncated")
        pack_id, count = PACK_HEAD.unpack_from(view, at)
        at += PACK_HEAD.size
        end = at + count * ENTRY.size
        if end > len(view):
            raise IntegrityError(f"{what}: truncated")
        packs[pack_id] = decode_entries(view[at:end], what)
        at = end
    return packs


class ChunkIndex:
    """Chunk id -> location, for the packs added. Lookups need no lock; ``add_pack`` is
    called by one thread at a time."""

    def __init__(self) -> None:
        self._pack_ids: list[bytes] = []
        self._pack_no: dict[bytes, int] = {}
        # compact values: pack number << 64 | offset << 32 | length
        self._where: dict[bytes, int] = {}
        self._more: dict[bytes, list[int]] = {}  # further copies of a chunk (rare)

    def __contains__(self, chunk_id: bytes) -> bool:
        return chunk_id in self._where

    def __len__(self) -> int:
        return len(self._where)

    def has_pack(self, pack_id: bytes) -> bool:
        return pack_id in self._pack_no

    def pack_ids(self) -> Iterator[bytes]:
        return iter(self._pack_ids)

    def add_pack(self, pack_id: bytes, entries: Sequence[PackEntry]) -> None:
        if pack_id in self._pack_no:
            return  # named by two index objects (a repair rewrote one)
        number = len(self._pack_ids)
        self._pack_ids.append(pack_id)
        self._pack_no[pack_id] = number
        where, base = self._where, number << 64
        for chunk_id, offset, length, _size in entries:
            packed = base | offset << 32 | length
            if where.setdefault(chunk_id, packed) != packed:
                self._more.setdefault(chunk_id, []).append(packed)

    def locate(self, chunk_id: bytes) -> Location | None:
        packed = self._where.get(chunk_id)
        return None if packed is None else self._unpack(packed)

    def locations(self, chunk_id: bytes) -> list[Location]:
        """Every copy of the chunk the index knows."""
        first = self._where.get(chunk_id)
        if first is None:
            return []
        return [self._unpack(p) for p in [first, *self._more.get(chunk_id, ())]]

    def _unpack(self, packed: int) -> Location:
        return Location(self._pack_ids[packed >> 64], (packed >> 32) & 0xFFFFFFFF,
                        packed & 0xFFFFFFFF)
