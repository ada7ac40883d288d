from __future__ import annotations

import os

from vzbackup.repo.cache import LOG_FILE, RECORD_SIZE, ChunkCache


def ids(n, seed=0):
    return [bytes([seed, i % 256, i // 256]) + bytes(29) for i in range(n)]


def test_persist_and_reload(tmp_path):
    cache = ChunkCache(tmp_path, "repo1", "gen1")
    cache.add(ids(10))
    again = ChunkCache(tmp_path, "repo1", "gen1")
    assert all(i in again for i in ids(10)) and len(again) == 10


def test_generation_or_repository_change_invalidates(tmp_path):
    ChunkCache(tmp_path, "repo1", "gen1").add(ids(5))
    assert len(ChunkCache(tmp_path, "repo1", "gen2")) == 0
    ChunkCache(tmp_path, "repo1", "gen1")  # rebuilt for gen1: empty again
    assert len(ChunkCache(tmp_path, "repo1", "gen1")) == 0
    ChunkCache(tmp_path, "repo1", "gen1").add(ids(5))
    assert len(ChunkCache(tmp_path, "repo2", "gen1")) == 0


def test_torn_and_garbled_records_are_ignored(tmp_path):
    cache = ChunkCache(tmp_path, "r", "g")
    cache.add(ids(3))
    log = tmp_path / LOG_FILE
    with open(log, "ab") as f:
        f.write(bytes(RECORD_SIZE))  # zero-filled block after a crash: bad CRC
        f.write(b"\x01" * 20)  # torn last record
    reloaded = ChunkCache(tmp_path, "r", "g")
    assert len(reloaded) == 3
    assert os.path.getsize(log) % RECORD_SIZE == 0  # cut back so appends stay aligned
    reloaded.add(ids(2, seed=9))
    assert len(ChunkCache(tmp_path, "r", "g")) == 5


def test_without_folder_is_memory_only(tmp_path):
    cache = ChunkCache(None, "r", "g")
    cache.add(ids(2))
    assert ids(2)[0] in cache


def test_unwritable_folder_degrades_to_memory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cache = ChunkCache(blocker / "sub", "r", "g")
    cache.add(ids(2))
    assert ids(2)[1] in cache and cache.folder is None


def test_a_stale_process_does_not_append_to_a_newer_cache(tmp_path):
    old = ChunkCache(tmp_path, "r", "gen1")
    ChunkCache(tmp_path, "r", "gen2")  # another process saw a GC and reset the cache
    old.add(ids(3))  # ids the old process checked before the GC
    assert len(ChunkCache(tmp_path, "r", "gen2")) == 0
