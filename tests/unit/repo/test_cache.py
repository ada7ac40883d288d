"""The index as a process knows it: index objects on the backend, local copies, refreshes."""

from __future__ import annotations

import os
import time

import pytest

from vzbackup.repo.backends import open_backend
from vzbackup.repo.cache import IndexCache
from vzbackup.repo.codec import Codec
from vzbackup.repo.format import bump_generation
from vzbackup.repo.packer import PackSink


@pytest.fixture
def backend(tmp_path):
    return open_backend((tmp_path / "repo").as_uri())


def store(cache: IndexCache, chunks: list[bytes]) -> list[bytes]:
    """Store ``chunks`` in one pack named by one index object; their ids."""
    sink = PackSink(cache.backend, cache.codec, cache)
    ids = [cache.codec.chunk_id(c) for c in chunks]
    with sink.slot() as pack:
        for chunk_id, data in zip(ids, chunks):
            sink.append(pack, chunk_id, cache.codec.encode_parts(chunk_id, data), len(data))
    sink.seal_all()
    sink.checkpoint()
    return ids


def test_objects_written_elsewhere_are_learnt_on_refresh(backend, tmp_path):
    codec = Codec()
    mine, theirs = IndexCache(backend, codec, tmp_path / "c1"), IndexCache(backend, codec, None)
    mine.refresh()
    theirs.refresh()
    ids = store(theirs, [os.urandom(1000) for _ in range(3)])
    assert all(i in theirs for i in ids) and not any(i in mine for i in ids)
    mine.refresh()
    assert all(mine.locate(i) == theirs.locate(i) for i in ids)
    assert len(list((tmp_path / "c1" / "index").iterdir())) == 1


def test_removed_objects_leave_the_map_and_the_local_copies(backend, tmp_path):
    cache = IndexCache(backend, Codec(), tmp_path / "c")
    cache.refresh()
    kept = store(cache, [b"kept" * 100])
    before = {i.key for i in backend.list("index/")}
    gone = store(cache, [b"gone" * 100])
    (victim,) = {i.key for i in backend.list("index/")} - before
    bump_generation(backend)  # what a repair does before it removes an index object
    backend.delete(victim)
    cache.refresh()
    assert kept[0] in cache and gone[0] not in cache
    assert {f"index/{n}" for n in os.listdir(tmp_path / "c" / "index")} == before


def test_refresh_unless_since_refreshes_once(backend):
    cache = IndexCache(backend, Codec(), None)
    lists = []
    real = backend.list
    backend.list = lambda prefix="": lists.append(prefix) or real(prefix)
    since = time.monotonic()
    cache.refresh(unless_since=since)
    cache.refresh(unless_since=since)
    assert lists == ["index/", "garbage/"]
    cache.refresh()
    assert lists == ["index/", "garbage/"] * 2


def test_unwritable_folder_degrades_to_memory(backend, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cache = IndexCache(backend, Codec(), blocker / "sub")
    cache.refresh()
    ids = store(cache, [b"data" * 100])
    assert ids[0] in cache and cache.folder is None
