"""The repository's index as this process knows it, kept in step with the backend.

:meth:`IndexCache.refresh` lists ``index/`` and loads the objects it has not loaded yet.
An index object never changes and is named by its content's hash, so a local copy
(``<cache folder>/index/<id>``, checked against its id when read) serves as long as the
backend lists the id, and copies of objects the backend no longer lists are dropped.
Anything that removes data (a repair, GC) bumps the repository's generation: the
in-memory map is then rebuilt from the objects still listed.

Packs that GC condemned (``garbage/`` records, see ``garbage.py``) are kept aside: a lookup
for deduplication (``in``) does not see their chunks, a lookup for reading (``locate``) does.

The cache never claims a chunk that a crash could lose: it holds only what index objects
name, and a writer puts an index object only after the packs it names are durable.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from ..errors import IntegrityError, ObjectNotFound
from ..ports import Backend
from .codec import Codec
from .format import (GARBAGE_PREFIX, INDEX_PREFIX, garbage_key, index_key, is_object_id,
                     read_generation)
from .garbage import GarbageRecord, decode_record
from .index import ChunkIndex, Location, PackEntries, decode_index
from .packs import PackEntry

log = logging.getLogger(__name__)

LOCAL_INDEX = "index"


class IndexCache:
    """Thread-safe. Lookups never wait; ``refresh`` and ``add_object`` take a lock."""

    def __init__(self, backend: Backend, codec: Codec, folder: Path | None):
        self.backend, self.codec = backend, codec
        self.folder = folder / LOCAL_INDEX if folder is not None else None
        self._lock = threading.RLock()
        self._index = ChunkIndex()
        self._loaded: dict[str, tuple[bytes, ...]] = {}  # index id -> the packs it names
        self._generation: str | None = None  # None: never refreshed
        self._records: dict[str, GarbageRecord] = {}  # garbage records, by id
        self._condemned = ChunkIndex()  # the packs they list
        self.refreshed_at = float("-inf")  # time.monotonic() when the last refresh began

    @property
    def chunks(self) -> ChunkIndex:
        return self._index

    def __contains__(self, chunk_id: bytes) -> bool:
        """Whether an index object names the chunk: what deduplication may rely on."""
        return chunk_id in self._index

    def locate(self, chunk_id: bytes) -> Location | None:
        """Where to read the chunk: an indexed pack, else a condemned one not deleted yet."""
        where = self._index.locate(chunk_id)
        return where if where is not None else self._condemned.locate(chunk_id)

    def names_pack(self, pack_id: bytes) -> bool:
        """Whether an index object or a garbage record names the pack."""
        return self._index.has_pack(pack_id) or self._condemned.has_pack(pack_id)

    def garbage_records(self) -> list[GarbageRecord]:
        return sorted(self._records.values(), key=lambda r: (r.condemned_at, r.record_id))

    def ensure_loaded(self) -> None:
        if self._generation is None:
            self.refresh()

    def refresh(self, *, unless_since: float | None = None) -> None:
        """Learn the index objects written since the last refresh (all of them after a
        removal). With ``unless_since``: nothing to do if a refresh began after it."""
        with self._lock:
            if unless_since is not None and self.refreshed_at >= unless_since:
                return
            started = time.monotonic()
            generation = read_generation(self.backend)
            listed = {name for name in (i.key[len(INDEX_PREFIX):]
                                        for i in self.backend.list(INDEX_PREFIX))
                      if is_object_id(name)}
            index, loaded = self._index, self._loaded
            if generation != self._generation or not loaded.keys() <= listed:
                index, loaded = ChunkIndex(), {}  # something was removed: start over
            for index_id in sorted(listed - loaded.keys()):
                packs = self._load(index_id)
                if packs is not None:
                    _record(index, loaded, index_id, packs)
            self._index, self._loaded, self._generation = index, loaded, generation
            self._refresh_garbage()
            self.refreshed_at = started
            self._drop_local(listed)

    def _refresh_garbage(self) -> None:
        listed = {name for name in (i.key[len(GARBAGE_PREFIX):]
                                    for i in self.backend.list(GARBAGE_PREFIX))
                  if is_object_id(name)}
        if listed == self._records.keys():
            return
        records = {i: r for i, r in self._records.items() if i in listed}
        for record_id in sorted(listed - records.keys()):
            try:
                records[record_id] = decode_record(
                    self.codec, record_id, self.backend.get(garbage_key(record_id)))
            except ObjectNotFound:
                continue  # deleted since it was listed
            except IntegrityError as exc:
                log.warning("%s: %s; the packs it lists are not readable through it",
                            self.backend.url, exc)
        condemned = ChunkIndex()
        for record in sorted(records.values(), key=lambda r: r.condemned_at):
            for pack_id, entries in record.packs.items():
                condemned.add_pack(pack_id, entries)
        self._records, self._condemned = records, condemned

    def add_object(self, index_id: str, blob: bytes, packs: PackEntries) -> None:
        """An index object this process has just put."""
        with self._lock:
            _record(self._index, self._loaded, index_id, packs)
            self._write_local(index_id, blob)

    def loaded_objects(self) -> list[str]:
        """The ids of the index objects loaded (the backend listed them at the last refresh)."""
        return list(self._loaded)

    def objects_naming(self, pack_id: bytes) -> list[str]:
        return [i for i, packs in self._loaded.items() if pack_id in packs]

    def object_packs(self, index_id: str) -> dict[bytes, list[PackEntry]]:
        """The content of a loaded index object (empty if it is gone or damaged)."""
        return self._load(index_id) or {}

    def pack_entries(self, pack_id: bytes) -> list[PackEntry]:
        """What the index says a pack holds."""
        for index_id in self.objects_naming(pack_id):
            entries = self.object_packs(index_id).get(pack_id)
            if entries is not None:
                return list(entries)
        return []

    # ---- loading and local copies ------------------------------------------------------

    def _load(self, index_id: str) -> dict[bytes, list[PackEntry]] | None:
        """An index object's packs: from the local copy, else from the backend. None if it
        is gone; {} if it is damaged (its chunks count as absent, to be stored again)."""
        local = self._read_local(index_id)
        if local is not None:
            try:
                return decode_index(self.codec, index_id, local)
            except IntegrityError:
                self._remove_local(index_id)  # torn by a crash: fetch it again
        try:
            blob = self.backend.get(index_key(index_id))
        except ObjectNotFound:
            return None
        try:
            packs = decode_index(self.codec, index_id, blob)
        except IntegrityError as exc:
            log.warning("%s: %s; the chunks it names count as absent", self.backend.url, exc)
            return {}
        self._write_local(index_id, blob)
        return packs

    def _read_local(self, index_id: str) -> bytes | None:
        if self.folder is None:
            return None
        try:
            return (self.folder / index_id).read_bytes()
        except OSError:
            return None

    def _write_local(self, index_id: str, blob: bytes) -> None:
        """Atomic but not synced: a copy torn by a crash fails its check and is fetched
        again."""
        if self.folder is None:
            return
        tmp = self.folder / f".{index_id}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp.write_bytes(blob)
            os.replace(tmp, self.folder / index_id)
        except OSError as exc:
            log.warning("index cache %s cannot be written (%s); working without it",
                        self.folder, exc)
            self.folder = None

    def _remove_local(self, index_id: str) -> None:
        if self.folder is not None:
            (self.folder / index_id).unlink(missing_ok=True)

    def _drop_local(self, listed: set[str]) -> None:
        """Remove copies of objects the backend no longer lists."""
        if self.folder is None:
            return
        try:
            names = [n for n in os.listdir(self.folder) if is_object_id(n)]
        except OSError:
            return
        for name in names:
            if name not in listed:
                self._remove_local(name)


def _record(index: ChunkIndex, loaded: dict[str, tuple[bytes, ...]], index_id: str,
            packs: PackEntries) -> None:
    for pack_id, entries in packs.items():
        index.add_pack(pack_id, entries)
    loaded[index_id] = tuple(packs)
