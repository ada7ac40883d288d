"""Checking a restore point's copy: quick (every chunk indexed, every pack holding them
present) or full (every chunk re-read and checked, and the whole stream re-hashed)."""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor

from ..domain.manifest import Manifest, short_id
from ..errors import IntegrityError
from ..ports import Advance, Backend
from .cache import IndexCache
from .codec import Codec
from .format import pack_key
from .index import Location
from .reader import OrderedFetcher, point_error, stream_problem

STAT_WORKERS = 4


def verify_quick(backend: Backend, index: IndexCache, point_id: str, manifest: Manifest,
                 advance: Advance | None) -> list[str]:
    """Problems found: chunks the index does not know, or whose pack is gone."""
    index.ensure_loaded()
    since = time.monotonic()
    where = _locate_all(index, manifest, since)
    present = _packs_present(backend, where)
    if not all(present.values()):  # maybe moved since the index was loaded (a repair)
        index.refresh(unless_since=since)
        where = _locate_all(index, manifest, since)
        present = _packs_present(backend, where)
    problems = []
    for number, ref in enumerate(manifest.chunks):
        location = where[ref.id]
        if location is None:
            why = "the index names no pack holding it"
        elif not present[location.pack_id]:
            why = f"its pack {short_id(location.pack_id.hex())} is gone"
        else:
            why = ""
        if why:
            missing = IntegrityError(f"chunk {ref.id.hex()} is missing ({why})")
            problems.append(point_error(manifest, point_id, number, missing).message)
        if advance is not None:
            advance(ref.size)
    return problems


def _locate_all(index: IndexCache, manifest: Manifest, since: float
                ) -> dict[bytes, Location | None]:
    where = {}
    for ref in manifest.chunks:
        if ref.id not in where:
            location = index.locate(ref.id)
            if location is None:
                index.refresh(unless_since=since)
                location = index.locate(ref.id)
            where[ref.id] = location
    return where


def _packs_present(backend: Backend, where: dict[bytes, Location | None]) -> dict[bytes, bool]:
    """Each distinct pack stat'ed once."""
    packs = sorted({w.pack_id for w in where.values() if w is not None})
    with ThreadPoolExecutor(STAT_WORKERS, thread_name_prefix="vzbackup-verify") as pool:
        found = pool.map(lambda p: backend.stat(pack_key(p)) is not None, packs)
        return dict(zip(packs, found))


def verify_full(backend: Backend, codec: Codec, index: IndexCache, point_id: str,
                manifest: Manifest, advance: Advance | None) -> tuple[list[str], list[bytes]]:
    """Problems found, and the chunks that are stored but damaged (for a repair)."""
    problems: list[str] = []
    damaged: list[bytes] = []
    sha, size = hashlib.sha256(), 0
    fetcher = OrderedFetcher(backend, codec, index, manifest.chunks)
    try:
        for number, fetched in enumerate(fetcher):
            if fetched.error is not None:
                problems.append(point_error(manifest, point_id, number, fetched.error).message)
                if fetched.damaged:
                    damaged.append(manifest.chunks[number].id)
                continue
            sha.update(fetched.data)
            size += len(fetched.data)
            if advance is not None:
                advance(len(fetched.data))
    finally:
        fetcher.close()
    if not problems:
        problem = stream_problem(manifest, point_id, size, sha.hexdigest())
        problems += [problem] if problem else []
    return problems, list(dict.fromkeys(damaged))
