"""Dump -> restore of the directory platform keeps every file property a guest needs."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from tests.support import is_root
from tests.treediff import diff_trees, tree_digest
from vzbackup.domain.guests import GuestRef
from vzbackup.platforms.directory import DirectoryPlatform

from .conftest import NODE, make_container, make_vm

CT = GuestRef("ct", 101)
VM = GuestRef("vm", 200)


def dump_bytes(platform: DirectoryPlatform, ref: GuestRef, snapshotter) -> tuple[bytes, dict]:
    guest = platform.find_guest(ref)
    assert guest is not None
    with platform.dump(guest, snapshotter) as dump:
        data = dump.stream.read()
        config = dump.config
    return data, config


def test_lists_guests_from_folders_only(platform, sandbox):
    make_container(sandbox.root, 101, small_files=3)
    make_vm(sandbox.root, 200, size=1 << 20)
    (sandbox.root / ".restore-ct102-abc").mkdir()
    (sandbox.root / ".vzbackup-snap-ct101-x").mkdir()
    (sandbox.root / "notes.txt").write_text("x")
    (sandbox.root / "ct999").symlink_to(sandbox.root / "ct101")
    guests = platform.list_guests()
    assert [(str(g.ref), g.name, g.node, g.status) for g in guests] == [
        ("ct101", "web1", NODE, "stopped"), ("vm200", "db1", NODE, "stopped")]
    assert guests[0].config["memory"] == "512"
    assert platform.find_guest(GuestRef("ct", 102)) is None
    assert platform.find_guest(GuestRef("ct", 999)) is None
    assert platform.find_guest(VM).config["disk0"] == "disk-0.raw"


def test_container_round_trip_keeps_everything(platform, sandbox, nosnap):
    source = make_container(sandbox.root, 101)
    before = tree_digest(source / "rootfs")
    data, config = dump_bytes(platform, CT, nosnap)
    assert config["hostname"] == "web1"

    info = platform.restore(GuestRef("ct", 105), io.BytesIO(data), name="web1-copy",
                            config=config)

    restored = sandbox.root / "ct105" / "rootfs"
    assert diff_trees(before, tree_digest(restored)) == []
    assert info.name == "web1-copy" and info.ref == GuestRef("ct", 105)
    assert info.config["vmid"] == "105" and info.config["memory"] == "512"
    sparse = os.lstat(restored / "var/log/sparse.db")
    assert sparse.st_size == 32 << 20 and sparse.st_blocks * 512 < 1 << 20
    assert sandbox.entries() == ["ct101", "ct105"]
    sandbox.assert_untouched()


def test_container_round_trip_keeps_owners_and_devices(platform, sandbox, nosnap):
    if not is_root():
        pytest.skip("owners and device nodes need root")  # covered by the test above otherwise
    source = make_container(sandbox.root, 101, small_files=5)
    data, config = dump_bytes(platform, CT, nosnap)
    platform.restore(GuestRef("ct", 106), io.BytesIO(data), name="x", config=config)
    ssh = os.lstat(sandbox.root / "ct106/rootfs/home/alice/.ssh")
    assert (ssh.st_uid, ssh.st_gid, ssh.st_mode & 0o7777) == (1000, 1001, 0o700)
    null = os.lstat(sandbox.root / "ct106/rootfs/dev/null")
    assert os.major(null.st_rdev) == 1 and os.minor(null.st_rdev) == 3
    assert tree_digest(source / "rootfs") == tree_digest(sandbox.root / "ct106/rootfs")


def test_vm_round_trip_stays_sparse(platform, sandbox, nosnap):
    source = make_vm(sandbox.root, 200)
    before = tree_digest(source)
    data, config = dump_bytes(platform, VM, nosnap)
    assert len(data) < 1 << 20  # holes are not in the stream

    platform.restore(GuestRef("vm", 201), io.BytesIO(data), name="db2", config=config)

    after = tree_digest(sandbox.root / "vm201")
    conf = "guest.conf"
    assert {k: v for k, v in before.items() if k not in (".", conf)} == \
        {k: v for k, v in after.items() if k not in (".", conf)}
    image = os.lstat(sandbox.root / "vm201/disk-0.raw")
    assert image.st_size == 64 << 20 and image.st_blocks * 512 < 1 << 20
    assert platform.find_guest(GuestRef("vm", 201)).name == "db2"


def test_dump_reads_the_snapshot_not_the_live_folder(platform, sandbox):
    make_container(sandbox.root, 101, small_files=2)
    frozen = sandbox.base / "frozen"
    make_container(frozen, 101, small_files=2, hostname="frozen")
    calls = []

    class FakeSnapshotter:
        name = "fake"

        from contextlib import contextmanager

        @contextmanager
        def snapshot(self, path: Path, tag: str):
            calls.append((path, tag))
            yield frozen / "ct101"
            calls.append("removed")

    data, config = dump_bytes(platform, CT, FakeSnapshotter())
    assert config["hostname"] == "frozen"
    assert calls[0][0] == sandbox.root / "ct101" and calls[0][1].startswith("ct101-")
    assert calls[-1] == "removed"
    platform.restore(GuestRef("ct", 102), io.BytesIO(data), name="n", config=config)
    assert (sandbox.root / "ct102/rootfs/etc/hostname").read_text() == "frozen\n"


def test_acl_comes_back(platform, sandbox, nosnap):
    source = make_container(sandbox.root, 101, small_files=1)
    key = "system.posix_acl_access"
    if key not in os.listxattr(source / "rootfs/home/alice/.ssh/id"):
        pytest.skip("this file system keeps no ACLs")
    data, config = dump_bytes(platform, CT, nosnap)
    platform.restore(GuestRef("ct", 107), io.BytesIO(data), name="x", config=config)
    restored = sandbox.root / "ct107/rootfs/home/alice/.ssh/id"
    assert os.getxattr(restored, key) == os.getxattr(source / "rootfs/home/alice/.ssh/id", key)


def test_an_unchanged_guest_dumps_the_same_bytes(platform, sandbox, nosnap):
    """Reading files changes their atime: it must not reach the stream, or every header
    would change each night and deduplication would store the guest again."""
    make_container(sandbox.root, 101, small_files=200)
    first, _ = dump_bytes(platform, CT, nosnap)
    os.utime(sandbox.root / "ct101/rootfs/etc/hostname",
             ns=(2_000_000_000_000_000_000, os.lstat(sandbox.root / "ct101/rootfs/etc/hostname").st_mtime_ns))
    second, _ = dump_bytes(platform, CT, nosnap)
    assert first == second


def test_vm_image_with_thousands_of_extents(platform, sandbox, nosnap):
    guest = sandbox.root / "vm210"
    guest.mkdir()
    with open(guest / "disk-0.raw", "wb") as f:
        f.truncate(256 << 20)
        for i in range(3000):  # a scattered write pattern: one 4 KiB block every 64 KiB
            f.seek(i * (64 << 10) + (i % 7) * 4096)
            f.write(i.to_bytes(4, "big") * 1024)
    (guest / "guest.conf").write_text("name: frag\n")
    before = tree_digest(guest)
    data, config = dump_bytes(platform, GuestRef("vm", 210), nosnap)
    platform.restore(GuestRef("vm", 211), io.BytesIO(data), name="frag", config=config)
    after = tree_digest(sandbox.root / "vm211")
    assert before["disk-0.raw"] == after["disk-0.raw"]
    assert os.lstat(sandbox.root / "vm211/disk-0.raw").st_blocks * 512 < 20 << 20
