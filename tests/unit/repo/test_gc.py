"""Garbage collection: two phases a grace period apart, a backup in flight never loses a
chunk, and a GC killed at any step leaves every remaining point whole."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest

from vzbackup.errors import RepositoryError
from vzbackup.repo.format import GARBAGE_PREFIX, INDEX_PREFIX
from vzbackup.repo.repository import open_chunk_repository

from .conftest import backup, draft, make_repo, pack_files, restore

DAY = 86400.0
GRACE = DAY


def data(seed: int, size: int = 200_000) -> bytes:
    import random

    return random.Random(seed).randbytes(size)


def age_everything(repo, seconds: float = 3 * DAY) -> None:
    """Make every object look old, as after some nights."""
    root = Path(repo.backend.root)
    old = time.time() - seconds
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, (old, old))


def keys(repo, prefix: str) -> list[str]:
    return sorted(i.key for i in repo.backend.list(prefix))


def assert_whole(repo, points: dict[str, bytes]) -> None:
    for point_id, expected in points.items():
        assert restore(repo, point_id) == expected
        report = repo.verify_point(point_id, full=True)
        assert report.ok, report.problems


def gc(repo, now: float, **kw):
    return repo.collect_garbage(grace=GRACE, now=now, **kw)


@pytest.fixture
def small_packs(tmp_path):
    repo = make_repo(tmp_path)
    repo.pack_size = 60_000  # a few packs per point
    return repo


def test_a_removed_points_packs_are_condemned_then_deleted_after_the_grace_period(small_packs):
    repo = small_packs
    gone, _ = backup(repo, data(1), vmid=101)
    kept, _ = backup(repo, data(2), vmid=102)
    before = pack_files(repo)
    age_everything(repo)
    repo.remove_point(gone.id)
    now = time.time()

    first = gc(repo, now)
    assert first.points == 1 and first.condemned >= 1 and first.deleted == 0
    assert pack_files(repo) == before, "phase 1 deletes nothing"
    assert len(keys(repo, GARBAGE_PREFIX)) == 1
    assert first.pending == first.condemned and first.next_deletion == pytest.approx(now + GRACE)
    assert_whole(repo, {kept.id: data(2)})

    early = gc(repo, now + GRACE / 2)
    assert early.deleted == 0 and pack_files(repo) == before

    second = gc(repo, now + GRACE + 1)
    assert second.deleted == first.condemned and second.deleted_bytes > 150_000
    assert len(pack_files(repo)) < len(before)
    assert keys(repo, GARBAGE_PREFIX) == []
    assert_whole(repo, {kept.id: data(2)})
    # a fresh process (no cache) sees the same
    fresh = open_chunk_repository("test", repo.backend, passphrase=None, cache_dir=None)
    assert_whole(fresh, {kept.id: data(2)})


def test_young_packs_are_never_condemned(small_packs):
    repo = small_packs
    gone, _ = backup(repo, data(1))
    files = pack_files(repo)
    repo.remove_point(gone.id)
    report = gc(repo, time.time())
    assert report.condemned == 0 and pack_files(repo) == files
    assert keys(repo, GARBAGE_PREFIX) == []


def test_a_mostly_unreferenced_pack_is_repacked(tmp_path):
    repo = make_repo(tmp_path)  # one big pack per point
    whole = data(3, 400_000)
    big, _ = backup(repo, whole, vmid=101)
    part, _ = backup(repo, whole[:60_000], vmid=102)  # shares its first chunks
    age_everything(repo)
    repo.remove_point(big.id)
    now = time.time()
    report = gc(repo, now)
    assert report.repacked == 1 and 0 < report.repacked_bytes < 120_000
    assert_whole(repo, {part.id: whole[:60_000]})
    gc(repo, now + GRACE + 1)
    stored = sum(p.stat().st_size for p in pack_files(repo))
    assert stored < 150_000
    assert_whole(repo, {part.id: whole[:60_000]})


def test_a_backup_in_flight_that_deduplicated_against_condemned_chunks_stores_them_again(
        small_packs):
    repo = small_packs
    old, _ = backup(repo, data(4))
    age_everything(repo)
    repo.remove_point(old.id)
    writer = repo.new_point(draft(101))  # loads the index: data(4)'s chunks look present
    writer.write(io.BytesIO(data(4)))
    assert writer.stats.new_chunks == 0
    now = time.time()
    assert gc(repo, now).condemned >= 1  # condemned while the backup runs
    manifest = writer.commit()  # the check before the manifest stores them again
    gc(repo, now + GRACE + 1)
    assert gc(repo, now + 3 * GRACE).deleted == 0
    assert_whole(repo, {manifest.id: data(4)})


def test_phase_two_keeps_condemned_packs_a_new_point_needs(small_packs, monkeypatch):
    """Even without the writer's own check (a point written by an older version, or a
    writer that checked just before the condemnation), phase 2 looks again."""
    repo = small_packs
    old, _ = backup(repo, data(5))
    age_everything(repo)
    repo.remove_point(old.id)
    monkeypatch.setattr("vzbackup.repo.writer.rehome_unindexed", lambda *a, **k: 0)
    writer = repo.new_point(draft(101))
    writer.write(io.BytesIO(data(5)))
    now = time.time()
    gc(repo, now)
    manifest = writer.commit()
    assert_whole(repo, {manifest.id: data(5)})  # readable through the garbage record
    report = gc(repo, now + GRACE + 1)
    assert report.revived >= 1 and report.deleted == 0
    assert_whole(repo, {manifest.id: data(5)})
    fresh = open_chunk_repository("test", repo.backend, passphrase=None, cache_dir=None)
    assert_whole(fresh, {manifest.id: data(5)})


def test_a_chunk_gone_from_everywhere_fails_the_commit_and_writes_no_manifest(small_packs):
    repo = small_packs
    old, _ = backup(repo, data(6))
    age_everything(repo)
    repo.remove_point(old.id)
    writer = repo.new_point(draft(101))
    writer.write(io.BytesIO(data(6)))
    now = time.time()
    gc(repo, now)
    gc(repo, now + GRACE + 1)  # a backup running longer than the grace period
    with pytest.raises(RepositoryError, match="removed from .* while this ran"):
        writer.commit()
    assert list(repo.point_ids()) == []


def test_an_unreadable_manifest_stops_gc_before_anything_is_removed(small_packs):
    repo = small_packs
    a, _ = backup(repo, data(7), vmid=101)
    b, _ = backup(repo, data(8), vmid=102)
    age_everything(repo)
    manifest = Path(repo.backend.root) / "manifests" / b.id
    blob = bytearray(manifest.read_bytes())
    blob[-3] ^= 0xFF
    manifest.write_bytes(bytes(blob))
    repo.remove_point(a.id)
    files = pack_files(repo)
    with pytest.raises(RepositoryError, match=f"restore point {b.id[:12]} cannot be read"):
        gc(repo, time.time())
    assert pack_files(repo) == files and keys(repo, GARBAGE_PREFIX) == []


def test_packs_no_index_names_are_deleted_once_old(small_packs):
    repo = small_packs
    kept, _ = backup(repo, data(9))
    stray = Path(repo.backend.root) / "packs" / "ab" / ("ab" * 32)
    stray.parent.mkdir(exist_ok=True)
    stray.write_bytes(b"a pack a killed run put and never indexed")
    report = gc(repo, time.time())
    assert report.unnamed_deleted == 0 and stray.exists()  # young: maybe a backup's
    age_everything(repo)
    report = gc(repo, time.time())
    assert report.unnamed_deleted == 1 and not stray.exists()
    assert_whole(repo, {kept.id: data(9)})


def test_unnamed_packs_are_kept_while_a_referenced_chunk_is_unindexed(small_packs):
    repo = small_packs
    kept, _ = backup(repo, data(10))
    age_everything(repo)
    for key in keys(repo, INDEX_PREFIX):  # index objects lost
        repo.backend.delete(key)
    files = pack_files(repo)
    report = gc(repo, time.time())
    assert report.unnamed_deleted == 0 and pack_files(repo) == files
    assert any("reindex" in w for w in report.warnings)
    repo.index_unnamed_packs()
    assert_whole(repo, {kept.id: data(10)})


def test_reindex_leaves_condemned_packs_alone(small_packs):
    repo = small_packs
    gone, _ = backup(repo, data(11))
    age_everything(repo)
    repo.remove_point(gone.id)
    gc(repo, time.time())
    assert repo.index_unnamed_packs().packs == 0


def test_dry_run_changes_nothing(small_packs):
    repo = small_packs
    gone, _ = backup(repo, data(12), vmid=101)
    backup(repo, data(13), vmid=102)
    age_everything(repo)
    repo.remove_point(gone.id)
    listing = keys(repo, "")
    report = gc(repo, time.time(), dry_run=True)
    assert report.dry_run and report.condemned >= 1
    assert keys(repo, "") == listing


def test_many_index_objects_are_merged(small_packs):
    repo = small_packs
    points = {}
    for n in range(8):
        m, _ = backup(repo, data(20 + n, 30_000), vmid=100 + n)
        points[m.id] = data(20 + n, 30_000)
    assert len(keys(repo, INDEX_PREFIX)) == 8
    report = gc(repo, time.time())
    assert report.condemned == 0 and report.index_objects == (8, 1)
    assert len(keys(repo, INDEX_PREFIX)) == 1
    assert_whole(repo, points)


def test_encrypted_repository(tmp_path):
    repo = make_repo(tmp_path, encryption="aes-256-gcm", passphrase="pw")
    repo.pack_size = 60_000
    gone, _ = backup(repo, data(14), vmid=101)
    kept, _ = backup(repo, data(15), vmid=102)
    age_everything(repo)
    repo.remove_point(gone.id)
    now = time.time()
    gc(repo, now)
    report = gc(repo, now + GRACE + 1)
    assert report.deleted >= 1
    fresh = open_chunk_repository("test", repo.backend, passphrase="pw", cache_dir=None)
    assert_whole(fresh, {kept.id: data(15)})


class Killed(Exception):
    pass


class DyingBackend:
    """Passes calls through until the ``at``-th change (put, delete or flush), which dies."""

    def __init__(self, inner, at: int):
        self._inner, self._at, self.changes = inner, at, 0

    def __getattr__(self, name):
        attr = getattr(self._inner, name)
        if name in ("put", "put_parts", "delete", "flush"):
            def counted(*args, **kwargs):
                self.changes += 1
                if self.changes == self._at:
                    raise Killed(f"killed at change {self._at}: {name}")
                return attr(*args, **kwargs)
            return counted
        return attr


def test_gc_killed_at_every_step_leaves_every_point_whole(tmp_path):
    """Kill both phases at each of their changes in turn; after each, every point still
    restores, and GC run again to completion frees the space."""
    base = make_repo(tmp_path / "base")
    base.pack_size = 60_000
    whole = data(16, 300_000)
    gone, _ = backup(base, data(17), vmid=101)
    big, _ = backup(base, whole, vmid=102)
    part, _ = backup(base, whole[:50_000], vmid=103)  # forces a repack of big's first pack
    age_everything(base)
    base.remove_point(gone.id)
    base.remove_point(big.id)
    survivors = {part.id: whole[:50_000]}
    pristine = tmp_path / "pristine"
    import shutil
    shutil.copytree(base.backend.root, pristine)

    now = time.time()
    at = 1
    while True:
        root = tmp_path / f"run{at}"
        shutil.copytree(pristine, root, copy_function=shutil.copy2)
        plain = open_chunk_repository("t", _open(root), passphrase=None, cache_dir=None)
        plain.pack_size = 60_000
        dying = DyingBackend(plain.backend, at)
        repo = open_chunk_repository("t", dying, passphrase=None, cache_dir=None)
        repo.pack_size = 60_000
        finished = False
        try:
            repo.collect_garbage(grace=GRACE, now=now)
            repo.collect_garbage(grace=GRACE, now=now + GRACE + 1)
            finished = True
        except Killed:
            pass
        after = open_chunk_repository("t", _open(root), passphrase=None, cache_dir=None)
        assert_whole(after, survivors)
        after.collect_garbage(grace=GRACE, now=now + GRACE + 1)
        after.collect_garbage(grace=GRACE, now=now + 3 * GRACE)
        assert_whole(after, survivors)
        assert keys(after, GARBAGE_PREFIX) == []
        stored = sum(p.stat().st_size for p in (root / "packs").rglob("*") if p.is_file())
        assert stored < 120_000, f"killed at change {at}: {stored} bytes left"
        shutil.rmtree(root)
        if finished:
            break
        at += 1
    assert at > 8  # the phases have that many steps to be killed at


def _open(root: Path):
    from vzbackup.repo.backends import open_backend
    return open_backend(root.as_uri())



def test_a_copy_into_a_replica_whose_gc_condemns_what_it_relied_on_stores_it_again(
        tmp_path, monkeypatch):
    from vzbackup.repo import replicate
    from vzbackup.repo.repository import init_replica_repository

    source = make_repo(tmp_path / "src")
    old, _ = backup(source, data(30), vmid=101)
    backend = _open(tmp_path / "replica")
    init_replica_repository(source, backend)
    target = open_chunk_repository("replica", backend, passphrase=None, cache_dir=None)
    target.pack_size = 60_000
    source.copy_point(old.id, target)
    target.remove_point(old.id)  # pruned in the replica: its chunks are garbage there
    age_everything(target)
    new, _ = backup(source, data(30), vmid=102)  # the same data, another point
    now = time.time()
    real = replicate._missing_chunks

    def then_gc(*args):
        todo = real(*args)  # the replica's index has every chunk: nothing to send...
        assert todo == []
        assert target.collect_garbage(grace=GRACE, now=now).condemned >= 1  # ...until GC
        return todo

    monkeypatch.setattr(replicate, "_missing_chunks", then_gc)
    source.copy_point(new.id, target)
    monkeypatch.undo()
    index = target.chunk_index(refresh=True)
    assert all(ref.id in index for ref in new.chunks)  # indexed again by the copy itself
    assert target.collect_garbage(grace=GRACE, now=now + GRACE + 1).revived == 0
    fresh = open_chunk_repository("replica", backend, passphrase=None, cache_dir=None)
    assert_whole(fresh, {new.id: data(30)})
