"""Pack files: many stored chunks in one object.

A pack is the chunks' stored forms (``Codec.encode``, each bound to its chunk id) one after
the other, then a trailer and a fixed-size footer::

    blob | blob | ... | trailer | trailer length (4 bytes, big-endian) | b"VZPK"

The trailer lists every blob: chunk id, offset, length and plaintext size. It is itself
encoded by the codec (sealed in an encrypted repository, so chunk ids stay hidden). The
pack id is the SHA-256 of the whole pack: a pack names itself, and the index can be rebuilt
from the packs alone (:func:`read_trailer`).
"""

from __future__ import annotations

import hashlib
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
    """A pack being filled, in one buffer that is reused for the next pack."""

    def __init__(self, target: int):
        self.target = target
        self._buf = bytearray()
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
            self._buf.extend(bytes(max(end, self.target + (1 << 20)) - len(self._buf)))
        self._buf[self._end:end] = part
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
        self._write(trailer)
        self._write(FOOTER.pack(len(trailer), PACK_MAGIC))
        if self._end > MAX_PACK:
            raise ValueError(f"a pack of {self._end} bytes is too large")
        self._view = memoryview(self._buf)[:self._end]
        return hashlib.sha256(self._view).digest(), self._view

    def reset(self) -> None:
        if self._view is not None:
            self._view.release()
            self._view = None
        self._end = 0
        self.entries = []


def read_trailer(codec: Codec, pack: Buffer, what: str) -> list[PackEntry]:
    """The entries of a whole pack's trailer, each checked to lie within the blobs."""
    if len(pack) < FOOTER.size:
        raise IntegrityError(f"{what}: too short for a pack ({len(pack)} bytes)")
    length, magic = FOOTER.unpack_from(pack, len(pack) - FOOTER.size)
    start = len(pack) - FOOTER.size - length
    if magic != PACK_MAGIC or start < 0:
        raise IntegrityError(f"{what}: not a vzbackup pack (bad footer)")
    plain = codec.decode(TRAILER_ID, memoryview(pack)[start:start + length],
                         what=f"{what}, trailer", max_size=len(pack) * 16 + 1024)
    if plain[:len(TRAILER_HEAD)] != TRAILER_HEAD:
        raise IntegrityError(f"{what}: unknown trailer format")
    entries = decode_entries(memoryview(plain)[len(TRAILER_HEAD):], what)
    if any(e.offset + e.length > start for e in entries):
        raise IntegrityError(f"{what}: the trailer names bytes past the blobs")
    return entries


def check_pack(pack_id: bytes, pack: Buffer, what: str) -> None:
    """``IntegrityError`` unless ``pack`` hashes to its id."""
    if hashlib.sha256(pack).digest() != pack_id:
        raise IntegrityError(f"{what}: content does not match its id")
