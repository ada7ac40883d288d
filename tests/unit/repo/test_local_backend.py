"""What only the local backend does: URLs, disk full, leftovers of crashed puts."""

from __future__ import annotations

import errno
import mmap
import os
import time

import pytest

from vzbackup.errors import NoSpace, RepositoryError
from vzbackup.repo.backends import open_backend, register_backend
from vzbackup.repo.backends import local
from vzbackup.repo.backends.local import LocalBackend


def test_open_backend_by_scheme(tmp_path):
    backend = open_backend((tmp_path / "r").as_uri())
    assert isinstance(backend, LocalBackend)
    assert backend.root == tmp_path / "r"


@pytest.mark.parametrize("url", ["file://host/x", "file:relative"])
def test_bad_file_urls(url):
    with pytest.raises(RepositoryError):
        open_backend(url)


def test_unknown_scheme_names_known_ones():
    with pytest.raises(RepositoryError, match=r"unknown repository URL scheme 'gopher'.*file://"):
        open_backend("gopher://x/y")


def test_registry_accepts_new_schemes(tmp_path, monkeypatch):
    from vzbackup.repo import backends

    monkeypatch.setattr(backends, "_REGISTRY", dict(backends._REGISTRY))
    register_backend("testfs", lambda url, **o: LocalBackend(tmp_path / "t", **o))
    assert isinstance(open_backend("testfs://anything"), LocalBackend)


def test_disk_full_raises_no_space_and_leaves_nothing(tmp_path, monkeypatch):
    backend = LocalBackend(tmp_path / "r")
    backend.put("chunks/ab/keep", b"1")

    def full(path, data):
        with open(path, "wb") as f:
            f.write(b"part")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(LocalBackend, "_write_file", staticmethod(full))
    with pytest.raises(NoSpace, match="no space left") as info:
        backend.put("chunks/ab/new", b"data")
    assert str(tmp_path / "r") in info.value.message
    assert os.listdir(tmp_path / "r" / "chunks" / "ab") == ["keep"]


def test_other_os_errors_name_url_and_key(tmp_path, monkeypatch):
    backend = LocalBackend(tmp_path / "r")

    def denied(path, data):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(LocalBackend, "_write_file", staticmethod(denied))
    with pytest.raises(RepositoryError, match=r"file://.*/r: cannot write manifests/x: Permission denied"):
        backend.put("manifests/x", b"data")


def test_remove_stale_temp(tmp_path):
    backend = LocalBackend(tmp_path / "r")
    backend.put("chunks/ab/obj", b"1")
    stale = tmp_path / "r" / "chunks" / "ab" / ".obj2.123456.tmp"
    fresh = tmp_path / "r" / "chunks" / "ab" / ".obj3.123456.tmp"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"x")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    assert backend.remove_stale_temp(older_than=3600) == 1
    assert not stale.exists() and fresh.exists()
    assert [i.key for i in backend.list()] == ["chunks/ab/obj"]


def test_fsync_mode_tracks_and_clears_dirty(tmp_path):
    backend = LocalBackend(tmp_path / "r", durability="fsync")
    backend.put("a/b/c", b"1")
    backend.put("d", b"2")
    assert len(backend._dirty) == 2
    backend.flush()
    assert not backend._dirty


def test_objects_are_private(tmp_path):
    backend = LocalBackend(tmp_path / "r")
    backend.put("keys/repokey", b"secret")
    assert (tmp_path / "r" / "keys" / "repokey").stat().st_mode & 0o077 == 0


def _aligned(data: bytes) -> memoryview:
    """``data`` in page-aligned memory, as a pack buffer holds it."""
    buf = mmap.mmap(-1, len(data) + 1)
    buf[:len(data)] = data
    return memoryview(buf)[:len(data)]


