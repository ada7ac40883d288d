"""Pack files: many stored chunks in one object.

A pack is the chunks' stored forms (``Codec.encode``, each bound to its chunk id) one after
the other, then a trailer and a fixed-size footer::

    blob | blob | ... | trailer | trailer length (4 bytes, big-endian) | b"VZPK"

The trailer lists every blob: chunk id, offset, length and plaintext size. It is itself
encoded by the codec (sealed in an encrypted repository, so chunk ids stay hidden).

The pack id is the SHA-256 of the pack's tail (the stored trailer and the footer), not of
the whole pack: hashing every stored byte a second time cost a sixth of a full backup's CPU,
and adds nothing, since each blob is bound to its chunk id (AES-GCM, or zstd and the chunk
hash) and checked on every read. A pack is what a writer sealed when its tail hashes to its
id, its blobs tile the pack up to the trailer, and each decodes to its chunk id
(:func:`check_pack`): so the index can be rebuilt from the packs alone.
"""

from __future__ import annotations

import hashlib
import mmap
import struct
from collections.abc import Iterable
from typing import NamedTuple

from ..errors import IntegrityError
from .codec import Buffer, Codec

PACK_SIZE = 16 << 20  # a pack is put once it holds this many bytes of blobs
ENTRY = struct.Struct(">32sIII")  # chunk id, offset, length, plaintext size
FOOTER = struct.Struct(">I4s")  # trailer length, magic
PACK_MAGIC = b"VZPK"
TRAILER_HEAD = b"VZPT\x01"  # magic and version of the trailer's plaintext
TRAILER_ID = hashlib.sha256(b"vzbackup pack trailer").digest()  # binds the sealed trailer
MAX_PACK = (1 << 32) - 1  # offsets are 32-bit


class PackEntry(NamedTuple):
    chunk_id: bytes
    offset: int
    length: int
    size: int  # plaintext bytes


def encode_entries(entries: Iterable[PackEntry]) -> bytes:
    return b"".join(ENTRY.pack(*e) for e in entries)


def decode_entries(data: Buffer, what: str) -> list[PackEntry]:
    if len(data) % ENTRY.size:
        raise IntegrityError(f"{what}: a list of pack entries is {len(data)} bytes long")
    return [PackEntry(*e) for e in ENTRY.iter_unpack(data)]


class OpenPack:
    """A pack being filled, in one buffer that is reused for the next pack. The buffer is
    anonymous memory, so page-aligned: the local backend writes it to disk directly
    (``O_DIRECT``), without copying it into the page cache."""

    def __init__(self, target: int):
        self.target = target
        self._buf: mmap.mmap | bytes = b""
        self._end = 0
        self._view: memoryview | None = None  # handed out by seal(): the buffer cannot grow
        self.entries: list[PackEntry] = []

    @property
    def full(self) -> bool:
        return self._end >= self.target

    def __len__(self) -> int:
        return self._end

    def add(self, chunk_id: bytes, parts: Iterable[Buffer], size: int) -> int:
        """Append one chunk's stored form (copied: parts may live in reused buffers);
        returns its length."""
        start = self._end
        for part in parts:
            self._write(part)
        length = self._end - start
        self.entries.append(PackEntry(chunk_id, start, length, size))
        return length

    def _write(self, part: Buffer) -> None:
        end = self._end + len(part)
        if end > len(self._buf):  # grow once to a whole pack, then rarely
            grown = mmap.mmap(-1, max(end, self.target + (1 << 20), 2 * len(self._buf)))
            grown[:self._end] = self._buf[:self._end]
            self._buf = grown
        self._buf[self._end:end] = part  # type: ignore[index]
        self._end = end

    def absorb(self, other: "OpenPack") -> None:
        """Move ``other``'s chunks into this pack (fewer, fuller packs at a commit)."""
        view = memoryview(other._buf)
        try:
            for e in other.entries:
                self.add(e.chunk_id, (view[e.offset:e.offset + e.length],), e.size)
        finally:
            view.release()
        other.reset()

    def seal(self, codec: Codec) -> tuple[bytes, memoryview]:
        """Append the trailer and footer; the pack id and the pack's bytes (valid until
        :meth:`reset`)."""
        trailer = codec.encode(TRAILER_ID, TRAILER_HEAD + encode_entries(self.entries))
        footer = FOOTER.pack(len(trailer), PACK_MAGIC)
        self._write(trailer)
        self._write(footer)
        if self._end > MAX_PACK:
            raise ValueError(f"a pack of {self._end} bytes is too large")
        self._view = memoryview(self._buf)[:self._end]
        return tail_id(trailer + footer), self._view

    def swap(self, other: "OpenPack") -> None:
        """Exchange contents (buffers and entries) with ``other``, without copying."""
        for name in ("_buf", "_end", "_view", "entries", "target"):
            mine, theirs = getattr(self, name), getattr(other, name)
            setattr(self, name, theirs)
            setattr(other, name, mine)

    def reset(self) -> None:
        if self._view is not None:
            self._view.release()
            self._view = None
        self._end = 0
        self.entries = []


