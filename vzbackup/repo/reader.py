"""Reading a restore point back: chunks fetched a few ahead in threads, each checked
against its id and size, the whole stream against the manifest's size and SHA-256."""

from __future__ import annotations

import hashlib
import io
import logging
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ..errors import IntegrityError, ObjectNotFound
from ..domain.manifest import ChunkRef, Manifest, short_id
from ..ports import Backend
from .codec import Codec
from .format import chunk_key

log = logging.getLogger(__name__)

WORKERS = 2
PREFETCH = 8  # chunks fetched ahead of the reader: bounds memory to ~ 8 x 256 KiB


def fetch_chunk(backend: Backend, codec: Codec, ref: ChunkRef) -> bytes:
    """A chunk's verified plaintext; ``IntegrityError`` if it is missing or damaged."""
    try:
        blob = backend.get(chunk_key(ref.id))
    except ObjectNotFound:
        raise IntegrityError(f"chunk {ref.id.hex()} is missing") from None
    return codec.decode_chunk(ref.id, blob, ref.size)


def point_error(manifest: Manifest, point_id: str, index: int,
                exc: IntegrityError) -> IntegrityError:
    """``exc`` restated with the restore point and the chunk's index in it."""
    return IntegrityError(f"restore point {short_id(point_id)} ({manifest.guest}), "
                          f"chunk #{index} of {len(manifest.chunks)}: {exc.message}")


def stream_problem(manifest: Manifest, point_id: str, size: int, sha256: str) -> str | None:
    """What is wrong with the whole stream, or None."""
    if size != manifest.size:
        return (f"restore point {short_id(point_id)}: stream is {size} bytes, "
                f"the manifest says {manifest.size}")
    if sha256 != manifest.sha256:
        return f"restore point {short_id(point_id)}: SHA-256 of the whole stream does not match"
    return None


class OrderedFetcher:
    """Fetches a manifest's chunks in order, ``PREFETCH`` ahead, in a small thread pool."""

    def __init__(self, backend: Backend, codec: Codec, refs: tuple[ChunkRef, ...]):
        self._backend, self._codec, self._refs = backend, codec, refs
        self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="vzbackup-fetch")
        self._queue: deque[Future] = deque()
        self._next = 0

    def __iter__(self) -> Iterator[Future]:
        """One future per chunk, in manifest order; ``.result()`` is the plaintext."""
        while self._queue or self._next < len(self._refs):
            self._fill()
            yield self._queue.popleft()

    def _fill(self) -> None:
        while len(self._queue) < PREFETCH and self._next < len(self._refs):
            ref = self._refs[self._next]
            self._queue.append(self._pool.submit(fetch_chunk, self._backend, self._codec, ref))
            self._next += 1

    def close(self) -> None:
        for future in self._queue:
            future.cancel()
        self._queue.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)


class ChunkPointReader(io.RawIOBase):
    """``ports.PointReader``: a readable, verified stream of one restore point."""

    def __init__(self, backend: Backend, codec: Codec, point_id: str, manifest: Manifest):
        super().__init__()
        self.manifest = manifest
        self.point_id = point_id
        self._fetcher = OrderedFetcher(backend, codec, manifest.chunks)
        self._chunks = enumerate(iter(self._fetcher))
        self._current = b""
        self._pos = 0
        self._size = 0
        self._sha = hashlib.sha256()
        self._eof = False

    def __repr__(self) -> str:
        return f"ChunkPointReader({short_id(self.point_id)})"

    def readable(self) -> bool:
        return True

    def _advance(self) -> bool:
        """Load the next chunk; False at the verified end of the stream."""
        try:
            index, future = next(self._chunks)
        except StopIteration:
            self._finish()
            return False
        try:
            self._current = future.result()
        except IntegrityError as exc:
            raise point_error(self.manifest, self.point_id, index, exc) from None
        self._pos = 0
        self._size += len(self._current)
        self._sha.update(self._current)
        return True

    def _finish(self) -> None:
        problem = stream_problem(self.manifest, self.point_id, self._size, self._sha.hexdigest())
        if problem:
            raise IntegrityError(problem)
        self._eof = True

    def _slice(self, n: int) -> bytes:
        """Up to ``n`` bytes of the current chunk, fetching the next one when it is used up."""
        if self.closed:
            raise ValueError("I/O operation on closed restore point reader")
        while not self._eof and self._pos >= len(self._current):
            if not self._advance():
                return b""
        if self._eof:
            return b""
        start = self._pos
        self._pos = min(len(self._current), start + n)
        if start == 0 and self._pos == len(self._current):
            return self._current  # whole chunk: no copy
        return self._current[start:self._pos]

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        return self._slice(size) if size else b""

    def readall(self) -> bytes:
        return b"".join(iter(lambda: self._slice(1 << 30), b""))

    def readinto(self, buf: Any) -> int:
        view = memoryview(buf).cast("B")
        data = self._slice(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._fetcher.close()
            self._current = b""
        super().close()
