"""Content-defined chunking of a stream with the compiled FastCDC of ``pyfastcdc``.

The stream is read in large blocks; chunks are cut inside a block, and the unfinished tail
(whatever starts less than ``max_size`` before the end of the block) is carried over to the
next block. FastCDC decides a cut from at most ``max_size`` bytes after the chunk's start,
so cut points are the same as when the whole stream is chunked at once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from ..errors import EnvironmentBroken

log = logging.getLogger(__name__)

BLOCK_SIZE = 8 * 1024 * 1024


def _compiled_fastcdc() -> type:
    """The Cython FastCDC class; the pure-Python fallback is ~300x slower and refused."""
    try:
        from pyfastcdc.cy import FastCDC
        from pyfastcdc.cy import fastcdc as module
    except ImportError as exc:
        raise EnvironmentBroken(
            f"the compiled FastCDC chunker (pyfastcdc.cy) cannot be imported ({exc}); "
            "only the pure-Python fallback is available, which is about 300 times slower"
        ) from exc
    if not str(getattr(module, "__file__", "")).endswith((".so", ".pyd")):
        raise EnvironmentBroken(
            "pyfastcdc.cy is not a compiled extension module "
            f"({getattr(module, '__file__', '?')}): reinstall pyfastcdc from a binary wheel"
        )
    return FastCDC


@dataclass(frozen=True)
class ChunkerParams:
    min_size: int = 16 * 1024
    avg_size: int = 64 * 1024
    max_size: int = 256 * 1024

    def __post_init__(self) -> None:
        if not 64 <= self.min_size <= self.avg_size <= self.max_size:
            raise ValueError(f"chunk sizes must satisfy 64 <= min <= avg <= max, got {self}")

    def to_dict(self) -> dict[str, int]:
        return {"min_size": self.min_size, "avg_size": self.avg_size, "max_size": self.max_size}

    @classmethod
    def from_dict(cls, doc: dict[str, int]) -> "ChunkerParams":
        return cls(int(doc["min_size"]), int(doc["avg_size"]), int(doc["max_size"]))


class Chunker:
    """Cuts streams or buffers into content-defined chunks. Safe to share between threads:
    each call makes its own iterator."""

    def __init__(self, params: ChunkerParams = ChunkerParams(), *, seed: int = 0,
                 block_size: int = BLOCK_SIZE):
        if block_size < params.max_size:
            raise ValueError(f"block_size {block_size} is smaller than max_size {params.max_size}")
        self.params = params
        self.block_size = block_size
        self._cdc = _compiled_fastcdc()(
            params.avg_size, min_size=params.min_size, max_size=params.max_size, seed=seed)

    def cut_bytes(self, data: bytes | bytearray | memoryview) -> Iterator[memoryview]:
        """Chunks of a buffer held whole (the reference the stream path must agree with)."""
        for chunk in self._cdc.cut_buf(data):
            yield chunk.data

    def cut_stream(self, stream: BinaryIO) -> Iterator[list[memoryview]]:
        """Chunks of ``stream``, one list per block read. The views stay valid as long as
        they are referenced (each block is a fresh buffer)."""
        tail = b""
        while True:
            block, eof = _read_block(stream, tail, self.block_size)
            if not block:
                return
            chunks, tail = self._cut_block(block, eof)
            if chunks:
                yield chunks
            if eof:
                return

    def _cut_block(self, block: bytearray, eof: bool) -> tuple[list[memoryview], bytes]:
        chunks: list[memoryview] = []
        max_size = self.params.max_size
        size = len(block)
        for chunk in self._cdc.cut_buf(block):
            if not eof and size - chunk.offset < max_size:
                return chunks, bytes(block[chunk.offset:])
            chunks.append(chunk.data)
        return chunks, b""


def _read_block(stream: BinaryIO, tail: bytes, block_size: int) -> tuple[bytearray, bool]:
    """``tail`` followed by up to ``block_size`` bytes of ``stream``; True once at EOF."""
    buf = bytearray(len(tail) + block_size)
    buf[: len(tail)] = tail
    view = memoryview(buf)
    filled = len(tail)
    readinto = getattr(stream, "readinto", None)
    while filled < len(buf):
        if readinto is not None:
            n = readinto(view[filled:])
        else:
            piece = stream.read(len(buf) - filled)
            n = len(piece)
            view[filled:filled + n] = piece
        if not n:
            view.release()
            del buf[filled:]
            return buf, True
        filled += n
    view.release()
    return buf, False
