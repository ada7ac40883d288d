"""A content-addressed repository of restore points over a ``Backend`` (``ports.Repository``).

Layout (format 3): ``config``, ``generation``, ``keys/repokey`` (encrypted repositories),
``packs/<2 hex>/<pack id>`` (chunks, see ``packs.py``), ``index/<index id>`` (which pack
holds each chunk, see ``index.py``), ``manifests/<point id>``, ``quarantine/<pack id>``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import IntegrityError, ObjectNotFound, PointNotFound, RepositoryError
from ..domain.manifest import Manifest, short_id
from ..ports import Advance, Backend, CopyStats, GcReport, PointDraft, VerifyReport
from .backends.capabilities import RETENTION
from .cache import IndexCache
from .chunker import Chunker, ChunkerParams
from .codec import Codec
from .format import (MANIFEST_PREFIX, RepoConfig, chunker_seed, init_replica, init_repository,
                     is_object_id, manifest_key, open_repository, pack_key)
from .gc import collect_garbage
from .keys import KDF_COST, Passphrase, RepoKeys, as_passphrase
from .lockkeeper import RetentionKeeper
from .notes import current, put_note, read_notes
from .packs import PACK_SIZE
from .quarantine import quarantine_chunks
from .reader import ChunkPointReader
from .reindex import ReindexStats, index_unnamed_packs
from .replicate import copy_point
from .verify import verify_full, verify_quick
from .writer import ChunkPointWriter

log = logging.getLogger(__name__)

MAX_MANIFEST = 1 << 30


class ChunkRepository:
    """``ports.Repository``. Build it with :func:`open_chunk_repository`."""

    def __init__(self, name: str, backend: Backend, config: RepoConfig, keys: RepoKeys | None,
                 cache_folder: Path | None, pack_size: int = PACK_SIZE):
        self.name = name
        self.url = backend.url
        self.backend = backend
        self.config = config
        self.codec = Codec(level=config.compression_level, keys=keys)
        self.chunker = Chunker(config.chunker, seed=chunker_seed(keys))
        self.pack_size = pack_size
        self._index = IndexCache(backend, self.codec, cache_folder)
        self._keeper = (RetentionKeeper(backend, cache_folder)
                        if RETENTION in backend.capabilities else None)

    def __repr__(self) -> str:
        return f"ChunkRepository({self.name!r}, {self.url!r})"

    @property
    def repo_id(self) -> str:
        return self.config.repo_id

    def chunk_index(self, *, refresh: bool = False) -> IndexCache:
        """Where each chunk is, as this process knows it (loaded on first use; ``refresh``:
        with what other writers stored since)."""
        if refresh:
            self._index.refresh()
        else:
            self._index.ensure_loaded()
        return self._index

    # ---- ports.Repository ------------------------------------------------------------------

    def new_point(self, draft: PointDraft) -> ChunkPointWriter:
        index = self.chunk_index(refresh=True)  # with what other writers stored since
        return ChunkPointWriter(self.backend, self.codec, self.chunker, index, draft,
                                self.pack_size, after_commit=self.keep_retention)

    def open_point(self, point_id: str) -> ChunkPointReader:
        manifest = self.load_manifest(point_id)
        return ChunkPointReader(self.backend, self.codec, self.chunk_index(), point_id, manifest)

    def point_ids(self) -> Iterator[str]:
        for info in self.backend.list(MANIFEST_PREFIX):
            name = info.key[len(MANIFEST_PREFIX):]
            if is_object_id(name):
                yield name

    def load_manifest(self, point_id: str) -> Manifest:
        """The manifest, after checking that its bytes hash to ``point_id``."""
        if not is_object_id(point_id):
            raise PointNotFound(f"{self.name}: {point_id!r} is not a full restore point id")
        try:
            blob = self.backend.get(manifest_key(point_id))
        except ObjectNotFound:
            raise PointNotFound(f"{self.name}: no restore point {short_id(point_id)}") from None
        what = f"restore point {short_id(point_id)} (manifest)"
        data = self.codec.decode(bytes.fromhex(point_id), blob, what=what, max_size=MAX_MANIFEST)
        if not hmac.compare_digest(hashlib.sha256(data).hexdigest(), point_id):
            raise IntegrityError(f"{self.name}: {what} does not match its id")
        try:
            return Manifest.from_bytes(data)
        except (ValueError, KeyError, TypeError) as exc:
            raise RepositoryError(f"{self.name}: {what} cannot be read: {exc}") from None

    def verify_point(self, point_id: str, *, full: bool = True,
                     advance: Advance | None = None) -> VerifyReport:
        """Check a point: quick = every chunk indexed and every pack holding them present;
        full = every chunk and the stream re-read and re-hashed. Data problems are
        reported, not raised."""
        try:
            manifest = self.load_manifest(point_id)
        except (PointNotFound, IntegrityError) as exc:
            return VerifyReport(point_id, False, 0, (f"{self.name}: {exc.message}",))
        checked = len(manifest.chunks)
        index = self.chunk_index()
        if not full:
            problems = verify_quick(self.backend, index, point_id, manifest, advance)
            return VerifyReport(point_id, not problems, checked, tuple(problems))
        problems, damaged = verify_full(self.backend, self.codec, index, point_id, manifest,
                                        advance)
        return VerifyReport(point_id, not problems, checked, tuple(problems), tuple(damaged))

    def copy_point(self, point_id: str, target: "ChunkRepository",  # type: ignore[override]
                   advance: Advance | None = None) -> CopyStats:
        return copy_point(self, target, point_id, advance)

    def quarantine_chunks(self, chunk_ids: tuple[bytes, ...]) -> int:
        """Take the damaged copies of chunks out of the index, their packs to
        ``quarantine/`` (intact chunks sharing a pack are kept): see ``quarantine.py``."""
        if not chunk_ids:
            return 0
        return quarantine_chunks(self.backend, self.codec, self._index, chunk_ids,
                                 pack_size=self.pack_size)

    def keep_retention(self, manifest: Manifest) -> None:
        """With Object Lock: extend the retention of the packs a new point references where
        it is due (``lockkeeper.py``)."""
        if self._keeper is None:
            return
        index = self.chunk_index()
        where = (index.locate(ref.id) for ref in manifest.chunks)
        self._keeper.keep({pack_key(w.pack_id) for w in where if w is not None}, time.time())

    def put_note(self, doc: dict[str, Any]) -> str:
        """Store a record for ``catalog rebuild`` (``notes.py``)."""
        return put_note(self.backend, self.codec, doc)

    def notes(self, *, with_gone: bool = False) -> dict[tuple[str, str], dict[str, Any]]:
        """The current notes: (kind, key) -> the latest document, removed ones left out
        (``with_gone``: kept, so that one repository's removal outweighs another's older
        note)."""
        if with_gone:
            return {(str(d["kind"]), str(d["key"])): d for d in read_notes(self.backend, self.codec)}
        return current(read_notes(self.backend, self.codec))

    def remove_point(self, point_id: str) -> None:
        if not is_object_id(point_id):
            raise PointNotFound(f"{self.name}: {point_id!r} is not a full restore point id")
        self.backend.delete(manifest_key(point_id))
        self.backend.flush()

    def collect_garbage(self, *, grace: float, now: float, dry_run: bool = False) -> GcReport:
        """Both phases of garbage collection (see ``gc.py``). The caller holds the
        repository's lock: two collections of one repository must not overlap."""
        return collect_garbage(self.backend, self.codec, self._index, list(self.point_ids()),
                               self.load_manifest, grace=grace, now=now, dry_run=dry_run,
                               pack_size=self.pack_size)

    def index_unnamed_packs(self) -> ReindexStats:
        """Index again the sound packs no index object names (see ``reindex.py``)."""
        return index_unnamed_packs(self.backend, self.codec, self._index)