def _spy_open(monkeypatch, refuse: bool = False) -> list[int]:
    """Record the flags of each open() by the backend; with ``refuse``, fail O_DIRECT opens
    with EINVAL as tmpfs did before Linux 6.6."""
    seen: list[int] = []
    real = os.open

    def spy(path, flags, mode=0o777, **kw):
        seen.append(flags)
        if refuse and flags & local.DIRECT_FLAG:
            raise OSError(errno.EINVAL, "Invalid argument", path)
        return real(path, flags, mode, **kw)

    monkeypatch.setattr(local.os, "open", spy)
    return seen


@pytest.mark.parametrize("extra", [0, 1, 4095, 4096 + 100])
def test_large_aligned_objects_are_written_directly(tmp_path, monkeypatch, extra):
    if not local.DIRECT_FLAG:
        pytest.skip("no O_DIRECT on this platform")
    backend = LocalBackend(tmp_path / "r")
    data = os.urandom(local.DIRECT_MIN + extra)
    backend.put("packs/ab/small", data[:5000])
    seen = _spy_open(monkeypatch)
    backend.put_parts("packs/ab/big", (_aligned(data),))
    backend.put_parts("packs/ab/copy", (data,))  # bytes: not aligned, through the page cache
    backend.put_parts("packs/ab/short", (_aligned(data)[:5000],))  # too small to bother
    assert [bool(f & local.DIRECT_FLAG) for f in seen] == [True, False, False]
    for key in ("big", "copy"):
        assert backend.get(f"packs/ab/{key}") == data
    assert backend.get("packs/ab/small") == data[:5000]
    backend.flush()


def test_a_filesystem_refusing_o_direct_gets_buffered_writes(tmp_path, monkeypatch):
    backend = LocalBackend(tmp_path / "r")
    backend.put("packs/ab/small", b"x")
    seen = _spy_open(monkeypatch, refuse=True)
    data = os.urandom(local.DIRECT_MIN + 10)
    for key in ("one", "two"):
        backend.put_parts(f"packs/ab/{key}", (_aligned(data),))
        assert backend.get(f"packs/ab/{key}") == data
    assert not backend._direct  # asked once, then no more
    assert sum(bool(f & local.DIRECT_FLAG) for f in seen) == (1 if local.DIRECT_FLAG else 0)
    assert sorted(os.listdir(tmp_path / "r" / "packs" / "ab")) == ["one", "small", "two"]


def test_a_direct_write_refused_midway_finishes_through_the_page_cache(tmp_path, monkeypatch):
    if not local.DIRECT_FLAG:
        pytest.skip("no O_DIRECT on this platform")
    backend = LocalBackend(tmp_path / "r")
    real = os.write
    calls = []

    def larger_blocks(fd, data):  # a device whose blocks are larger than DIRECT_ALIGN
        calls.append(len(data))
        if len(calls) == 1:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, data)

    monkeypatch.setattr(local.os, "write", larger_blocks)
    data = os.urandom(local.DIRECT_MIN + 77)
    backend.put_parts("packs/ab/big", (_aligned(data),))
    assert backend.get("packs/ab/big") == data and not backend._direct


def test_writeback_syncs_only_after_enough_buffered_data(tmp_path, monkeypatch):
    backend = LocalBackend(tmp_path / "r")
    if not backend._use_syncfs or not local.DIRECT_FLAG:
        pytest.skip("no syncfs or no O_DIRECT here")
    syncs = []
    real = backend._syncfs
    monkeypatch.setattr(backend, "_syncfs", lambda: (syncs.append(1), real()))
    backend.put("packs/ab/small", b"x")
    for n in range(6):  # 6 MiB written directly: nothing for writeback to do
        backend.put_parts(f"packs/ab/d{n}", (_aligned(os.urandom(local.DIRECT_MIN)),))
    backend.writeback()
    assert syncs == []
    backend.put("packs/ab/cached", bytes(local.WRITEBACK_MIN))  # through the page cache
    backend.writeback()
    backend.writeback()
    assert syncs == [1]
    backend.flush()  # flush always syncs
    assert syncs == [1, 1]
