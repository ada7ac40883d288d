"""Writing a restore point: chunk the stream, store the chunks the repository lacks into
packs in parallel, then (on commit) make the packs durable, name them in an index object and
write the manifest last."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import timezone
from typing import BinaryIO

from .. import __version__
from ..errors import RepositoryError
from ..domain.manifest import ChunkRef, Manifest, short_id
from ..ports import Advance, Backend, PointDraft, WriteStats
from .cache import IndexCache
from .chunker import Chunker
from .codec import Codec
from .format import manifest_key
from .packer import PackSink
from .packs import PACK_SIZE
from .rehome import rehome_unindexed

log = logging.getLogger(__name__)

WORKERS = 2  # store threads (3 measured no faster on 2 cores, tar takes its share)
PUTTING = 2  # full packs put by a background thread at once, while the store threads go on
BATCH_BYTES = 1 << 20  # chunks per store task: ~1 MiB, so thread hand-offs stay rare
# Buffers of the chunker, reused in turn (fresh memory is slow to touch, perf.md trap 3). They
# bound memory to ~ BLOCKS x 2 MiB (the chunker's block size) plus WORKERS + PUTTING packs.
BLOCKS = 8
WRITEBACK_BYTES = 128 << 20  # stream bytes between background flushes
CHECKPOINT_PACKS = 16  # packs put before a background index object names them


class ChunkStore:
    """Stores the chunks the repository lacks into packs; thread-safe.

    Deduplication trusts only chunks that an index object names, and a pack is named only
    once it is durable (``PackSink.checkpoint``). A pack that a crashed run left torn or
    empty (a power loss before its flush) is therefore never relied upon, so, unlike the
    chunk files of format 1, nothing found on the backend has to be read back first."""

    def __init__(self, codec: Codec, index: IndexCache, sink: PackSink):
        self.codec, self.index, self.sink = codec, index, sink
        self._claimed: set[bytes] = set()  # stored by this writer, maybe not named yet
        self._lock = threading.Lock()

    def store_batch(self, batch: list[memoryview]) -> list[tuple[ChunkRef, int]]:
        """Each chunk's reference and the bytes newly stored for it (0 when it existed).
        The batch's ids first, then one claim under the lock, then the new chunks encoded
        into this thread's pack: few lock and GIL hand-offs per chunk."""
        ids = [self.codec.chunk_id(data) for data in batch]
        new = self._claim(ids)
        stored = [0] * len(batch)
        if new:
            encode, append = self.codec.encode_parts, self.sink.append
            with self.sink.slot() as pack:
                for i in new:
                    data = batch[i]
                    stored[i] = append(pack, ids[i], encode(ids[i], data), len(data))
        return [(ChunkRef(chunk_id, len(data)), n) for chunk_id, data, n in zip(ids, batch, stored)]

    def _claim(self, ids: list[bytes]) -> list[int]:
        """The positions of the chunks neither indexed nor claimed yet, now claimed by us."""
        index, claimed, new = self.index, self._claimed, []
        with self._lock:
            for i, chunk_id in enumerate(ids):
                if chunk_id not in index and chunk_id not in claimed:
                    claimed.add(chunk_id)
                    new.append(i)
        return new


def _background_puts(backend: Backend) -> int:
    """Full packs put by a background thread: only where a put is a local write (``put_parts``:
    the local backend, which waits for the disk with ``O_DIRECT``). A put to a remote or
    rate-limited backend stays in the store thread, so that the dump is read no faster than
    it is stored (a bandwidth limit holds the dump back, not a commit after it) and a stop
    request is acted on at once."""
    return PUTTING if callable(getattr(backend, "put_parts", None)) else 0


class ChunkPointWriter:
    """``ports.PointWriter`` over a chunk repository."""

    def __init__(self, backend: Backend, codec: Codec, chunker: Chunker, index: IndexCache,
                 draft: PointDraft, pack_size: int = PACK_SIZE,
                 after_commit: Callable[[Manifest], None] | None = None):
        self._backend, self._codec, self._chunker = backend, codec, chunker
        self._after_commit = after_commit  # e.g. keep the Object Lock retention it needs
        self._sink = PackSink(backend, codec, index, pack_size=pack_size, slots=WORKERS,
                              background=_background_puts(backend))
        self._store = ChunkStore(codec, index, self._sink)
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
        flusher = ThreadPoolExecutor(1, thread_name_prefix="vzbackup-flush")
        pools = (hasher, pool, flusher)
        try:
            self._pump(stream, pool, hasher, flusher, whole, advance)
        except BaseException:
            self._state = "aborted"
            for p in pools:
                p.shutdown(wait=True, cancel_futures=True)
            self._sink.close()
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
        collected in stream order. Every ``WRITEBACK_BYTES``, ``flusher`` runs
        :meth:`_background_flush`."""
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
            unsynced += block.end - block.start
            if unsynced >= WRITEBACK_BYTES and (started is None or started.done()):
                if started is not None:
                    started.result()  # a flush error fails the backup here
                started, unsynced = flusher.submit(self._background_flush), 0
        while in_flight:
            self._finish(in_flight.popleft(), free)
        if started is not None:
            started.result()

    def _background_flush(self) -> None:
        """A head start for the commit: the local backend's ``writeback`` writes the data
        put so far back to disk while the backup goes on (instead of all at once when the
        manifest waits for it); every ``CHECKPOINT_PACKS`` packs, an index object names
        the packs put, so that a run killed later leaves them reusable."""
        writeback = getattr(self._backend, "writeback", None)
        if writeback is not None:
            writeback()
        self._sink.checkpoint(min_packs=CHECKPOINT_PACKS)

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
        try:
            return self._commit()
        finally:
            self._sink.close()

    def _commit(self) -> Manifest:
        self._sink.seal_all()
        self._sink.checkpoint()  # the packs durable, then an index object names them
        self._backend.flush()  # that index object (and any this point relies on) durable
        # last, right before the manifest: a chunk GC condemned meanwhile is stored again
        rehome_unindexed(self._backend, self._codec, self._store.index, self._sink,
                         ((r.id, r.size) for r in self._refs),
                         f"restore point of {self._draft.guest}")
        manifest = self._manifest()
        data = manifest.to_bytes()
        point_id = manifest.id
        self._backend.put(manifest_key(point_id), self._codec.encode(bytes.fromhex(point_id), data))
        self._backend.flush()
        self._state = "committed"
        if self._after_commit is not None:
            self._after_commit(manifest)
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
        """Forget the point: no manifest is written; packs put are left to GC (reused by
        later backups if an index object names them)."""
        if self._state != "committed":
            self._state = "aborted"
            self._sink.close()

