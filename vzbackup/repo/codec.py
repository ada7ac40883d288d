"""How a chunk or manifest becomes a stored object, and back.

Object layout: ``b"VZ" | version (1 byte) | flags (1 byte)`` then the body. Flags: ZSTD (the
body is a zstd frame, else raw), AEAD (the body is ``nonce (12) | AES-256-GCM(payload)``
with the header and the object id as associated data). Chunk ids are SHA-256 of the
plaintext, or HMAC-SHA-256 under the repository's id key when it is encrypted.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from typing import Callable

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import IntegrityError
from .keys import RepoKeys

MAGIC = b"VZ"
VERSION = 1
ZSTD = 0x01
AEAD = 0x02
HEADER_SIZE = 4
NONCE_SIZE = 12
Buffer = bytes | bytearray | memoryview
_HEADERS = {flags: MAGIC + bytes((VERSION, flags)) for flags in (0, ZSTD, AEAD, ZSTD | AEAD)}


class Codec:
    """Encodes and decodes objects. Thread-safe: zstd contexts are kept per thread."""

    def __init__(self, *, level: int = 3, keys: RepoKeys | None = None):
        self.level = level
        self.encrypted = keys is not None
        self._aead = AESGCM(keys.enc_key) if keys else None
        self._id_key = keys.id_key if keys else None
        self._local = threading.local()
        self.chunk_id: Callable[[Buffer], bytes] = (
            self._keyed_id if keys else lambda data: hashlib.sha256(data).digest())

    def __repr__(self) -> str:
        return f"Codec(level={self.level}, encrypted={self.encrypted})"

    def _keyed_id(self, data: Buffer) -> bytes:
        return hmac.digest(self._id_key, data, "sha256")  # type: ignore[arg-type]

    def _zstd(self) -> tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor]:
        pair = getattr(self._local, "pair", None)
        if pair is None:
            pair = self._local.pair = (zstandard.ZstdCompressor(level=self.level),
                                       zstandard.ZstdDecompressor())
        return pair

    def encode(self, obj_id: bytes, data: Buffer) -> bytes:
        """The stored form of ``data``; ``obj_id`` binds the ciphertext to its name."""
        return b"".join(self.encode_parts(obj_id, data))

    def encode_parts(self, obj_id: bytes, data: Buffer) -> tuple[Buffer, ...]:
        """:meth:`encode` as pieces to be written one after the other (no joining copy)."""
        packed: Buffer = self._zstd()[0].compress(data)
        flags = ZSTD
        if len(packed) >= len(data):  # incompressible: store as is, skip decompression later
            packed, flags = data, 0
        if self._aead is None:
            return _HEADERS[flags], packed
        header = _HEADERS[flags | AEAD]
        nonce = os.urandom(NONCE_SIZE)
        return header, nonce, self._aead.encrypt(nonce, packed, header + obj_id)

    def decode(self, obj_id: bytes, blob: Buffer, *, what: str, max_size: int) -> bytes:
        """The plaintext of a stored object, or ``IntegrityError`` naming ``what``."""
        flags = self._check_header(blob, what)
        body = memoryview(blob)[HEADER_SIZE:]
        if flags & AEAD:
            body = memoryview(self._open_sealed(bytes(blob[:HEADER_SIZE]), obj_id, body, what))
        if not flags & ZSTD:
            return bytes(body)
        return self._decompress(body, what, max_size)

    def decode_chunk(self, chunk_id: bytes, blob: Buffer, size: int) -> bytes:
        """A chunk's plaintext after checking its id and size."""
        what = f"chunk {chunk_id.hex()}"
        data = self.decode(chunk_id, blob, what=what, max_size=size)
        if len(data) != size:
            raise IntegrityError(f"{what}: {len(data)} bytes instead of {size}")
        if not hmac.compare_digest(self.chunk_id(data), chunk_id):
            raise IntegrityError(f"{what}: content does not match its id")
        return data

    def _check_header(self, blob: Buffer, what: str) -> int:
        if len(blob) < HEADER_SIZE or bytes(blob[:2]) != MAGIC:
            raise IntegrityError(f"{what}: not a vzbackup object (bad header)")
        if blob[2] != VERSION:
            raise IntegrityError(f"{what}: unknown object version {blob[2]}")
        flags = blob[3]
        if flags & ~(ZSTD | AEAD) or bool(flags & AEAD) != self.encrypted:
            raise IntegrityError(f"{what}: unexpected flags {flags:#04x} for this repository")
        return flags

    def _open_sealed(self, header: bytes, obj_id: bytes, body: memoryview, what: str) -> bytes:
        nonce, sealed = body[:NONCE_SIZE], body[NONCE_SIZE:]
        try:
            aead = self._aead
            assert aead is not None
            return aead.decrypt(bytes(nonce), sealed, header + obj_id)
        except (InvalidTag, ValueError):
            raise IntegrityError(f"{what}: authentication failed (damaged or wrong key)") from None

    def _decompress(self, body: memoryview, what: str, max_size: int) -> bytes:
        try:
            declared = zstandard.frame_content_size(body)
            if declared < 0 or declared > max_size:
                raise IntegrityError(f"{what}: compressed frame declares {declared} bytes")
            return self._zstd()[1].decompress(body)
        except zstandard.ZstdError as exc:
            raise IntegrityError(f"{what}: cannot decompress ({exc})") from None
