"""A content-addressed repository of restore points over a ``Backend`` (``ports.Repository``).

Layout: ``config``, ``generation``, ``keys/repokey`` (encrypted repositories),
``chunks/<2 hex>/<chunk id>``, ``manifests/<point id>``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from ..errors import IntegrityError, ObjectNotFound, PointNotFound, RepositoryError
from ..domain.manifest import Manifest, short_id
from ..ports import Advance, Backend, CopyStats, PointDraft, VerifyReport
from .cache import ChunkCache
from .chunker import Chunker, ChunkerParams
from .codec import Codec
from .format import (MANIFEST_PREFIX, RepoConfig, bump_generation, chunk_key, chunker_seed,
                     init_replica, init_repository, manifest_key, open_repository,
                     read_generation)
from .keys import KDF_COST, Passphrase, RepoKeys, as_passphrase
from .reader import ChunkPointReader, OrderedFetcher, point_error, stream_problem
from .replicate import copy_point
from .writer import ChunkPointWriter

log = logging.getLogger(__name__)

MAX_MANIFEST = 1 << 30
QUARANTINE_PREFIX = "quarantine/"
_HEX = frozenset("0123456789abcdef")


class ChunkRepository:
    """``ports.Repository``. Build it with :func:`open_chunk_repository`."""

    def __init__(self, name: str, backend: Backend, config: RepoConfig, keys: RepoKeys | None,
                 cache_folder: Path | None):
        self.name = name
        self.url = backend.url
        self.backend = backend
        self.config = config
        self.codec = Codec(level=config.compression_level, keys=keys)
        self.chunker = Chunker(config.chunker, seed=chunker_seed(keys))
        self._cache_folder = cache_folder
        self._cache: ChunkCache | None = None

    def __repr__(self) -> str:
        return f"ChunkRepository({self.name!r}, {self.url!r})"

    @property
    def repo_id(self) -> str:
        return self.config.repo_id

    def _current_cache(self) -> ChunkCache:
        """The chunk cache, rebuilt when the repository's generation has changed."""
        generation = read_generation(self.backend)
        if self._cache is None or self._cache.generation != generation:
            self._cache = ChunkCache(self._cache_folder, self.repo_id, generation)
        return self._cache

    # ---- ports.Repository ------------------------------------------------------------------

    def new_point(self, draft: PointDraft) -> ChunkPointWriter:
        cache = self._current_cache()
        return ChunkPointWriter(self.backend, self.codec, self.chunker, cache, draft)

    def open_point(self, point_id: str) -> ChunkPointReader:
        return ChunkPointReader(self.backend, self.codec, point_id, self.load_manifest(point_id))

    def point_ids(self) -> Iterator[str]:
        for info in self.backend.list(MANIFEST_PREFIX):
            name = info.key[len(MANIFEST_PREFIX):]
            if len(name) == 64 and set(name) <= _HEX:
                yield name

    def load_manifest(self, point_id: str) -> Manifest:
        """The manifest, after checking that its bytes hash to ``point_id``."""
        if len(point_id) != 64 or not set(point_id) <= _HEX:
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
        """Check a point: quick = every chunk present; full = every chunk and the stream
        re-read and re-hashed. Data problems are reported, not raised."""
        try:
            manifest = self.load_manifest(point_id)
        except (PointNotFound, IntegrityError) as exc:
            return VerifyReport(point_id, False, 0, (f"{self.name}: {exc.message}",))
        if not full:
            checked, problems = self._verify_present(point_id, manifest, advance)
            return VerifyReport(point_id, not problems, checked, tuple(problems))
        checked, problems, damaged = self._verify_full(point_id, manifest, advance)
        return VerifyReport(point_id, not problems, checked, tuple(problems), tuple(damaged))

    def copy_point(self, point_id: str, target: "ChunkRepository",  # type: ignore[override]
                   advance: Advance | None = None) -> CopyStats:
        return copy_point(self, target, point_id, advance)

    def chunk_cache(self) -> ChunkCache:
        """The ids this process may take as stored here without asking the backend."""
        return self._current_cache()

    def quarantine_chunks(self, chunk_ids: tuple[bytes, ...]) -> int:
        """Move damaged chunks to ``quarantine/``. The generation is bumped first, so no
        chunk cache anywhere goes on believing the repository holds them."""
        if not chunk_ids:
            return 0
        bump_generation(self.backend)
        self.backend.flush()
        moved = 0
        for chunk_id in dict.fromkeys(chunk_ids):
            key = chunk_key(chunk_id)
            try:
                blob = self.backend.get(key)
            except ObjectNotFound:
                continue
            self.backend.put(f"{QUARANTINE_PREFIX}{chunk_id.hex()}", blob)
            self.backend.delete(key)
            moved += 1
            log.warning("%s: damaged chunk %s moved to quarantine", self.name, chunk_id.hex())
        self.backend.flush()
        self._cache = None
        return moved

    def _verify_present(self, point_id: str, manifest: Manifest,
                        advance: Advance | None) -> tuple[int, list[str]]:
        with ThreadPoolExecutor(4, thread_name_prefix="vzbackup-verify") as pool:
            infos = pool.map(lambda ref: self.backend.stat(chunk_key(ref.id)), manifest.chunks)
            problems = []
            for index, (ref, info) in enumerate(zip(manifest.chunks, infos)):
                if info is None:
                    missing = IntegrityError(f"chunk {ref.id.hex()} is missing")
                    problems.append(point_error(manifest, point_id, index, missing).message)
                if advance is not None:
                    advance(ref.size)
        return len(manifest.chunks), problems

    def _verify_full(self, point_id: str, manifest: Manifest,
                     advance: Advance | None) -> tuple[int, list[str], list[bytes]]:
        problems: list[str] = []
        damaged: list[bytes] = []
        sha, size = hashlib.sha256(), 0
        fetcher = OrderedFetcher(self.backend, self.codec, manifest.chunks)
        try:
            for index, future in enumerate(fetcher):
                try:
                    data = future.result()
                except IntegrityError as exc:
                    problems.append(point_error(manifest, point_id, index, exc).message)
                    if self.backend.stat(chunk_key(manifest.chunks[index].id)) is not None:
                        damaged.append(manifest.chunks[index].id)
                    continue
                sha.update(data)
                size += len(data)
                if advance is not None:
                    advance(len(data))
        finally:
            fetcher.close()
        if not problems:
            problem = stream_problem(manifest, point_id, size, sha.hexdigest())
            problems += [problem] if problem else []
        return len(manifest.chunks), problems, damaged


def open_chunk_repository(name: str, backend: Backend, *, passphrase: Passphrase | str | None,
                          cache_dir: Path | None,
                          compression_level: int | None = None) -> ChunkRepository:
    """Open the repository on ``backend``. ``passphrase`` is needed when it is encrypted
    (read from a file or environment variable, never argv). The chunk cache lives in
    ``cache_dir/<repository id>``, so one cache folder serves every repository; None: no
    cache, and every chunk not seen in this process costs a ``stat``. ``compression_level``
    overrides the zstd level recorded at init for chunks written from now on."""
    config, keys = open_repository(backend, as_passphrase(passphrase))
    if compression_level is not None:
        config = replace(config, compression_level=compression_level)
    folder = cache_dir / config.repo_id if cache_dir is not None else None
    return ChunkRepository(name, backend, config, keys, folder)


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
