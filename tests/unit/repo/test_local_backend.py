"""What only the local backend does: URLs, disk full, leftovers of crashed puts."""

from __future__ import annotations

import errno
import os
import time

import pytest

from vzbackup.errors import NoSpace, RepositoryError
from vzbackup.repo.backends import open_backend, register_backend
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
