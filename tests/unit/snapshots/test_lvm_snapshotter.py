"""The lvm snapshotter against the LVM2 emulator: the snapshot is mounted read-only for the
dump, watched while it runs, and always unmounted and removed; an overflow fails the dump
saying how much room it needed; leftovers are only ever vzbackup's own."""

from __future__ import annotations

import time

import pytest

from tests.fakes.lvm_lab import FakeLvm
from vzbackup.errors import DumpFailed
from vzbackup.snapshots.lvm import LvmSnapshotter


@pytest.fixture
def vz(fake_lvm, tmp_path):
    data = tmp_path / "vz"
    (data / "private" / "101").mkdir(parents=True)
    (data / "private" / "101" / "file").write_text("hello\n")
    fake_lvm.volume("vg0/vz", data, 2 << 30)
    return data


def snapshotter(tmp_path, size="64M", node="node1") -> LvmSnapshotter:
    return LvmSnapshotter("vg0/vz", tmp_path / "vz", node, size=size,
                          mount_dir=tmp_path / "mnt", poll=0.05, removal_waits=(0.01,))


def names(lvm: FakeLvm) -> list[str]:
    return [lv.name for lv in lvm.lvs("vg0")]


def test_view_is_the_snapshot_and_everything_goes_afterwards(fake_lvm, vz, tmp_path):
    with snapshotter(tmp_path).snapshot(vz / "private" / "101", "ct101-1a2b3c4d") as view:
        (vz / "private" / "101" / "file").write_text("changed\n")
        assert (view / "file").read_text() == "hello\n"
        assert view == tmp_path / "mnt" / "vzbackup-node1-ct101-1a2b3c4d" / "private" / "101"
        snap = next(lv for lv in fake_lvm.lvs("vg0") if lv.name != "vz")
        assert (snap.tags, snap.writable, snap.kind) == (["vzbackup"], False, "cow")
    assert names(fake_lvm) == ["vz"]
    assert list((tmp_path / "mnt").iterdir()) == []


def test_removed_when_the_dump_fails(fake_lvm, vz, tmp_path):
    with pytest.raises(RuntimeError):
        with snapshotter(tmp_path).snapshot(vz / "private" / "101", "ct101-1a2b3c4d"):
            raise RuntimeError("tar died")
    assert names(fake_lvm) == ["vz"]


def test_overflow_fails_the_dump_and_says_how_much_it_needed(fake_lvm, vz, tmp_path):
    with pytest.raises(DumpFailed) as caught:
        with snapshotter(tmp_path, size="8M").snapshot(vz / "private" / "101", "ct101-1a2b3c4d"):
            time.sleep(0.1)
            fake_lvm.write_origin("vg0/vz", 9 << 20)
            time.sleep(0.3)  # the dump goes on after the overflow
    message = str(caught.value)
    assert "vg0/vzbackup-node1-ct101-1a2b3c4d of vg0/vz overflowed" in message
    assert "It needed more than 8M; at the rate it filled" in message
    assert "lvm_snapshot_size" in caught.value.hint
    assert names(fake_lvm) == ["vz"]


def test_overflow_is_named_when_the_read_itself_failed(fake_lvm, vz, tmp_path):
    with pytest.raises(DumpFailed, match="overflowed") as caught:
        with snapshotter(tmp_path, size="8M").snapshot(vz / "private" / "101", "ct101-1a2b3c4d") as v:
            fake_lvm.write_origin("vg0/vz", 9 << 20)
            (v / "file").read_text()  # I/O on an invalid snapshot fails
    assert isinstance(caught.value.__cause__, OSError)
    assert names(fake_lvm) == ["vz"]


def test_thin_snapshot_without_a_size(fake_lvm, tmp_path):
    data = tmp_path / "vz"
    (data / "private").mkdir(parents=True)
    fake_lvm.volume("vg0/pool", tmp_path, 8 << 30, kind="pool")
    fake_lvm.volume("vg0/vz", data, 2 << 30, kind="thin", pool="pool")
    with snapshotter(tmp_path, size="").snapshot(data / "private", "ct101-1a2b3c4d") as view:
        assert view.is_dir()
        snap = next(lv for lv in fake_lvm.lvs("vg0") if lv.name.startswith("vzbackup-"))
        assert (snap.kind, snap.skip_activation) == ("thin", False)
    assert names(fake_lvm) == ["pool", "vz"]


