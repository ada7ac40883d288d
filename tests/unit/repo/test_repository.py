from __future__ import annotations

import hashlib
import io
import os
import random
from pathlib import Path

import pytest

from vzbackup.domain.manifest import short_id
from vzbackup.errors import IntegrityError, PointNotFound
from vzbackup.repo.backends import open_backend
from vzbackup.repo.chunker import ChunkerParams
from vzbackup.repo.format import bump_generation
from vzbackup.repo.repository import open_chunk_repository

from .conftest import backup, draft, make_repo, pack_files, restore, sparse_like, stored_chunks

SECRET = "s3cret-passphrase"


def flip(path: Path, pos: int) -> bytes:
    original = path.read_bytes()
    bad = bytearray(original)
    bad[pos % len(bad)] ^= 0x01
    path.write_bytes(bytes(bad))
    return original


@pytest.mark.parametrize("encryption", ["none", "aes-256-gcm"])
def test_roundtrip_random_and_sparse(tmp_path, encryption):
    repo = make_repo(tmp_path, encryption=encryption, passphrase=SECRET)
    for i, data in enumerate([os.urandom(300_000), sparse_like(1_000_000), b"", b"x"]):
        manifest, stats = backup(repo, data, vmid=100 + i)
        assert restore(repo, manifest.id) == data
        assert manifest.size == len(data) == stats.bytes_in
        assert manifest.sha256 == hashlib.sha256(data).hexdigest()
        assert manifest.stats == {"bytes_in": len(data), "chunks": stats.chunks,
                                  "new_chunks": stats.new_chunks,
                                  "new_bytes_stored": stats.new_bytes_stored}
        assert repo.verify_point(manifest.id).ok
    assert len(list(repo.point_ids())) == 4


def test_manifest_fields(repo):
    manifest, _ = backup(repo, b"abc" * 1000)
    loaded = repo.load_manifest(manifest.id)
    assert loaded == manifest and loaded.id == manifest.id
    assert (str(loaded.guest), loaded.guest_name, loaded.platform, loaded.source_node) == \
        ("ct101", "guest101", "directory", "node1")
    assert loaded.labels == {"why": "test"} and loaded.guest_config == {"memory": 512}
    assert loaded.tool_version


def test_reader_interfaces(repo):
    data = os.urandom(100_000)
    manifest, _ = backup(repo, data)
    reader = repo.open_point(manifest.id)
    assert reader.readable() and reader.manifest.id == manifest.id
    buf = bytearray(7000)
    got = bytearray()
    while n := reader.readinto(buf):
        got += buf[:n]
    assert bytes(got) == data and reader.read(10) == b""
    reader.close()
    with repo.open_point(manifest.id) as r2:
        assert io.BufferedReader(r2).read() == data


def test_same_data_twice_stores_nothing_new(repo):
    data = sparse_like(2_000_000, seed=3) + os.urandom(500_000)
    _, first = backup(repo, data)
    _, second = backup(repo, data, vmid=102)
    assert first.new_bytes_stored > 0
    assert (second.new_chunks, second.new_bytes_stored) == (0, 0)
    assert second.chunks == first.chunks


def test_small_change_stores_little(tmp_path):
    repo = make_repo(tmp_path, chunker=ChunkerParams())  # the default 16/64/256 KiB chunks
    rnd = random.Random(7)
    data = bytearray(rnd.randbytes(16 * 1024 * 1024))
    _, first = backup(repo, bytes(data))
    changed = 0
    for _ in range(8):  # 8 scattered 40 KiB rewrites: 2% of the stream
        at = rnd.randrange(0, len(data) - 40960)
        data[at:at + 40960] = rnd.randbytes(40960)
        changed += 40960
    manifest, second = backup(repo, bytes(data))
    # each rewrite costs the chunks it touches (~80 KiB average): a few times what changed
    assert second.new_bytes_stored < 5 * changed < 0.1 * first.new_bytes_stored
    assert restore(repo, manifest.id) == bytes(data)


