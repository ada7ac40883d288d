"""Reading chunks back: located by the index, read from their packs with ranged gets
(adjacent chunks of a pack in one get), a few reads ahead in threads, each chunk checked
against its id and size; a restore point's whole stream also against the manifest's size
and SHA-256."""

from __future__ import annotations

import hashlib
import io
import logging
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..errors import IntegrityError, ObjectNotFound
from ..domain.manifest import ChunkRef, Manifest, short_id
from ..ports import Backend
from .cache import IndexCache
from .codec import Buffer, Codec
from .format import pack_key

log = logging.getLogger(__name__)

WORKERS = 2
READ_AHEAD = 6  # ranged reads in flight ahead of the consumer
READ_SPAN = 1 << 20  # adjacent chunks of one pack are read in one get up to this many bytes
MAX_MEMBERS = 512  # chunks served by one read (a run of one repeated chunk: zeros)


@dataclass
class Fetched:
    """One chunk as read: its plaintext, or what is wrong with it."""

    data: bytes = b""
    error: IntegrityError | None = None
    damaged: bool = False  # stored, but failing its check (not merely missing)
    blob: Buffer = b""  # its stored form, when asked for


@dataclass
class Read:
    """One ranged get of a pack, serving ``members`` (ref, offset, length); ``pack_id``
    None: chunks the index does not know."""

    pack_id: bytes | None
    start: int = 0
    end: int = 0
    members: list[tuple[ChunkRef, int, int]] = field(default_factory=list)

    def takes(self, pack_id: bytes, offset: int, length: int) -> bool:
        """Whether a chunk at ``offset`` can join this read: next to it, or inside it (a
        repeated chunk)."""
        if pack_id != self.pack_id or len(self.members) >= MAX_MEMBERS:
            return False
        inside = self.start <= offset and offset + length <= self.end
        return inside or (offset == self.end and offset + length - self.start <= READ_SPAN)


def plan_reads(index: IndexCache, refs: Iterable[ChunkRef], since: float) -> Iterator[Read]:
    """Reads serving ``refs`` in order. An unknown chunk makes the index refresh (once
    since ``since``): another writer may have stored it meanwhile."""
    current: Read | None = None
    for ref in refs:
        where = index.locate(ref.id)
        if where is None:
            index.refresh(unless_since=since)
            where = index.locate(ref.id)
        if where is None:
            if current is not None:
                yield current
            current = None
            yield Read(None, members=[(ref, 0, 0)])
            continue
        pack_id, offset, length = where
        if current is not None and current.takes(pack_id, offset, length):
            current.members.append((ref, offset, length))
            current.end = max(current.end, offset + length)
            continue
        if current is not None:
            yield current
        current = Read(pack_id, offset, offset + length, [(ref, offset, length)])
    if current is not None:
        yield current


class ChunkReads:
    """Runs reads: one ranged get, then each chunk decoded and checked."""

    def __init__(self, backend: Backend, codec: Codec, index: IndexCache, since: float, *,
                 raw: bool = False):
        self._backend, self._codec, self._index = backend, codec, index
        self._since = since
        self._raw = raw  # keep the stored forms (verified), not the plaintexts

    def run(self, read: Read) -> list[Fetched]:
        if read.pack_id is None:
            return [_missing(ref, "the index names no pack holding it")
                    for ref, _, _ in read.members]
        try:
            blob = self._backend.get(pack_key(read.pack_id), read.start, read.end - read.start)
        except ObjectNotFound:
            return self._pack_gone(read)
        view, done = memoryview(blob), {}
        out = []
        for ref, offset, length in read.members:
            fetched = done.get(offset)
            if fetched is None:
                piece = view[offset - read.start:offset - read.start + length]
                fetched = done[offset] = self._decode(ref, piece, read.pack_id)
            out.append(fetched)
        return out

    def _decode(self, ref: ChunkRef, piece: memoryview, pack_id: bytes) -> Fetched:
        try:
            data = self._codec.decode_chunk(ref.id, piece, ref.size)
        except IntegrityError as exc:
            return Fetched(error=IntegrityError(f"{exc.message} (in pack {short_id(pack_id.hex())})"),
                           damaged=True)
        return Fetched(blob=piece) if self._raw else Fetched(data)

    def _pack_gone(self, read: Read) -> list[Fetched]:
        """The chunks may have moved since the index was loaded (a repair): look again."""
        assert read.pack_id is not None
        self._index.refresh(unless_since=self._since)
        out = []
        for ref, _, _ in read.members:
            where = self._index.locate(ref.id)
            if where is None or where.pack_id == read.pack_id:
                out.append(_missing(ref, f"its pack {short_id(read.pack_id.hex())} is gone"))
            else:
                out += self.run(Read(where.pack_id, where.offset, where.offset + where.length,
                                     [(ref, where.offset, where.length)]))
        return out


def _missing(ref: ChunkRef, why: str) -> Fetched:
    return Fetched(error=IntegrityError(f"chunk {ref.id.hex()} is missing ({why})"))


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
    """Fetches chunks in the order given, ``READ_AHEAD`` reads ahead, in a small thread
    pool; one :class:`Fetched` per ref."""

    def __init__(self, backend: Backend, codec: Codec, index: IndexCache,
                 refs: Sequence[ChunkRef], *, raw: bool = False, workers: int = WORKERS):
        since = time.monotonic()
        index.ensure_loaded()
        self._refs, self._index, self._since = refs, index, since
        self._reads = ChunkReads(backend, codec, index, since, raw=raw)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="vzbackup-fetch")
        self._queue: deque[Future] = deque()

    def __iter__(self) -> Iterator[Fetched]:
        planned = plan_reads(self._index, self._refs, self._since)
        while True:
            while len(self._queue) < READ_AHEAD:
                read = next(planned, None)
                if read is None:
                    break
                self._queue.append(self._pool.submit(self._reads.run, read))
            if not self._queue:
                return
            yield from self._queue.popleft().result()

    def close(self) -> None:
        for future in self._queue:
            future.cancel()
        self._queue.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)


class ChunkPointReader(io.RawIOBase):
    """``ports.PointReader``: a readable, verified stream of one restore point."""

    def __init__(self, backend: Backend, codec: Codec, index: IndexCache, point_id: str,
                 manifest: Manifest):
        super().__init__()
        self.manifest = manifest
        self.point_id = point_id
        self._fetcher = OrderedFetcher(backend, codec, index, manifest.chunks)
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
            index, fetched = next(self._chunks)
        except StopIteration:
            self._finish()
            return False
        if fetched.error is not None:
            raise point_error(self.manifest, self.point_id, index, fetched.error)
        self._current = fetched.data
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
