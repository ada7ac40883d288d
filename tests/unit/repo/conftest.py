from __future__ import annotations

import io
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from vzbackup.domain.guests import GuestRef
from vzbackup.ports import PointDraft
from vzbackup.repo.backends import open_backend
from vzbackup.repo.chunker import ChunkerParams
from vzbackup.repo.packs import PackEntry, read_trailer
from vzbackup.repo.repository import (ChunkRepository, init_chunk_repository,
                                      open_chunk_repository)


from .backend_factories import BACKEND_FACTORIES, BackendCase

FAST_KDF = 2**10  # scrypt cost for tests only
SMALL_CHUNKS = ChunkerParams(min_size=2048, avg_size=8192, max_size=32768)


@pytest.fixture(params=sorted(BACKEND_FACTORIES))
def backend_case(request, tmp_path) -> BackendCase:
    return BACKEND_FACTORIES[request.param](request, tmp_path)


@pytest.fixture
def backend(backend_case):
    return backend_case.backend


def draft(vmid: int = 101) -> PointDraft:
    return PointDraft(guest=GuestRef("ct", vmid), guest_name=f"guest{vmid}", platform="directory",
                      source_node="node1", created=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
                      guest_config={"memory": 512}, labels={"why": "test"})


def make_repo(tmp_path: Path, *, encryption: str = "none", passphrase: str | None = None,
              chunker: ChunkerParams = SMALL_CHUNKS, cache: bool = True) -> ChunkRepository:
    backend = open_backend((tmp_path / "repo").as_uri())
    init_chunk_repository(backend, encryption=encryption, passphrase=passphrase, chunker=chunker,
                          kdf_cost=FAST_KDF)
    return open_chunk_repository("test", backend, passphrase=passphrase,
                                 cache_dir=tmp_path / "cache" if cache else None)


def backup(repo, data: bytes, vmid: int = 101):
    writer = repo.new_point(draft(vmid))
    writer.write(io.BytesIO(data))
    return writer.commit(), writer.stats


def restore(repo, point_id: str) -> bytes:
    with repo.open_point(point_id) as reader:
        return reader.read()


def sparse_like(size: int, seed: int = 0) -> bytes:
    """Mostly zeros with random islands, like a thin VM image."""
    import random

    rnd = random.Random(seed)
    buf = bytearray(size)
    for _ in range(size // 65536 + 1):
        start = rnd.randrange(0, max(1, size - 4096))
        buf[start:start + 4096] = os.urandom(4096)
    return bytes(buf)


@pytest.fixture
def repo(tmp_path) -> ChunkRepository:
    return make_repo(tmp_path)


def pack_files(repo: ChunkRepository) -> list[Path]:
    """The pack files of a repository in a local directory."""
    return sorted(p for p in (Path(repo.backend.root) / "packs").rglob("*") if p.is_file())


def stored_chunks(repo: ChunkRepository) -> list[tuple[Path, PackEntry]]:
    """Every chunk's stored form: the pack file holding it and its entry, from the trailers."""
    return [(path, entry) for path in pack_files(repo)
            for entry in read_trailer(repo.codec, path.read_bytes(), path.name)]