def test_every_damaged_chunk_is_caught_naming_point_and_chunk(tmp_path):
    repo = make_repo(tmp_path)
    repo.pack_size = 40_000  # several packs
    data = os.urandom(120_000)
    manifest, _ = backup(repo, data)
    stored = stored_chunks(repo)
    assert len(stored) == len(manifest.chunks) > 3 and len(pack_files(repo)) > 1
    index_of = {ref.id: i for i, ref in enumerate(manifest.chunks)}
    for path, entry in stored:  # every byte position class of every stored chunk
        index = index_of[entry.chunk_id]
        for pos in (0, 3, 7, entry.length - 1):
            original = flip(path, entry.offset + pos)
            pattern = f"{short_id(manifest.id)}.*chunk #{index} of.*{entry.chunk_id.hex()}"
            with pytest.raises(IntegrityError, match=pattern):
                restore(repo, manifest.id)
            report = repo.verify_point(manifest.id, full=True)
            assert not report.ok and len(report.problems) == 1
            assert short_id(manifest.id) in report.problems[0]
            assert entry.chunk_id.hex() in report.problems[0] and path.name[:12] in report.problems[0]
            assert report.damaged_chunks == (entry.chunk_id,)
            path.write_bytes(original)
    assert restore(repo, manifest.id) == data


def test_missing_pack(tmp_path):
    repo = make_repo(tmp_path)
    repo.pack_size = 30_000
    manifest, _ = backup(repo, os.urandom(100_000))
    gone = repo.chunk_index().locate(manifest.chunks[2].id).pack_id
    in_gone = [i for i, ref in enumerate(manifest.chunks)
               if repo.chunk_index().locate(ref.id).pack_id == gone]
    assert 2 in in_gone and len(in_gone) < len(manifest.chunks)
    repo.backend.delete(f"packs/{gone.hex()[:2]}/{gone.hex()}")
    first = manifest.chunks[in_gone[0]].id.hex()
    with pytest.raises(IntegrityError,
                       match=f"chunk #{in_gone[0]} .*{first} is missing .*pack {gone.hex()[:12]}"):
        restore(repo, manifest.id)
    for full in (False, True):
        report = repo.verify_point(manifest.id, full=full)
        assert not report.ok and len(report.problems) == len(in_gone)
        assert all("missing" in p for p in report.problems) and report.damaged_chunks == ()
        assert manifest.chunks[2].id.hex() in " ".join(report.problems)
        assert report.chunks_checked == len(manifest.chunks)


def test_chunk_no_index_object_names(tmp_path):
    repo = make_repo(tmp_path)
    manifest, _ = backup(repo, os.urandom(100_000))
    for info in list(repo.backend.list("index/")):
        repo.backend.delete(info.key)
    lost = open_chunk_repository("t", repo.backend, passphrase=None, cache_dir=None)
    first = manifest.chunks[0].id.hex()
    with pytest.raises(IntegrityError, match=f"chunk #0 .*{first} is missing .*names no pack"):
        restore(lost, manifest.id)
    for full in (False, True):
        report = lost.verify_point(manifest.id, full=full)
        assert not report.ok and len(report.problems) == len(manifest.chunks)


