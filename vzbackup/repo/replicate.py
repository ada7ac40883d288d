"""Copying a restore point to a replica: the chunks the replica lacks, then the manifest.

A replica shares its source's family (same keys, same chunk ids), so a chunk's stored form
copies over as it is, without being decoded and encoded again. The chunks the replica's
index lacks are read from the source's packs (ranged gets, adjacent chunks together), each
checked against its id first (a damaged copy is not spread), and appended to new packs on
the replica. Each pack is named by an index object as soon as it is durable; the manifest
goes last, so the replica never shows a point whose chunks it lacks.

Idempotent and resumable: a chunk the replica's index names is not sent again, so a run cut
midway and started again sends only what is still missing, plus at worst the pack that was
being put when it stopped (put but not yet named by an index object: garbage for GC). So
that this stays a small part of a copy, a copy's packs hold at most an eighth of what it
sends (and at most the repository's pack size).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..domain.manifest import ChunkRef, short_id
from ..errors import IntegrityError, RepositoryError
from ..ports import Advance, CopyStats
from .format import manifest_key
from .packer import PackSink
from .rehome import rehome_unindexed
from .reader import OrderedFetcher

if TYPE_CHECKING:
    from .repository import ChunkRepository

log = logging.getLogger(__name__)

WORKERS = 4  # ranged gets from the source in flight (latency of S3 or SFTP)
PACKS_PER_COPY = 8  # a copy fills at least this many packs...
MIN_PACK = 256 << 10  # ...unless they would be smaller than this


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
    todo = _missing_chunks(source, target, manifest.chunks)
    if advance is not None:
        advance(manifest.size - sum(ref.size for ref in todo))
    sink = PackSink(target.backend, target.codec, target.chunk_index(),
                    pack_size=_pack_size(source, target, todo), checkpoint_packs=1)
    fetcher = OrderedFetcher(source.backend, source.codec, source.chunk_index(), todo, raw=True,
                             workers=WORKERS)
    sent = 0
    try:
        with sink.slot() as pack:
            for ref, fetched in zip(todo, fetcher):
                if fetched.error is not None:
                    raise IntegrityError(f"restore point {short_id(point_id)} ({manifest.guest}) "
                                         f"in {source.name}: {fetched.error.message}")
                sent += sink.append(pack, ref.id, (fetched.blob,), ref.size)
                if advance is not None:
                    advance(ref.size)
    finally:
        fetcher.close()
    sink.seal_all()
    sink.checkpoint()  # the last packs durable and indexed...
    target.backend.flush()
    rehome_unindexed(target.backend, target.codec, target.chunk_index(), sink,
                     ((ref.id, ref.size) for ref in manifest.chunks),
                     f"copy of restore point {short_id(point_id)} to {target.name}")
    target.backend.put(manifest_key(point_id), blob)  # ...before the manifest names them
    target.backend.flush()
    target.keep_retention(manifest)
    log.info("restore point %s copied from %s to %s: %d chunks sent, %d bytes in %d packs",
             short_id(point_id), source.name, target.name, len(todo), sent, sink.packs_put)
    return CopyStats(len(manifest.chunks), len(todo), sent)


def _missing_chunks(source: "ChunkRepository", target: "ChunkRepository",
                    refs: tuple[ChunkRef, ...]) -> list[ChunkRef]:
    """The distinct chunks the target's index lacks, in the order they lie in the
    source's packs (so that adjacent ones are read together)."""
    target_index = target.chunk_index(refresh=True)
    todo = {ref.id: ref for ref in refs if ref.id not in target_index}
    source_index = source.chunk_index()

    def place(ref: ChunkRef) -> tuple[bytes, int]:
        where = source_index.locate(ref.id)
        return (b"", 0) if where is None else (where.pack_id, where.offset)

    return sorted(todo.values(), key=place)


def _pack_size(source: "ChunkRepository", target: "ChunkRepository",
               todo: list[ChunkRef]) -> int:
    """Packs of at most an eighth of the bytes to send: a cut then costs a small part."""
    index = source.chunk_index()
    stored = sum(w.length for w in map(index.locate, (ref.id for ref in todo)) if w is not None)
    return min(target.pack_size, max(MIN_PACK, stored // PACKS_PER_COPY))
