"""The last check before a manifest is written: is every chunk it references still indexed?

A backup deduplicates against the index it loaded when it started. If garbage collection
condemned a pack meanwhile (``gc.py``), or a repair took a damaged one out, a chunk the
point relies on may no longer be indexed. Such a chunk is stored again, into this writer's
packs, from the condemned pack (which GC keeps for its grace period), checked against its id
on the way. A chunk found nowhere fails the point: no manifest is written."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from ..domain.manifest import short_id
from ..errors import IntegrityError, ObjectNotFound, RepositoryError
from ..ports import Backend
from .cache import IndexCache
from .codec import Codec
from .format import pack_key
from .packer import PackSink

log = logging.getLogger(__name__)


def rehome_unindexed(backend: Backend, codec: Codec, index: IndexCache, sink: PackSink,
                     chunks: Iterable[tuple[bytes, int]], what: str) -> int:
    """Store again every chunk of ``chunks`` (id, size) that no index object names; the
    number stored. Call after the writer's own packs are indexed and flushed, right before
    the manifest is put: what GC condemns after this check, its second phase keeps for
    the manifest (it marks again a grace period later)."""
    index.refresh()
    missing = {cid: size for cid, size in chunks if cid not in index}
    if not missing:
        return 0
    with sink.slot() as pack:
        for cid, size in missing.items():
            where = index.locate(cid)
            try:
                if where is None:
                    raise ObjectNotFound(cid.hex())
                stored = backend.get(pack_key(where.pack_id), where.offset, where.length)
                codec.decode_chunk(cid, stored, size)
            except (ObjectNotFound, IntegrityError):
                raise RepositoryError(
                    f"{what}: chunk {short_id(cid.hex())} was removed from {backend.url} while "
                    "this ran (garbage collection or a repair); nothing was recorded. Run it "
                    "again") from None
            sink.append(pack, cid, (stored,), size)
    sink.seal_all()
    sink.checkpoint()
    backend.flush()  # the index object naming them durable before the manifest
    log.warning("%s: %d chunk(s) condemned while it ran stored again", what, len(missing))
    return len(missing)