def test_thick_volume_without_a_size_is_explained(fake_lvm, vz, tmp_path):
    with pytest.raises(DumpFailed, match="Please specify either size") as caught:
        with snapshotter(tmp_path, size="").snapshot(vz / "private" / "101", "ct101-1a2b3c4d"):
            pass
    assert "lvm_snapshot_size" in caught.value.hint


def test_no_free_extents(fake_lvm, vz, tmp_path):
    with pytest.raises(DumpFailed, match="insufficient free space"):
        with snapshotter(tmp_path, size="100G").snapshot(vz / "private" / "101", "ct101-1a2b3c4d"):
            pass
    assert names(fake_lvm) == ["vz"]


def test_leftovers_are_only_this_nodes_own(fake_lvm, vz, tmp_path):
    run = fake_lvm.run
    run("lvcreate", "-s", "-L", "8M", "-n", "vzbackup-node1-ct101-1a2b3c4d", "--addtag", "vzbackup", "vg0/vz")
    run("lvcreate", "-s", "-L", "8M", "-n", "vzbackup-node2-ct102-1a2b3c4d", "--addtag", "vzbackup", "vg0/vz")
    run("lvcreate", "-s", "-L", "8M", "-n", "vzbackup-node1-ct103-1a2b3c4d", "vg0/vz")  # no tag
    run("lvcreate", "-s", "-L", "8M", "-n", "vzsnap-node1-0", "--addtag", "vzbackup", "vg0/vz")
    run("lvcreate", "-s", "-L", "8M", "-n", "admin-snap", "vg0/vz")
    s = snapshotter(tmp_path)
    found = s.leftovers(vz / "private")
    assert [(lo.id, lo.guest, lo.kind) for lo in found] == [
        ("vg0/vzbackup-node1-ct101-1a2b3c4d", "ct101", "lvm")]
    assert found[0].detail == "snapshot of vg0/vz, 0% full"
    s.remove(found[0])
    assert "vzbackup-node1-ct101-1a2b3c4d" not in names(fake_lvm)
    assert len(names(fake_lvm)) == 5


def test_leftover_still_mounted_is_unmounted_first(fake_lvm, vz, tmp_path):
    s = snapshotter(tmp_path)
    ctx = s.snapshot(vz / "private" / "101", "ct101-1a2b3c4d")
    ctx.__enter__()  # a crash: never exited
    found = s.leftovers(vz)
    s.remove(found[0])
    assert names(fake_lvm) == ["vz"]
    assert list((tmp_path / "mnt").iterdir()) == []
    ctx.__exit__(None, None, None)  # the "crashed" run's cleanup finds nothing left to do


def test_a_path_outside_the_volume_is_refused(fake_lvm, vz, tmp_path):
    with pytest.raises(DumpFailed, match="is not on the LVM volume vg0/vz"):
        with snapshotter(tmp_path).snapshot(tmp_path / "elsewhere", "ct101-1a2b3c4d"):
            pass


def test_directory_platform_dumps_from_an_lvm_snapshot(fake_lvm, tmp_path):
    from vzbackup.domain.guests import GuestRef
    from vzbackup.platforms.directory import DirectoryPlatform

    root = tmp_path / "vz"
    (root / "ct101" / "rootfs" / "etc").mkdir(parents=True)
    (root / "ct101" / "rootfs" / "etc" / "hostname").write_text("web1\n")
    (root / "ct101" / "guest.conf").write_text("hostname: web1\n")
    fake_lvm.volume("vg0/vz", root)
    platform = DirectoryPlatform(root, "node1")
    guest = platform.find_guest(GuestRef("ct", 101))
    with platform.dump(guest, snapshotter(tmp_path)) as dump:
        (root / "ct101" / "rootfs" / "etc" / "hostname").write_text("changed\n")
        data = dump.stream.read()
    assert b"web1\n" in data and b"changed" not in data
    assert names(fake_lvm) == ["vz"]


def test_a_mount_point_left_without_its_snapshot_is_swept(fake_lvm, vz, tmp_path):
    s = snapshotter(tmp_path)
    (tmp_path / "mnt" / "vzbackup-node1-ct101-1a2b3c4d").mkdir(parents=True)
    (tmp_path / "mnt" / "vzbackup-node2-ct101-1a2b3c4d").mkdir()  # another node's: kept
    [lo] = s.leftovers(vz)
    assert lo.detail.endswith("vzbackup-node1-ct101-1a2b3c4d without its snapshot")
    s.remove(lo)
    assert [p.name for p in (tmp_path / "mnt").iterdir()] == ["vzbackup-node2-ct101-1a2b3c4d"]
