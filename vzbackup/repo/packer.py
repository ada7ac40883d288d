"""Filling packs, putting them, and naming them in index objects once they are durable."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager

from ..ports import Backend
from .cache import IndexCache
from .codec import Buffer, Codec
from .format import index_key, pack_key
from .index import encode_index
from .packs import PACK_SIZE, OpenPack, PackEntry

log = logging.getLogger(__name__)


class PackSink:
    """Puts chunks' stored forms into packs, and full packs on the backend. A checkpoint
    makes the packs put so far durable, then names them in an index object: only then can
    a backup or a restore rely on them. Packs put and never named (the process died) are
    invisible garbage.

    Thread-safe: each thread fills the open pack it took with :meth:`slot`. A full pack is
    sealed and put by that thread, or, with ``background`` > 0, by a put thread: the full
    pack's buffer is swapped for an empty spare one, so that the filling thread goes on at
    once (a pack written with ``O_DIRECT`` waits for the disk). At most ``background`` packs
    are in flight; a failed put is raised by the next :meth:`append`, :meth:`seal_all` or
    :meth:`drain`. :meth:`close` stops the put thread."""

    def __init__(self, backend: Backend, codec: Codec, index: IndexCache, *,
                 pack_size: int = PACK_SIZE, slots: int = 1,
                 checkpoint_packs: int | None = None, background: int = 0):
        self.backend, self.codec, self.index = backend, codec, index
        self._packs = [OpenPack(pack_size) for _ in range(slots)]
        self._free: queue.LifoQueue[OpenPack] = queue.LifoQueue()
        for pack in self._packs:
            self._free.put(pack)
        self._checkpoint_packs = checkpoint_packs  # checkpoint after this many packs
        self._unindexed: list[tuple[bytes, list[PackEntry]]] = []
        self._lock = threading.Lock()
        self._checkpointing = threading.Lock()
        self._put_parts = getattr(backend, "put_parts", None)
        self.packs_put = 0
        self.index_ids: list[str] = []
        self._background = background
        self._spares: queue.Queue[OpenPack] = queue.Queue()
        for _ in range(background):
            self._spares.put(OpenPack(pack_size))
        self._putter: ThreadPoolExecutor | None = None
        self._in_flight: set[Future] = set()
        self._put_error: BaseException | None = None

    @contextmanager
    def slot(self) -> Iterator[OpenPack]:
        """An open pack for this thread's appends."""
        pack = self._free.get()
        try:
            yield pack
        finally:
            self._free.put(pack)

    def append(self, pack: OpenPack, chunk_id: bytes, parts: Iterable[Buffer], size: int) -> int:
        """Add a chunk's stored form to ``pack`` (put when full); its length."""
        length = pack.add(chunk_id, parts, size)
        if pack.full:
            if self._background:
                self._put_in_background(pack)
            else:
                self._seal(pack)
        return length

    def _put_in_background(self, pack: OpenPack) -> None:
        spare = self._spares.get()  # waits while ``background`` packs are in flight
        if self._put_error is not None:
            self._spares.put(spare)
            raise self._put_error
        spare.swap(pack)  # the full pack goes to the put thread, ``pack`` is empty again
        with self._lock:
            if self._putter is None:
                self._putter = ThreadPoolExecutor(1, thread_name_prefix="vzbackup-put")
            future = self._putter.submit(self._put_spare, spare)
            self._in_flight.add(future)
        future.add_done_callback(self._done)

    def _put_spare(self, spare: OpenPack) -> None:
        try:
            self._seal(spare)
        except BaseException as exc:
            with self._lock:
                self._put_error = self._put_error or exc
            raise
        finally:
            spare.reset()
            self._spares.put(spare)

    def _done(self, future: Future) -> None:
        with self._lock:
            self._in_flight.discard(future)

    def _raise_put_error(self) -> None:
        if self._put_error is not None:
            raise self._put_error

    def drain(self) -> None:
        """Wait for the packs being put in the background; raise a failed put's error."""
        with self._lock:
            pending = list(self._in_flight)
        wait(pending)
        self._raise_put_error()

    def close(self) -> None:
        """Wait for background puts and stop the put thread (errors are left to the caller
        that already failed, or to :meth:`drain`)."""
        with self._lock:
            putter, self._putter = self._putter, None
        if putter is not None:
            putter.shutdown(wait=True)

    @property
    def unindexed(self) -> int:
        """Packs put and not yet named by an index object."""
        return len(self._unindexed)

    def seal_all(self) -> None:
        """Put every open pack, merged while they fit in one (no thread may be appending),
        after the packs being put in the background."""
        self.drain()
        packs = sorted((p for p in self._packs if p.entries), key=len, reverse=True)
        for pack in packs:
            for other in packs:
                if other is not pack and other.entries and len(pack) + len(other) <= pack.target:
                    pack.absorb(other)
            self._seal(pack)

    def checkpoint(self, min_packs: int = 1) -> None:
        """If at least ``min_packs`` packs were put since the last checkpoint: flush the
        backend, then write an index object naming them."""
        with self._checkpointing:
            with self._lock:
                if len(self._unindexed) < min_packs:
                    return
                packs, self._unindexed = dict(self._unindexed), []
            self.backend.flush()  # durable before an index object makes them visible
            index_id, blob = encode_index(self.codec, packs)
            self.backend.put(index_key(index_id), blob)
            self.index.add_object(index_id, blob, packs)
            self.index_ids.append(index_id)
            log.debug("index object %s names %d packs", index_id[:12], len(packs))

    def _seal(self, pack: OpenPack) -> None:
        if not pack.entries:
            return
        pack_id, view = pack.seal(self.codec)
        try:
            if self._put_parts is not None:
                self._put_parts(pack_key(pack_id), (view,))
            else:
                self.backend.put(pack_key(pack_id), bytes(view))
        finally:
            entries = pack.entries
            pack.reset()
        with self._lock:
            self._unindexed.append((pack_id, entries))
            self.packs_put += 1
            due = self._checkpoint_packs is not None and \
                len(self._unindexed) >= self._checkpoint_packs
        if due:
            self.checkpoint()
