"""Copying points between a repository and its replicas."""

from __future__ import annotations

import os

import pytest

from vzbackup.errors import IntegrityError, RepositoryError
from vzbackup.repo.backends import open_backend
from vzbackup.repo.repository import init_replica_repository, open_chunk_repository

from .conftest import backup, make_repo, restore, stored_chunks


def replica_of(source, tmp_path, name="replica", **options):
    backend = open_backend((tmp_path / name).as_uri())
    if backend.stat("config") is None:
        init_replica_repository(source, backend)
    return open_chunk_repository(name, backend, passphrase="pw" if source.config.encrypted else None,
                                 cache_dir=tmp_path / "cache", **options)


def test_encrypted_point_copies_verbatim_and_reads_back(tmp_path):
    source = make_repo(tmp_path, encryption="aes-256-gcm", passphrase="pw")
    data = os.urandom(200_000) + bytes(100_000)
    manifest, _ = backup(source, data)
    replica = replica_of(source, tmp_path)
    assert replica.repo_id != source.repo_id
    stats = source.copy_point(manifest.id, replica)
    assert stats.chunks_sent == len({c.id for c in manifest.chunks}) and stats.bytes_sent > 0
    assert restore(replica, manifest.id) == data
    assert source.copy_point(manifest.id, replica).chunks_sent == 0  # idempotent


def test_shared_chunks_are_not_sent_twice(tmp_path):
    source = make_repo(tmp_path)
    common = os.urandom(300_000)
    first, _ = backup(source, common + b"a" * 1000)
    second, _ = backup(source, common + b"b" * 1000)
    replica = replica_of(source, tmp_path)
    full = source.copy_point(first.id, replica)
    delta = source.copy_point(second.id, replica)
    assert delta.bytes_sent < full.bytes_sent / 5


def test_a_stranger_repository_is_refused(tmp_path):
    source = make_repo(tmp_path / "a")
    other = make_repo(tmp_path / "b")
    manifest, _ = backup(source, b"x" * 50_000)
    with pytest.raises(RepositoryError, match="not a replica"):
        source.copy_point(manifest.id, other)


def test_damaged_chunk_is_not_spread(tmp_path):
    source = make_repo(tmp_path)
    manifest, _ = backup(source, os.urandom(100_000))
    path, entry = stored_chunks(source)[-1]
    blob = bytearray(path.read_bytes())
    blob[entry.offset + entry.length - 1] ^= 1
    path.write_bytes(bytes(blob))
    replica = replica_of(source, tmp_path)
    with pytest.raises(IntegrityError, match=f"{manifest.id[:12]}.*{entry.chunk_id.hex()}"):
        source.copy_point(manifest.id, replica)
    assert list(replica.point_ids()) == []


class CutAfter:
    """A backend whose connection is cut at the ``n``-th pack put."""

    def __init__(self, inner, n: int):
        self.inner, self.n = inner, n
        self.url, self.capabilities = inner.url, inner.capabilities

    def put(self, key, data):
        if key.startswith("packs/"):
            self.n -= 1
            if self.n == 0:
                raise RepositoryError(f"{self.url}: connection cut")
        self.inner.put(key, data)

    def __getattr__(self, name):  # get, stat, list, delete, flush
        if name == "put_parts":
            raise AttributeError(name)  # every write goes through put
        return getattr(self.inner, name)


def test_a_cut_replication_resumes_sending_only_what_is_not_indexed(tmp_path):
    source = make_repo(tmp_path)
    data = os.urandom(600_000)
    manifest, _ = backup(source, data)
    chunks = len({c.id for c in manifest.chunks})
    replica = replica_of(source, tmp_path, pack_size=60_000)
    replica.backend = CutAfter(replica.backend, 4)
    with pytest.raises(RepositoryError, match="connection cut"):
        source.copy_point(manifest.id, replica)
    assert list(replica.point_ids()) == []
    resumed = replica_of(source, tmp_path, pack_size=60_000)  # as a new process would
    index = resumed.chunk_index()
    indexed = sum(1 for c in manifest.chunks if c.id in index)
    kept = sum(index.locate(c.id).length for c in manifest.chunks if c.id in index)
    assert kept >= 3 * 60_000  # the three packs put before the cut were indexed
    stats = source.copy_point(manifest.id, resumed)
    assert stats.chunks_sent == chunks - indexed  # only the rest
    assert restore(resumed, manifest.id) == data and resumed.verify_point(manifest.id).ok
