"""The ``ports.Backend`` contract, run against every factory in ``backend_factories``."""

from __future__ import annotations

import threading

import pytest

from vzbackup.errors import ObjectNotFound, RepositoryError


def keys_of(backend, prefix=""):
    return sorted(info.key for info in backend.list(prefix))


def test_put_get_roundtrip(backend):
    backend.put("a/b/c", b"hello")
    assert backend.get("a/b/c") == b"hello"


def test_empty_object(backend):
    backend.put("empty", b"")
    assert backend.get("empty") == b""
    assert backend.stat("empty").size == 0
    assert keys_of(backend) == ["empty"]


def test_ranged_get(backend):
    backend.put("r", bytes(range(100)))
    assert backend.get("r", 10, 5) == bytes(range(10, 15))
    assert backend.get("r", 95) == bytes(range(95, 100))
    assert backend.get("r", 98, 10) == bytes([98, 99])
    assert backend.get("r", 0, 0) == b""


def test_stat(backend):
    assert backend.stat("nope") is None
    backend.put("s/x", b"12345")
    info = backend.stat("s/x")
    assert (info.key, info.size) == ("s/x", 5)
    assert info.mtime > 0
    assert backend.stat("s") is None  # a "folder" is not an object


def test_missing_key_raises_object_not_found(backend):
    with pytest.raises(ObjectNotFound):
        backend.get("missing/key")
    with pytest.raises(RepositoryError):  # ObjectNotFound is a RepositoryError
        backend.get("missing")


def test_list_prefix_recursive(backend):
    for key in ["chunks/ab/ab01", "chunks/ab/ab02", "chunks/cd/cd01", "manifests/m1", "config"]:
        backend.put(key, key.encode())
    assert keys_of(backend) == ["chunks/ab/ab01", "chunks/ab/ab02", "chunks/cd/cd01", "config",
                                "manifests/m1"]
    assert keys_of(backend, "chunks/") == ["chunks/ab/ab01", "chunks/ab/ab02", "chunks/cd/cd01"]
    assert keys_of(backend, "chunks/ab/") == ["chunks/ab/ab01", "chunks/ab/ab02"]
    assert keys_of(backend, "chunks/ab/ab0") == ["chunks/ab/ab01", "chunks/ab/ab02"]
    assert keys_of(backend, "man") == ["manifests/m1"]
    assert keys_of(backend, "nothing/") == []
    sizes = {i.key: i.size for i in backend.list("manifests/")}
    assert sizes == {"manifests/m1": len(b"manifests/m1")}


def test_delete(backend):
    backend.put("d/x", b"1")
    backend.delete("d/x")
    assert backend.stat("d/x") is None
    assert keys_of(backend) == []
    backend.delete("d/x")  # missing is fine
    backend.delete("never/was")


def test_overwrite_replaces_whole_object(backend):
    backend.put("o", b"a much longer first version")
    backend.put("o", b"short")
    assert backend.get("o") == b"short"
    assert backend.stat("o").size == 5


def test_crash_mid_put_leaves_no_listed_object(backend_case):
    backend = backend_case.backend
    backend.put("chunks/aa/old", b"old")
    backend_case.leave_partial_put("chunks/aa/new", b"partial data of a put")
    backend_case.leave_partial_put("chunks/aa/old", b"replacement of old")
    assert keys_of(backend) == ["chunks/aa/old"]
    assert backend.stat("chunks/aa/new") is None
    assert backend.get("chunks/aa/old") == b"old"
    with pytest.raises(ObjectNotFound):
        backend.get("chunks/aa/new")


def test_reader_never_sees_a_partial_object(backend):
    size = 2 * 1024 * 1024
    versions = [bytes([v]) * size for v in (1, 2)]
    backend.put("big", versions[0])
    stop = threading.Event()
    errors: list[str] = []

    def writer():
        i = 0
        while not stop.is_set():
            i += 1
            backend.put("big", versions[i % 2])

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(60):
            data = backend.get("big")
            if data not in versions:
                errors.append(f"read {len(data)} bytes, mixed content")
    finally:
        stop.set()
        thread.join()
    assert not errors


def test_flush_after_puts_and_deletes(backend):
    backend.put("f/1", b"x")
    backend.put("f/2", b"y")
    backend.delete("f/1")
    backend.flush()
    backend.flush()  # nothing new: still fine
    assert keys_of(backend) == ["f/2"]


def test_url_and_capabilities(backend):
    assert "://" in backend.url
    assert isinstance(backend.capabilities, frozenset)


@pytest.mark.parametrize("key", ["", "/abs", "a//b", "../up", "a/../b", "a/./b", ".hidden", "a/.tmp"])
def test_invalid_keys_are_refused(backend, key):
    with pytest.raises(RepositoryError):
        backend.put(key, b"x")