def open_chunk_repository(name: str, backend: Backend, *, passphrase: Passphrase | str | None,
                          cache_dir: Path | None, compression_level: int | None = None,
                          pack_size: int = PACK_SIZE) -> ChunkRepository:
    """Open the repository on ``backend``. ``passphrase`` is needed when it is encrypted
    (read from a file or environment variable, never argv). The chunk cache lives in
    ``cache_dir/<repository id>`` (copies of its index objects), so one cache folder serves
    every repository; None: no cache, and every index object is read from the backend once
    per process. ``compression_level`` overrides the zstd level recorded at init for chunks
    written from now on; ``pack_size``, the size at which packs are put."""
    config, keys = open_repository(backend, as_passphrase(passphrase))
    if compression_level is not None:
        config = replace(config, compression_level=compression_level)
    folder = cache_dir / config.repo_id if cache_dir is not None else None
    return ChunkRepository(name, backend, config, keys, folder, pack_size)


def init_chunk_repository(backend: Backend, *, encryption: str = "none",
                          passphrase: Passphrase | str | None = None, chunk_avg: int = 64 * 1024,
                          chunker: ChunkerParams | None = None, compression_level: int = 3,
                          kdf_cost: int = KDF_COST) -> RepoConfig:
    """Create a repository on an empty backend (open it with :func:`open_chunk_repository`).
    Chunks average ``chunk_avg`` bytes, between a quarter and four times that, unless
    ``chunker`` gives all three sizes."""
    params = chunker or ChunkerParams(chunk_avg // 4, chunk_avg, chunk_avg * 4)
    return init_repository(backend, encryption=encryption, passphrase=as_passphrase(passphrase),
                           chunker=params, compression_level=compression_level,
                           kdf_cost=kdf_cost)


def init_replica_repository(source: ChunkRepository, target: Backend) -> RepoConfig:
    """Make the empty ``target`` a replica of ``source`` (same keys and chunk ids)."""
    return init_replica(source.backend, source.config, target)
