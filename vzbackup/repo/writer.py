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
from ..errors import IntegrityError, ObjectNotFound, RepositoryError
from ..domain.manifest import ChunkRef, Manifest, short_id
from ..ports import Advance, Backend, PointDraft, WriteStats
from .cache import ChunkCache
from .chunker import Chunker
from .codec import Codec
from .format import chunk_key, manifest_key

log = logging.getLogger(__name__)

WORKERS = 2  # store threads (3 measured no faster on 2 cores, tar takes its share)
BATCH_BYTES = 1 << 20  # chunks per store task: ~1 MiB, so thread hand-offs stay rare
# Buffers of the chunker, reused in turn (fresh memory is slow to touch, perf.md trap 3). They
# bound memory to ~ BLOCKS x 2 MiB (the chunker's block size) plus one batch per store thread.
BLOCKS = 8
WRITEBACK_BYTES = 128 << 20  # stream bytes between ``writeback`` calls of the backend


class ChunkStore:
    """Stores chunks the repository lacks; thread-safe. Remembers what it wrote or found so
    the cache can learn them once they are durable."""

    def __init__(self, backend: Backend, codec: Codec, cache: ChunkCache):
        self.backend, self.codec, self.cache = backend, codec, cache
        self._claimed: set[bytes] = set()
        self._lock = threading.Lock()
        self.seen: list[bytes] = []  # ids stored or found on the backend, not yet in cache
        self._put_parts = getattr(backend, "put_parts", None)  # writes without joining

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
        if self.backend.stat(key) is None or not self._intact(chunk_id, key, len(data)):
            parts = self.codec.encode_parts(chunk_id, data)
            if self._put_parts is not None:
                self._put_parts(key, parts)
            else:
                self.backend.put(key, b"".join(parts))
            stored = sum(len(p) for p in parts)
        self.seen.append(chunk_id)
        return ref, stored

    def _intact(self, chunk_id: bytes, key: str, size: int) -> bool:
        """Whether a chunk the backend has, but this cache does not know, reads back right.
        Such a chunk may be left by a run that never flushed it: after a power loss a
        renamed file can be empty or torn, and deduplicating against it would make this
        point unrestorable. A damaged one is simply stored again (which also repairs it)."""
        try:
            self.codec.decode_chunk(chunk_id, self.backend.get(key), size)
        except (IntegrityError, ObjectNotFound):
            log.warning("chunk %s found damaged or missing in the repository: stored again",
                        chunk_id.hex())
            return False
        return True

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
        hasher = ThreadPoolExecutor(1, thread_name_prefix="vzbackup-sha256")
        flusher = ThreadPoolExecutor(1, thread_name_prefix="vzbackup-writeback")
        pools = (hasher, pool, flusher)
        try:
            self._pump(stream, pool, hasher, flusher, whole, advance)
        except BaseException:
            self._state = "aborted"
            for p in pools:
                p.shutdown(wait=True, cancel_futures=True)
            raise
        for p in pools:
            p.shutdown(wait=True)
        self._sha256 = whole.hexdigest()
        self._state = "written"

    def _pump(self, stream: BinaryIO, pool: ThreadPoolExecutor, hasher: ThreadPoolExecutor,
              flusher: ThreadPoolExecutor, whole: "hashlib._Hash",
              advance: Advance | None) -> None:
        """Read and chunk in this thread into ``BLOCKS`` reused buffers; hash the whole
        stream in ``hasher`` (one thread: in order) and store batches of chunks in
        ``pool``. A buffer is reused once its hash and its batches are done; results are
        collected in stream order."""
        writeback = getattr(self._backend, "writeback", None)
        started: Future | None = None
        unsynced = 0
        size = self._chunker.buffer_size
        free = [bytearray(size) for _ in range(BLOCKS)]
        in_flight: deque[tuple[bytearray, Future, list[Future]]] = deque()

        def acquire() -> bytearray:
            while not free:
                self._finish(in_flight.popleft(), free)
            return free.pop()

        store_batch = self._store.store_batch
        for block in self._chunker.cut_blocks(stream, acquire):
            hashed = hasher.submit(whole.update, block.new_bytes)
            batches: list[Future] = []
            batch: list[memoryview] = []
            filled = 0
            for data in block.chunks:
                batch.append(data)
                filled += len(data)
                if filled >= BATCH_BYTES:
                    batches.append(pool.submit(store_batch, batch))
                    batch, filled = [], 0
            if batch:
                batches.append(pool.submit(store_batch, batch))
            in_flight.append((block.buffer, hashed, batches))
            if advance is not None:
                advance(block.end - block.start)
            if writeback is not None:
                unsynced += block.end - block.start
                if unsynced >= WRITEBACK_BYTES and (started is None or started.done()):
                    if started is not None:
                        started.result()  # a writeback error fails the backup here
                    started, unsynced = flusher.submit(writeback), 0
        while in_flight:
            self._finish(in_flight.popleft(), free)
        if started is not None:
            started.result()

    def _finish(self, entry: tuple[bytearray, Future, list[Future]],
                free: list[bytearray]) -> None:
        buffer, hashed, batches = entry
        hashed.result()
        for future in batches:
            self._collect(future.result())
        free.append(buffer)

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

