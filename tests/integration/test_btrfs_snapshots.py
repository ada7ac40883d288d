"""The btrfs snapshotter on a real btrfs file system (a loop device; needs root and
btrfs-progs). Snapshots are removed on success, on errors and on SIGTERM; sweep finds
leftovers."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.support import is_root, require
from vzbackup.domain.guests import GuestRef
from vzbackup.errors import DumpFailed
from vzbackup.platforms.directory import DirectoryPlatform
from vzbackup.snapshots.btrfs import PREFIX, BtrfsSnapshotter

pytestmark = pytest.mark.root


def run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def btrfs(tmp_path: Path):
    """A fresh 300 MB btrfs mounted at ``tmp_path/mnt``; unmounted and detached after."""
    require(is_root(), "btrfs tests need root (loop devices, mount)")
    require(shutil.which("mkfs.btrfs") is not None and shutil.which("btrfs") is not None,
            "btrfs-progs is not installed (apt-get install btrfs-progs)")
    image, mnt = tmp_path / "btrfs.img", tmp_path / "mnt"
    with open(image, "wb") as f:
        f.truncate(300 << 20)
    loop = run("losetup", "--find", "--show", str(image))
    try:
        run("mkfs.btrfs", "-q", loop)
        mnt.mkdir()
        run("mount", loop, str(mnt))
        try:
            yield mnt
        finally:
            subprocess.run(["umount", str(mnt)], check=True)
    finally:
        subprocess.run(["losetup", "-d", loop], check=True)


def subvolume_with_file(mnt: Path, name: str = "ct101") -> Path:
    path = mnt / name
    run("btrfs", "subvolume", "create", str(path))
    (path / "rootfs").mkdir()
    (path / "rootfs" / "hello").write_text("hello\n")
    (path / "guest.conf").write_text("hostname: snap-test\n")
    return path


def snapshots(mnt: Path) -> list[str]:
    return sorted(p.name for p in mnt.iterdir() if p.name.startswith(PREFIX))


def test_snapshot_is_read_only_and_removed(btrfs: Path):
    guest = subvolume_with_file(btrfs)
    snapper = BtrfsSnapshotter()
    with snapper.snapshot(guest, "ct101-t1") as view:
        assert view == btrfs / f"{PREFIX}ct101-t1"
        (guest / "rootfs" / "hello").write_text("changed after the snapshot\n")
        assert (view / "rootfs" / "hello").read_text() == "hello\n"
        with pytest.raises(OSError):
            (view / "new").write_text("x")
    assert snapshots(btrfs) == []


def test_snapshot_removed_on_error_and_keyboard_interrupt(btrfs: Path):
    guest = subvolume_with_file(btrfs)
    snapper = BtrfsSnapshotter()
    for exc in (RuntimeError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(exc)):
            with snapper.snapshot(guest, "ct101-t2"):
                raise exc
        assert snapshots(btrfs) == []


def test_not_a_subvolume_is_dump_failed(btrfs: Path):
    (btrfs / "plain").mkdir()
    with pytest.raises(DumpFailed, match="not a btrfs subvolume"):
        with BtrfsSnapshotter().snapshot(btrfs / "plain", "t"):
            pass


def test_existing_snapshot_name_is_refused_and_kept(btrfs: Path):
    guest = subvolume_with_file(btrfs)
    run("btrfs", "subvolume", "snapshot", "-r", str(guest), str(btrfs / f"{PREFIX}taken"))
    with pytest.raises(DumpFailed, match="already exists"):
        with BtrfsSnapshotter().snapshot(guest, "taken"):
            pass
    assert snapshots(btrfs) == [f"{PREFIX}taken"]  # not this run's to delete


def test_command_failure_carries_stderr(btrfs: Path):
    guest = subvolume_with_file(btrfs)
    snapper = BtrfsSnapshotter()
    with pytest.raises(DumpFailed, match=r"subvolume delete .*\(exit 1\): ERROR: .*"):
        with snapper.snapshot(guest, "t3") as view:
            run("btrfs", "subvolume", "delete", str(view))  # gone before the context's delete
    assert snapshots(btrfs) == []


def test_missing_btrfs_command_is_dump_failed(btrfs: Path):
    guest = subvolume_with_file(btrfs)
    with pytest.raises(DumpFailed, match="cannot run /nonexistent/btrfs") as err:
        with BtrfsSnapshotter(btrfs="/nonexistent/btrfs").snapshot(guest, "t4"):
            pass
    assert "btrfs-progs" in err.value.hint


def test_sweep_removes_only_prefixed_snapshots(btrfs: Path):
    guest = subvolume_with_file(btrfs)
    run("btrfs", "subvolume", "snapshot", "-r", str(guest), str(btrfs / f"{PREFIX}old1"))
    run("btrfs", "subvolume", "snapshot", "-r", str(guest), str(btrfs / "user-snapshot"))
    (btrfs / f"{PREFIX}plain-dir").mkdir()
    removed = BtrfsSnapshotter().sweep(btrfs)
    assert removed == [btrfs / f"{PREFIX}old1"]
    assert sorted(p.name for p in btrfs.iterdir()) == [f"{PREFIX}plain-dir", "ct101",
                                                       "user-snapshot"]


def test_sigterm_during_a_dump_removes_the_snapshot(btrfs: Path, tmp_path: Path):
    """The entry point turns SIGTERM into SystemExit; the snapshot context then unwinds."""
    guest = subvolume_with_file(btrfs)
    ready = tmp_path / "ready"
    script = textwrap.dedent(f"""
        import signal, sys, time
        from pathlib import Path
        from vzbackup.snapshots.btrfs import BtrfsSnapshotter
        def stop(signum, frame):
            raise SystemExit(128 + signum)
        signal.signal(signal.SIGTERM, stop)
        with BtrfsSnapshotter().snapshot(Path({str(guest)!r}), "ct101-term"):
            Path({str(ready)!r}).touch()
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).parents[2])
    deadline = time.monotonic() + 30
    while not ready.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert snapshots(btrfs) == [f"{PREFIX}ct101-term"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    assert snapshots(btrfs) == []


def test_directory_platform_dumps_from_a_btrfs_snapshot(btrfs: Path):
    subvolume_with_file(btrfs)
    platform = DirectoryPlatform(btrfs, "lab1")
    guest = platform.find_guest(GuestRef("ct", 101))
    assert [g.name for g in platform.list_guests()] == ["snap-test"]
    with platform.dump(guest, BtrfsSnapshotter()) as dump:
        assert len(snapshots(btrfs)) == 1
        assert platform.list_guests() == [guest]  # the snapshot is never a guest
        data = dump.stream.read()
    assert snapshots(btrfs) == []
    platform.restore(GuestRef("ct", 102), io.BytesIO(data), name="copy", config=dump.config)
    assert (btrfs / "ct102/rootfs/hello").read_text() == "hello\n"
    assert os.path.isdir(btrfs / "ct101")
