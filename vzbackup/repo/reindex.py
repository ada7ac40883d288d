"""Rebuilding the index from the packs alone.

Every pack describes itself (its trailer), so packs that no index object names can be
indexed again: those of a run killed between its packs and its index object, or those of an
index object that was lost. A pack is adopted only if it is exactly what a writer sealed
(``packs.check_pack``: its tail hashes to its id and every chunk in it decodes to its id); a
torn or damaged one is left alone (garbage for GC). Packs that GC condemned (``garbage/``
records) are left alone too.
"""

from __future__ import annotations

import logging

from ..domain.manifest import short_id
from ..errors import IntegrityError, ObjectNotFound
from ..ports import Backend, ReindexStats
from .cache import IndexCache
from .codec import Codec
from .format import PACK_PREFIX, index_key, pack_id_of
from .index import encode_index
from .packs import PackEntry, check_pack

log = logging.getLogger(__name__)


def index_unnamed_packs(backend: Backend, codec: Codec, index: IndexCache) -> ReindexStats:
    """Name in a new index object every sound pack that no index object names.

    Durability: the backend is flushed before the index object is put. In the local
    backend's fsync mode a flush covers only this process's puts, so a pack put by a
    process that died unflushed is trusted as found (syncfs, the default, covers it)."""
    index.refresh()
    found: dict[bytes, list[PackEntry]] = {}
    rejected = 0
    for info in backend.list(PACK_PREFIX):
        pack_id = pack_id_of(info.key)
        if pack_id is None or index.names_pack(pack_id):
            continue
        what = f"pack {short_id(pack_id.hex())}"
        try:
            blob = backend.get(info.key)
            found[pack_id] = check_pack(codec, pack_id, blob, what)
        except ObjectNotFound:
            continue
        except IntegrityError as exc:
            log.warning("%s: %s; left out of the index", backend.url, exc)
            rejected += 1
    if found:
        backend.flush()
        index_id, blob = encode_index(codec, found)
        backend.put(index_key(index_id), blob)
        backend.flush()
        index.add_object(index_id, blob, found)
    chunks = sum(len(entries) for entries in found.values())
    log.info("%s: %d packs (%d chunks) indexed from their trailers, %d left out",
             backend.url, len(found), chunks, rejected)
    return ReindexStats(len(found), chunks, rejected)
