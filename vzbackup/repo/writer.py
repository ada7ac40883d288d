"""Writing a restore point: chunk the stream, store the chunks the repository lacks in
parallel, then (on commit) flush and write the manifest last."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import timezone
from typing import BinaryIO

from .. import __version__
from ..errors import RepositoryError
from ..domain.manifest import ChunkRef, Manifest, short_id
from ..ports import Advance, Backend, PointDraft, WriteStats
from .cache import ChunkCache
from .chunker import Chunker
from .codec import Codec
from .format import chunk_key, manifest_key

log = logging.getLogger(__name__)

WORKERS = 2
BATCH = 16  # chunks per task: one task per chunk costs more in thread hand-offs than hashing
MAX_IN_FLIGHT = 8  # batches queued or running: bounds memory to ~ 8 x 16 x 256 KiB


class ChunkStore:
    """Stores chunks the repository lacks; thread-safe. Remembers what it wrote or found so
    the cache can learn them once they are durable."""

    def __init__(self, backend: Backend, codec: Codec, cache: ChunkCache):
        self.backend, self.codec, self.cache = backend, codec, cache
        self._claimed: set[bytes] = set()
        self._lock = threading.Lock()
        self.seen: list[bytes] = []  # ids stored or found on the backend, not yet in cache

    def store(self, data: memoryview) -> tuple[ChunkRef, int]:
        """The chunk's reference and the bytes newly stored for it (0 when it existed)."""
        chunk_id = self.codec.chunk_id(data)
        ref = ChunkRef(chunk_id, len(data))
        with self._lock:
            if chunk_id in self.cache or chunk_id in self._claimed:
                return ref, 0
            self._claimed.add(chunk_id)
        key = chunk_key(chunk_id)
        stored = 0
        if self.backend.stat(key) is None:
            blob = self.codec.encode(chunk_id, data)
            self.backend.put(key, blob)
            stored = len(blob)
        self.seen.append(chunk_id)
        return ref, stored

    def store_batch(self, batch: list[memoryview]) -> list[tuple[ChunkRef, int]]:
        return [self.store(data) for data in batch]


class ChunkPointWriter:
    """``ports.PointWriter`` over a chunk repository."""

    def __init__(self, backend: Backend, codec: Codec, chunker: Chunker, cache: ChunkCache,
                 draft: PointDraft):
        self._backend, self._codec, self._chunker = backend, codec, chunker
        self._store = ChunkStore(backend, codec, cache)
        self._cache = cache
        self._draft = draft
        self._stats = WriteStats()
        self._refs: list[ChunkRef] = []
        self._sha256 = ""
        self._state = "new"  # new -> written -> committed | aborted

    @property
    def stats(self) -> WriteStats:
        return self._stats

    def write(self, stream: BinaryIO, advance: Advance | None = None) -> None:
        if self._state != "new":
            raise RepositoryError(
                f"restore point of {self._draft.guest}: write() called after {self._state}")
        whole = hashlib.sha256()
        pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="vzbackup-store")
        try:
            self._pump(stream, pool, whole, advance)
        except BaseException:
            self._state = "aborted"
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        self._sha256 = whole.hexdigest()
        self._state = "written"

    def _pump(self, stream: BinaryIO, pool: ThreadPoolExecutor, whole: "hashlib._Hash",
              advance: Advance | None) -> None:
        """Chunk and hash in this thread; store batches in the pool, in order, with at most
        ``MAX_IN_FLIGHT`` batches waiting."""
        in_flight: deque[Future] = deque()
        for chunks in self._chunker.cut_stream(stream):
            for data in chunks:
                whole.update(data)
            for start in range(0, len(chunks), BATCH):
                batch = chunks[start:start + BATCH]
                in_flight.append(pool.submit(self._store.store_batch, batch))
                while len(in_flight) > MAX_IN_FLIGHT:
                    self._collect(in_flight.popleft().result())
            if advance is not None:
                advance(sum(len(c) for c in chunks))
        while in_flight:
            self._collect(in_flight.popleft().result())

    def _collect(self, results: list[tuple[ChunkRef, int]]) -> None:
        s = self._stats
        new = [n for _, n in results if n]
        self._refs.extend(ref for ref, _ in results)
        self._stats = replace(
            s, bytes_in=s.bytes_in + sum(ref.size for ref, _ in results),
            chunks=s.chunks + len(results), new_chunks=s.new_chunks + len(new),
            new_bytes_stored=s.new_bytes_stored + sum(new))

    def commit(self) -> Manifest:
        if self._state != "written":
            raise RepositoryError(f"restore point of {self._draft.guest}: commit() in state "
                                  f"{self._state} (write the stream first)")
        self._backend.flush()  # every chunk durable before the manifest names it
        manifest = self._manifest()
        data = manifest.to_bytes()
        point_id = manifest.id
        self._backend.put(manifest_key(point_id), self._codec.encode(bytes.fromhex(point_id), data))
        self._backend.flush()
        self._cache.add(self._store.seen)
        self._state = "committed"
        log.info("restore point %s of %s: %d chunks, %d new, %d bytes stored", short_id(point_id),
                 self._draft.guest, self._stats.chunks, self._stats.new_chunks,
                 self._stats.new_bytes_stored)
        return manifest

    def _manifest(self) -> Manifest:
        d, s = self._draft, self._stats
        created = d.created if d.created.tzinfo else d.created.replace(tzinfo=timezone.utc)
        return Manifest(
            guest=d.guest, guest_name=d.guest_name, platform=d.platform,
            source_node=d.source_node, created=created, size=s.bytes_in, sha256=self._sha256,
            chunks=tuple(self._refs), guest_config=dict(d.guest_config), labels=dict(d.labels),
            stats={"bytes_in": s.bytes_in, "chunks": s.chunks, "new_chunks": s.new_chunks,
                   "new_bytes_stored": s.new_bytes_stored},
            tool_version=__version__)

    def abort(self) -> None:
        """Forget the point: no manifest is written; stored chunks are left to GC."""
        if self._state != "committed":
            self._state = "aborted"