def tail_id(tail: Buffer) -> bytes:
    """The id of a pack whose tail (stored trailer and footer) is ``tail``."""
    return hashlib.sha256(tail).digest()


def _trailer_start(pack: Buffer, what: str) -> int:
    """Where the stored trailer begins (the blobs end)."""
    if len(pack) < FOOTER.size:
        raise IntegrityError(f"{what}: too short for a pack ({len(pack)} bytes)")
    length, magic = FOOTER.unpack_from(pack, len(pack) - FOOTER.size)
    start = len(pack) - FOOTER.size - length
    if magic != PACK_MAGIC or start < 0:
        raise IntegrityError(f"{what}: not a vzbackup pack (bad footer)")
    return start


def read_trailer(codec: Codec, pack: Buffer, what: str) -> list[PackEntry]:
    """The entries of a whole pack's trailer, each checked to lie within the blobs."""
    start = _trailer_start(pack, what)
    length = len(pack) - FOOTER.size - start
    plain = codec.decode(TRAILER_ID, memoryview(pack)[start:start + length],
                         what=f"{what}, trailer", max_size=len(pack) * 16 + 1024)
    if plain[:len(TRAILER_HEAD)] != TRAILER_HEAD:
        raise IntegrityError(f"{what}: unknown trailer format")
    entries = decode_entries(memoryview(plain)[len(TRAILER_HEAD):], what)
    if any(e.offset + e.length > start for e in entries):
        raise IntegrityError(f"{what}: the trailer names bytes past the blobs")
    return entries


def check_pack(codec: Codec, pack_id: bytes, pack: Buffer, what: str) -> list[PackEntry]:
    """The entries of ``pack`` if it is exactly what a writer sealed under ``pack_id``: its
    tail hashes to the id, its blobs lie back to back from the start to the trailer, and
    each decodes to its chunk id and size. ``IntegrityError`` otherwise (decodes every
    chunk: for rebuilding the index, not for a hot path)."""
    view = memoryview(pack)
    start = _trailer_start(view, what)
    if tail_id(view[start:]) != pack_id:
        raise IntegrityError(f"{what}: content does not match its id")
    entries = read_trailer(codec, view, what)
    at = 0
    for e in entries:
        if e.offset != at:
            raise IntegrityError(f"{what}: the trailer leaves a gap or an overlap at {at}")
        try:
            codec.decode_chunk(e.chunk_id, view[e.offset:e.offset + e.length], e.size)
        except IntegrityError as exc:
            raise IntegrityError(f"{what}: {exc.message}") from None
        at += e.length
    if at != start:
        raise IntegrityError(f"{what}: {start - at} bytes before the trailer belong to no chunk")
    return entries
