"""Repairing a repository where a verify found damaged chunks (``verify --repair``).

A damaged chunk shares its pack with others. Each pack holding a damaged copy is replaced:
its intact chunks are copied (their stored forms, as they are) into a new pack, the index
objects naming it are superseded by objects that do not, and the pack itself is moved to
``quarantine/``. The damaged chunks then count as absent, so the next backup of the same
data stores them anew, which heals every point that shares them.

Each step is flushed before the next, so that a crash at any moment leaves every indexed
chunk readable (at worst the damaged pack stays indexed, or a salvaged chunk is indexed
twice): the generation is bumped (every client rebuilds its view of the index), the new
pack is put and indexed, the replacement index objects are put, the replaced ones deleted,
and only then is the damaged pack moved.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from ..domain.manifest import short_id
from ..errors import IntegrityError, ObjectNotFound
from ..ports import Backend
from .cache import IndexCache
from .codec import Codec
from .format import QUARANTINE_PREFIX, bump_generation, index_key, pack_key
from .index import encode_index
from .packer import PackSink
from .packs import PACK_SIZE, PackEntry

log = logging.getLogger(__name__)


def quarantine_chunks(backend: Backend, codec: Codec, index: IndexCache,
                      chunk_ids: Iterable[bytes], *, pack_size: int = PACK_SIZE) -> int:
    """Take the damaged copies of ``chunk_ids`` out of the index and their packs to
    ``quarantine/``; returns how many damaged chunks were taken out."""
    index.refresh()
    suspects = sorted({w.pack_id for c in chunk_ids for w in index.chunks.locations(c)})
    damaged: dict[bytes, tuple[bytes, list[PackEntry], list[PackEntry]]] = {}
    for pack_id in suspects:
        try:
            blob = backend.get(pack_key(pack_id))
        except ObjectNotFound:
            continue  # gone: verify reports its chunks missing; nothing to move
        good, bad = _check_entries(codec, blob, index.pack_entries(pack_id))
        if bad:
            damaged[pack_id] = (blob, good, bad)
    if not damaged:
        return 0
    bump_generation(backend)
    backend.flush()
    _salvage(backend, codec, index, damaged.values(), pack_size)
    _supersede(backend, codec, index, set(damaged))
    for pack_id, (blob, good, bad) in damaged.items():
        backend.put(QUARANTINE_PREFIX + pack_id.hex(), blob)
        backend.delete(pack_key(pack_id))
        log.warning("%s: pack %s moved to quarantine: %d damaged chunks, %d intact ones kept",
                    backend.url, short_id(pack_id.hex()), len(bad), len(good))
    backend.flush()
    index.refresh()
    return len({e.chunk_id for _, _, bad in damaged.values() for e in bad})


def _check_entries(codec: Codec, blob: bytes, entries: list[PackEntry]
                   ) -> tuple[list[PackEntry], list[PackEntry]]:
    """The pack's entries that read back right, and those that do not."""
    good, bad = [], []
    view = memoryview(blob)
    for e in entries:
        try:
            codec.decode_chunk(e.chunk_id, view[e.offset:e.offset + e.length], e.size)
            good.append(e)
        except IntegrityError:
            bad.append(e)
    return good, bad


def _salvage(backend: Backend, codec: Codec, index: IndexCache,
             damaged: Iterable[tuple[bytes, list[PackEntry], list[PackEntry]]],
             pack_size: int) -> None:
    """The intact chunks of damaged packs into new packs, flushed and indexed."""
    sink = PackSink(backend, codec, index, pack_size=pack_size)
    with sink.slot() as pack:
        for blob, good, _ in damaged:
            view = memoryview(blob)
            for e in good:
                sink.append(pack, e.chunk_id, (view[e.offset:e.offset + e.length],), e.size)
    sink.seal_all()
    sink.checkpoint()


def _supersede(backend: Backend, codec: Codec, index: IndexCache, packs: set[bytes]) -> None:
    """Replace every index object naming one of ``packs`` by one naming the others."""
    replaced = sorted({i for p in packs for i in index.objects_naming(p)})
    for index_id in replaced:
        kept = {p: e for p, e in index.object_packs(index_id).items() if p not in packs}
        if kept:
            new_id, blob = encode_index(codec, kept)
            backend.put(index_key(new_id), blob)
    backend.flush()
    for index_id in replaced:
        backend.delete(index_key(index_id))
    backend.flush()
