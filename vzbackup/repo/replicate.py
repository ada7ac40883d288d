"""Copying a restore point to a replica: the chunks the replica lacks, then the manifest.

Idempotent and resumable: a chunk already in the replica is not sent again, so a run cut
mid-way and started again sends only what is still missing; the manifest goes last, so
the replica never shows a point whose chunks it lacks. Every chunk is checked against its
id before it is sent: a damaged copy is not spread.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..domain.manifest import short_id
from ..errors import RepositoryError
from ..ports import Advance, CopyStats
from .format import chunk_key, manifest_key

if TYPE_CHECKING:
    from .repository import ChunkRepository

log = logging.getLogger(__name__)

WORKERS = 4


@dataclass
class _Counter:
    sent: int = 0
    bytes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, n: int) -> None:
        with self.lock:
            self.sent += 1
            self.bytes += n


def copy_point(source: "ChunkRepository", target: "ChunkRepository", point_id: str,
               advance: Advance | None = None) -> CopyStats:
    if source.config.family_id != target.config.family_id:
        raise RepositoryError(f"{target.name} is not a replica of {source.name} (different "
                              "repository family: chunk ids differ)",
                              hint="Replicate into an empty location: it becomes a replica.")
    blob = source.backend.get(manifest_key(point_id))
    manifest = source.load_manifest(point_id)  # checks the manifest against its id
    if target.backend.stat(manifest_key(point_id)) is not None:
        return CopyStats(len(manifest.chunks), 0, 0)
    cache = target.chunk_cache()
    sizes = {ref.id: ref.size for ref in manifest.chunks}
    todo = [cid for cid in sizes if cid not in cache]
    counter = _Counter()

    def send(chunk_id: bytes) -> None:
        key = chunk_key(chunk_id)
        if target.backend.stat(key) is None:
            data = source.backend.get(key)
            source.codec.decode_chunk(chunk_id, data, sizes[chunk_id])  # never spread damage
            target.backend.put(key, data)
            counter.add(len(data))
        if advance is not None:
            advance(sizes[chunk_id])

    with ThreadPoolExecutor(WORKERS, thread_name_prefix="vzbackup-replicate") as pool:
        for _ in pool.map(send, todo):
            pass
    target.backend.flush()  # every chunk durable before the manifest names it
    target.backend.put(manifest_key(point_id), blob)
    target.backend.flush()
    cache.add(list(sizes))
    log.info("restore point %s copied from %s to %s: %d chunks sent, %d bytes",
             short_id(point_id), source.name, target.name, counter.sent, counter.bytes)
    return CopyStats(len(manifest.chunks), counter.sent, counter.bytes)
