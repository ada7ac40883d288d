"""Fixtures for the platform tests: a node root inside a sandbox whose other contents
must never change (promise 5), and builders of guests with every kind of file."""

from __future__ import annotations

import errno
import os
import random
import struct
from pathlib import Path

import pytest

from tests.support import is_root
from tests.treediff import tree_digest
from vzbackup.platforms.directory import DirectoryPlatform
from vzbackup.snapshots.none import NoSnapshot

NODE = "lab1"


class Sandbox:
    """``<tmp>/sandbox/`` holds sentinel files and ``node/`` (the platform's root)."""

    def __init__(self, base: Path):
        self.base = base
        self.root = base / "node"
        self.root.mkdir(parents=True)
        (base / "sentinel").mkdir()
        (base / "sentinel" / "keep.txt").write_text("untouched\n")
        (base / "passwd").write_text("root:x:0:0\n")
        self._before = self._outside()

    def _outside(self) -> dict:
        digest = tree_digest(self.base)
        return {k: v for k, v in digest.items() if k != "node" and not k.startswith("node/")
                and k != "."}

    def assert_untouched(self) -> None:
        assert self._outside() == self._before, "something was written outside the node root"

    def entries(self) -> list[str]:
        return sorted(os.listdir(self.root))


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    return Sandbox(tmp_path / "sandbox")


@pytest.fixture
def platform(sandbox: Sandbox) -> DirectoryPlatform:
    return DirectoryPlatform(sandbox.root, NODE)


@pytest.fixture
def nosnap() -> NoSnapshot:
    return NoSnapshot()


def xattrs_supported(path: Path) -> bool:
    probe = path / ".xattr-probe"
    probe.write_bytes(b"")
    try:
        os.setxattr(probe, "user.probe", b"1")
        return True
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EPERM):
            return False
        raise
    finally:
        probe.unlink()


def set_acl(path: Path, user: int, kind: str = "access") -> None:
    """Give ``user`` read access by a POSIX ACL (the kernel's xattr form; no setfacl needed)."""
    entries = [(0x01, 6, 0xFFFFFFFF), (0x02, 4, user), (0x04, 0, 0xFFFFFFFF),
               (0x10, 4, 0xFFFFFFFF), (0x20, 0, 0xFFFFFFFF)]
    value = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)
    os.setxattr(path, f"system.posix_acl_{kind}", value)


def make_container(root: Path, vmid: int, *, small_files: int = 2000,
                   hostname: str = "web1") -> Path:
    """A rootfs with every kind of entry a container holds."""
    guest = root / f"ct{vmid}"
    rootfs = guest / "rootfs"
    rng = random.Random(vmid)
    for d in ("etc", "usr/bin", "var/log", "home/alice/.ssh", "tmp", "dev"):
        (rootfs / d).mkdir(parents=True, exist_ok=True)
    (rootfs / "etc/hostname").write_text(f"{hostname}\n")
    (rootfs / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    for i in range(small_files):
        sub = rootfs / "usr/share/data" / f"d{i % 37:02d}" / f"e{i % 5}"
        sub.mkdir(parents=True, exist_ok=True)
        if i % 3:
            (sub / f"f{i}.txt").write_text(f"line {i}\n" * (i % 50))
        else:
            (sub / f"f{i}.bin").write_bytes(rng.randbytes(i % 9000))
    (rootfs / "usr/bin/tool").write_bytes(rng.randbytes(300_000))
    os.chmod(rootfs / "usr/bin/tool", 0o4755)  # setuid
    os.chmod(rootfs / "tmp", 0o1777)  # sticky
    os.chmod(rootfs / "home/alice/.ssh", 0o700)
    (rootfs / "home/alice/.ssh/id").write_text("secret\n")
    os.chmod(rootfs / "home/alice/.ssh/id", 0o600)
    if is_root():
        for p in (rootfs / "home/alice", rootfs / "home/alice/.ssh", rootfs / "home/alice/.ssh/id"):
            os.chown(p, 1000, 1001)
        os.lchown(rootfs / "tmp", 0, 5)
    os.symlink("/etc/passwd", rootfs / "etc/abs-link")  # absolute: relative to the guest
    os.symlink("../../etc/hostname", rootfs / "usr/bin/rel-link")
    os.symlink("/nonexistent/target", rootfs / "var/dangling")
    os.link(rootfs / "usr/bin/tool", rootfs / "usr/bin/tool-hardlink")
    os.mkfifo(rootfs / "var/fifo", 0o640)
    if is_root():
        os.mknod(rootfs / "dev/null", 0o666 | 0o020000, os.makedev(1, 3))
    with open(rootfs / "var/log/sparse.db", "wb") as f:
        f.truncate(32 << 20)
        f.seek(1 << 20)
        f.write(b"data in the middle" * 100)
        f.seek(20 << 20)
        f.write(rng.randbytes(70_000))
    if xattrs_supported(rootfs):
        os.setxattr(rootfs / "etc/hostname", "user.test", b"value \x00\xff binary")
        set_acl(rootfs / "home/alice/.ssh/id", user=1000)
        set_acl(rootfs / "var/log", user=1000, kind="default")  # after its files: none inherit
    for i, p in enumerate(sorted(rootfs.rglob("*"), reverse=True)):
        os.utime(p, ns=(1_600_000_000_123_456_789 + i, 1_500_000_000_987_654_321 + i * 1000),
                 follow_symlinks=False)
    os.utime(rootfs, ns=(1_600_000_000_000_000_000, 1_400_000_000_111_111_111))
    (guest / "guest.conf").write_text(f"# a test container\nhostname: {hostname}\n"
                                      "memory: 512\nvmid: {vmid}\n[snap1]\nhostname: old\n"
                                      .replace("{vmid}", str(vmid)))
    return guest


def make_vm(root: Path, vmid: int, *, name: str = "db1", size: int = 64 << 20) -> Path:
    """A VM with a sparse raw image holding some data, and a small second disk."""
    guest = root / f"vm{vmid}"
    guest.mkdir(parents=True)
    rng = random.Random(vmid)
    with open(guest / "disk-0.raw", "wb") as f:
        f.truncate(size)
        for offset in (0, 5 << 20, 33 << 20, size - 4096):
            f.seek(offset)
            f.write(rng.randbytes(4096 * 3 if offset != size - 4096 else 4096))
    (guest / "disk-1.raw").write_bytes(rng.randbytes(100_000))
    (guest / "guest.conf").write_text(f"name: {name}\ndisk0: disk-0.raw\ndisk1: disk-1.raw\n"
                                      "cores: 2\n")
    return guest