def test_manifest_tampering(tmp_path):
    repo = make_repo(tmp_path)
    manifest, _ = backup(repo, b"hello" * 1000)
    path = tmp_path / "repo" / "manifests" / manifest.id
    flip(path, len(path.read_bytes()) // 2)
    with pytest.raises(IntegrityError, match=short_id(manifest.id)):
        repo.load_manifest(manifest.id)
    with pytest.raises(IntegrityError):
        repo.open_point(manifest.id)
    report = repo.verify_point(manifest.id)
    assert not report.ok and short_id(manifest.id) in report.problems[0]


def test_manifest_swapped_for_another_valid_one(tmp_path):
    repo = make_repo(tmp_path)
    one, _ = backup(repo, b"one" * 1000)
    two, _ = backup(repo, b"two" * 1000, vmid=102)
    manifests = tmp_path / "repo" / "manifests"
    (manifests / one.id).write_bytes((manifests / two.id).read_bytes())
    with pytest.raises(IntegrityError, match="does not match its id"):
        repo.load_manifest(one.id)


def test_unknown_and_malformed_ids(repo):
    with pytest.raises(PointNotFound):
        repo.load_manifest("0" * 64)
    with pytest.raises(PointNotFound, match="full restore point id"):
        repo.load_manifest("abc123")
    assert not repo.verify_point("0" * 64).ok


def test_no_point_without_commit(repo):
    writer = repo.new_point(draft())
    writer.write(io.BytesIO(os.urandom(50_000)))
    writer.abort()
    assert list(repo.point_ids()) == []

    class Broken(io.RawIOBase):
        def readable(self):
            return True

        def readinto(self, buf):
            raise OSError("dump died")

    writer = repo.new_point(draft())
    with pytest.raises(OSError, match="dump died"):
        writer.write(Broken())
    with pytest.raises(Exception, match="commit"):
        writer.commit()
    assert list(repo.point_ids()) == []


def test_encrypted_objects_reveal_no_plaintext(tmp_path):
    repo = make_repo(tmp_path, encryption="aes-256-gcm", passphrase=SECRET)
    text = b"".join(b"line %d of a very secret log file\n" % i for i in range(20000))
    data = text + os.urandom(100_000)
    manifest, _ = backup(repo, data)
    blobs = [p.read_bytes() for p in (tmp_path / "repo").rglob("*") if p.is_file()]
    names = " ".join(p.name for p in (tmp_path / "repo").rglob("*"))
    samples = [data[i:i + 16] for i in range(0, len(data) - 16, len(data) // 50)]
    for blob in blobs:
        assert not any(sample in blob for sample in samples)
        assert b"secret log" not in blob and b"guest101" not in blob and SECRET.encode() not in blob
    plain_ids = {hashlib.sha256(bytes(c)).hexdigest() for c in repo.chunker.cut_bytes(data)}
    assert not any(i in names for i in plain_ids)
    assert restore(repo, manifest.id) == data


def test_index_cache_saves_backend_reads(tmp_path):
    repo = make_repo(tmp_path)
    data = os.urandom(200_000)
    backup(repo, data)
    reopened = open_chunk_repository("t", open_backend((tmp_path / "repo").as_uri()),
                                     passphrase=None, cache_dir=tmp_path / "cache")
    calls = []
    for name in ("get", "stat"):
        real = getattr(reopened.backend, name)
        setattr(reopened.backend, name,
                lambda key, *a, real=real, name=name: calls.append((name, key)) or real(key, *a))
    _, second = backup(reopened, data)
    assert second.new_chunks == 0
    assert [c for c in calls if c[1] != "generation"] == []  # no index object read, no stat
    bump_generation(reopened.backend)  # a repair ran: the index view is rebuilt...
    _, third = backup(reopened, data)
    assert third.new_chunks == 0
    assert [c for c in calls if c[1].startswith("index/")] == []  # ...from the local copies


def test_index_rebuilt_from_the_backend_when_the_cache_is_lost(tmp_path):
    import shutil

    repo = make_repo(tmp_path)
    data = os.urandom(200_000)
    first, _ = backup(repo, data)
    backup(repo, data + os.urandom(50_000), vmid=102)
    objects = {i.key for i in repo.backend.list("index/")}
    assert len(objects) == 2
    shutil.rmtree(tmp_path / "cache")
    reopened = open_chunk_repository("t", repo.backend, passphrase=None,
                                     cache_dir=tmp_path / "cache")
    reads = []
    real_get = reopened.backend.get
    reopened.backend.get = lambda key, *a: reads.append(key) or real_get(key, *a)
    _, again = backup(reopened, data, vmid=103)
    assert again.new_chunks == 0 and {k for k in reads if k.startswith("index/")} == objects
    assert restore(reopened, first.id) == data
    local = {p.name for p in (tmp_path / "cache" / repo.repo_id / "index").iterdir()}
    assert {k.removeprefix("index/") for k in objects} == local


def test_local_copies_of_removed_or_torn_index_objects(tmp_path):
    repo = make_repo(tmp_path)
    manifest, _ = backup(repo, os.urandom(100_000))
    local = tmp_path / "cache" / repo.repo_id / "index"
    (name,) = [p.name for p in local.iterdir()]
    (local / name).write_bytes(b"")  # torn by a crash: fetched again
    (local / ("ab" * 32)).write_bytes(b"an object the backend no longer lists")
    reopened = open_chunk_repository("t", repo.backend, passphrase=None,
                                     cache_dir=tmp_path / "cache")
    assert restore(reopened, manifest.id) == restore(repo, manifest.id)
    assert [p.name for p in local.iterdir()] == [name]
    assert (local / name).read_bytes() == repo.backend.get(f"index/{name}")


def test_without_cache_dir_dedup_reads_the_index(tmp_path):
    repo = make_repo(tmp_path, cache=False)
    data = os.urandom(100_000)
    backup(repo, data)
    again = open_chunk_repository("t", repo.backend, passphrase=None, cache_dir=None)
    assert backup(again, data)[1].new_bytes_stored == 0


def test_a_damaged_index_object_makes_its_chunks_absent_not_wrong(tmp_path):
    repo = make_repo(tmp_path, cache=False)
    data = os.urandom(100_000)
    first, _ = backup(repo, data)
    (key,) = [i.key for i in repo.backend.list("index/")]
    flip(tmp_path / "repo" / key, 10)
    again = open_chunk_repository("t", repo.backend, passphrase=None, cache_dir=None)
    second, stats = backup(again, data)
    assert stats.new_chunks == len({r.id for r in second.chunks})  # stored anew
    assert restore(again, second.id) == data == restore(again, first.id)


def test_quick_verify_and_progress(repo):
    data = os.urandom(80_000)
    manifest, _ = backup(repo, data)
    done = []
    report = repo.verify_point(manifest.id, full=False, advance=done.append)
    assert report.ok and report.chunks_checked == len(manifest.chunks) and sum(done) == len(data)
    done.clear()
    assert repo.verify_point(manifest.id, advance=done.append).ok and sum(done) == len(data)


def test_write_reports_progress(repo):
    done = []
    writer = repo.new_point(draft())
    writer.write(io.BytesIO(os.urandom(70_000)), advance=done.append)
    assert sum(done) == 70_000


def test_repeated_chunks_in_one_stream_are_stored_once(repo):
    data = bytes(3_000_000)  # every chunk of zeros is the same chunk
    manifest, stats = backup(repo, data)
    unique = {ref.id for ref in manifest.chunks}
    assert len(unique) == 2  # the full-size chunk of zeros and the shorter last one
    assert stats.chunks > 50 and stats.new_chunks == 2
    assert restore(repo, manifest.id) == data


def test_write_twice_is_refused(repo):
    writer = repo.new_point(draft())
    writer.write(io.BytesIO(b"abc"))
    with pytest.raises(Exception, match="write"):
        writer.write(io.BytesIO(b"abc"))
    assert repo.load_manifest(writer.commit().id).size == 3


def test_cache_folder_is_per_repository(tmp_path):
    repo = make_repo(tmp_path)
    backup(repo, os.urandom(50_000))
    assert len(list((tmp_path / "cache" / repo.repo_id / "index").iterdir())) == 1


def test_init_with_average_chunk_size(tmp_path):
    from vzbackup.repo.repository import init_chunk_repository

    backend = open_backend((tmp_path / "r").as_uri())
    config = init_chunk_repository(backend, chunk_avg=128 * 1024, compression_level=1)
    repo = open_chunk_repository("r", backend, passphrase=None, cache_dir=None)
    assert repo.config == config
    assert (config.chunker.min_size, config.chunker.avg_size, config.chunker.max_size) == \
        (32 * 1024, 128 * 1024, 512 * 1024)
    assert repo.codec.level == 1


def test_compression_level_can_change_when_opening(tmp_path):
    repo = make_repo(tmp_path)
    data = b"compressible text " * 20000
    first, _ = backup(repo, data)
    faster = open_chunk_repository("t", repo.backend, passphrase=None, cache_dir=None,
                                   compression_level=1)
    assert faster.codec.level == 1
    second, _ = backup(faster, data + b"more")
    assert restore(faster, first.id) == data and restore(repo, second.id) == data + b"more"


def test_packs_of_a_run_that_never_indexed_them_are_not_trusted(tmp_path):
    """After a power loss an unflushed pack can be empty or torn: no index object names it
    (they are written after a flush), so a later backup of the same data stores it again."""
    data = os.urandom(150_000)
    repo = make_repo(tmp_path)
    repo.pack_size = 20_000  # packs are put while the stream is read
    writer = repo.new_point(draft())
    writer.write(io.BytesIO(data))
    writer.abort()  # or killed: no index object, no manifest
    assert pack_files(repo) and not list(repo.backend.list("index/"))
    for pack in pack_files(repo):
        pack.write_bytes(b"")  # what ext4 may keep of an unflushed file
    manifest, stats = backup(repo, data)
    assert stats.new_chunks == stats.chunks  # every chunk stored again
    assert restore(repo, manifest.id) == data


def test_a_long_backup_indexes_its_packs_as_it_goes(tmp_path, monkeypatch):
    """A run killed late leaves most of its packs reusable by the next one."""
    import vzbackup.repo.writer as writer_module

    monkeypatch.setattr(writer_module, "WRITEBACK_BYTES", 1 << 20)
    monkeypatch.setattr(writer_module, "CHECKPOINT_PACKS", 2)
    repo = make_repo(tmp_path)
    repo.pack_size = 64 * 1024
    data = os.urandom(12 << 20)
    writer = repo.new_point(draft())
    writer.write(io.BytesIO(data))
    writer.abort()  # or killed: no manifest, but index objects named packs on the way
    assert list(repo.point_ids()) == [] and list(repo.backend.list("index/"))
    indexed = len(repo.chunk_index(refresh=True).chunks)
    manifest, stats = backup(repo, data)
    assert indexed > 0 and stats.new_chunks == stats.chunks - indexed  # the rest was reused
    assert restore(repo, manifest.id) == data and repo.verify_point(manifest.id).ok
