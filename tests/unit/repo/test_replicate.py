"""Copying points between a repository and its replicas."""

from __future__ import annotations

import os

import pytest

from vzbackup.errors import IntegrityError, RepositoryError
from vzbackup.repo.backends import open_backend
from vzbackup.repo.repository import init_replica_repository, open_chunk_repository

from .conftest import backup, make_repo, restore


def replica_of(source, tmp_path, name="replica"):
    backend = open_backend((tmp_path / name).as_uri())
    init_replica_repository(source, backend)
    return open_chunk_repository(name, backend, passphrase="pw" if source.config.encrypted else None,
                                 cache_dir=tmp_path / "cache")


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
    chunk = next(p for p in (tmp_path / "repo" / "chunks").rglob("*") if p.is_file())
    blob = bytearray(chunk.read_bytes())
    blob[-1] ^= 1
    chunk.write_bytes(bytes(blob))
    replica = replica_of(source, tmp_path)
    with pytest.raises(IntegrityError):
        source.copy_point(manifest.id, replica)
    assert list(replica.point_ids()) == []
