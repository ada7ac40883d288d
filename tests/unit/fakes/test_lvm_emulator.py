"""The LVM2 emulator answers as lvm2 2.03.16 does (shared/reference/pve.md section 11),
and rejects what the real tools reject, with their messages and exit codes."""

from __future__ import annotations

import json

import pytest

from tests.fakes.lvm_lab import FakeLvm


@pytest.fixture
def lvm(fake_lvm, tmp_path) -> FakeLvm:
    data = tmp_path / "vz"
    (data / "private" / "101").mkdir(parents=True)
    (data / "private" / "101" / "file").write_text("hello\n")
    fake_lvm.volume("vg0/vz", data, 2 << 30)
    return fake_lvm


def report(lvm: FakeLvm, *args: str) -> list[dict]:
    done = lvm.run("lvs", "--reportformat", "json", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["report"][0]["lv"]


def test_cow_snapshot_created_listed_and_removed(lvm):
    done = lvm.run("lvcreate", "-s", "-L", "100M", "-n", "snap", "vg0/vz")
    assert (done.returncode, done.stdout) == (0, '  Logical volume "snap" created.\n')
    rows = report(lvm, "-o", "lv_name,lv_attr,origin,data_percent,snap_percent", "vg0")
    assert rows == [
        {"lv_name": "snap", "lv_attr": "swi-a-s---", "origin": "vz", "data_percent": "0.00",
         "snap_percent": "0.00"},
        {"lv_name": "vz", "lv_attr": "owi-aos---", "origin": "", "data_percent": "",
         "snap_percent": ""}]
    done = lvm.run("lvremove", "-f", "vg0/snap")
    assert (done.returncode, done.stdout) == (0, '  Logical volume "snap" successfully removed.\n')


def test_size_is_rounded_up_to_whole_extents(lvm):
    done = lvm.run("lvcreate", "--snapshot", "--size", "5m", "--name", "snap", "vg0/vz")
    assert done.stdout.splitlines() == ["  Rounding up size to full physical extent 8.00 MiB",
                                        '  Logical volume "snap" created.']
    assert report(lvm, "--units", "b", "--nosuffix", "-o", "lv_size", "vg0/snap") == [
        {"lv_size": str(8 << 20)}]


def test_snapshot_fills_and_overflows_as_the_origin_changes(lvm):
    lvm.run("lvcreate", "-s", "-L", "8M", "-n", "snap", "vg0/vz")
    assert lvm.write_origin("vg0/vz", 2 << 20) == []
    assert report(lvm, "-o", "data_percent", "vg0/snap") == [{"data_percent": "25.00"}]
    assert lvm.write_origin("vg0/vz", 7 << 20) == ["snap"]
    assert report(lvm, "-o", "lv_attr,data_percent", "vg0/snap") == [
        {"lv_attr": "swi-I-s---", "data_percent": "100.00"}]
    assert (lvm.state / "dmeventd.log").read_text().splitlines() == [
        f"WARNING: Snapshot vg0-snap is now {p}% full." for p in (80, 85, 90, 95)] + [
        "WARNING: Snapshot vg0-snap changed state to: Invalid and should be removed."]


@pytest.mark.parametrize("argv, code, stderr", [
    (["-s", "-n", "snap", "vg0/vz"], 5, "  Please specify either size or extents with snapshots.\n"),
    (["-s", "-L", "100G", "-n", "snap", "vg0/vz"], 5,
     '  Volume group "vg0" has insufficient free space (15872 extents): 25600 required.\n'),
    (["-s", "-L", "1G", "-n", "vz", "vg0/vz"], 5,
     '  Logical Volume "vz" already exists in volume group "vg0"\n'),
    (["-s", "-L", "1G", "-n", "snap", "vg0/nolv"], 5,
     "  Snapshot origin LV nolv not found in Volume group vg0.\n"),
    (["-s", "-L", "1G", "-n", "snap", "novg/vz"], 5,
     '  Volume group "novg" not found\n  Cannot process volume group novg\n'),
    (["--bogus", "vg0/vz"], 3,
     "lvcreate: unrecognized option '--bogus'\n  Error during parsing of command line.\n"),
    (["-s", "vg0/vz", "-L"], 3,
     "lvcreate: option '-L' requires an argument\n  Error during parsing of command line.\n"),
    (["-s", "-L", "1X", "vg0/vz"], 3,
     "  Invalid argument for --size: 1X\n  Error during parsing of command line.\n"),
])
def test_lvcreate_rejects_what_lvm_rejects(lvm, argv, code, stderr):
    done = lvm.run("lvcreate", *argv)
    assert (done.returncode, done.stderr) == (code, stderr)
    assert [lv.name for lv in lvm.lvs("vg0")] == ["vz"]


def test_no_device_mapper_like_this_lab(lvm, monkeypatch):
    monkeypatch.setenv("FAKE_LVM_NO_DM", "1")
    done = lvm.run("lvcreate", "-s", "-L", "1G", "-n", "snap", "vg0/vz")
    assert (done.returncode, done.stderr) == (
        5, "  Can't create snapshot without using device-mapper kernel driver.\n")


def test_thin_snapshot_needs_no_size_and_skips_activation(lvm, tmp_path):
    lvm.volume("vg0/pool", tmp_path, 4 << 30, kind="pool")
    lvm.volume("vg0/vm-100-disk-0", tmp_path / "vz", 1 << 30, kind="thin", pool="pool")
    assert lvm.run("lvcreate", "-s", "-n", "thinsnap", "vg0/vm-100-disk-0").returncode == 0
    assert lvm.run("lvcreate", "-s", "-kn", "-n", "active", "vg0/vm-100-disk-0").returncode == 0
    rows = report(lvm, "-o", "lv_name,lv_attr,pool_lv,data_percent", "vg0")
    by_name = {r["lv_name"]: r for r in rows}
    assert by_name["thinsnap"] == {"lv_name": "thinsnap", "lv_attr": "Vwi---tz-k",
                                   "pool_lv": "pool", "data_percent": ""}
    assert by_name["active"]["lv_attr"] == "Vwi-a-tz--"


def test_lvremove_asks_without_force_and_refuses_a_mounted_volume(lvm, tmp_path):
    lvm.run("lvcreate", "-s", "-L", "8M", "-n", "snap", "vg0/vz")
    done = lvm.run("lvremove", "vg0/snap", stdin="n\n")
    assert done.stdout == "Do you really want to remove active logical volume vg0/snap? [y/n]: "
    assert (done.returncode, done.stderr) == (5, '  Logical volume "snap" not removed.\n')
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    assert lvm.run("mount", "-o", "ro", "/dev/vg0/snap", str(mnt)).returncode == 0
    assert (mnt / "private" / "101" / "file").read_text() == "hello\n"
    done = lvm.run("lvremove", "-f", "vg0/snap")
    assert (done.returncode, done.stderr) == (
        5, "  Logical volume vg0/snap contains a filesystem in use.\n")
    assert lvm.run("umount", str(mnt)).returncode == 0
    assert mnt.is_dir() and not mnt.is_symlink()
    assert lvm.run("lvremove", "-y", "vg0/snap").returncode == 0
    done = lvm.run("lvremove", "-f", "vg0/snap")
    assert (done.returncode, done.stderr) == (5, '  Failed to find logical volume "vg0/snap"\n')


def test_snapshot_is_frozen_while_the_origin_changes(lvm, tmp_path):
    lvm.run("lvcreate", "-s", "-L", "8M", "-n", "snap", "vg0/vz")
    (tmp_path / "vz" / "private" / "101" / "file").write_text("changed\n")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    lvm.run("mount", "/dev/mapper/vg0-snap", str(mnt))
    assert (mnt / "private" / "101" / "file").read_text() == "hello\n"


@pytest.mark.parametrize("version, period, log_block, json_std", [
    ("2.03.11", "", False, False), ("2.03.16", ".", False, False),
    ("2.03.31", ".", True, True)])
def test_version_differences(lvm, monkeypatch, version, period, log_block, json_std):
    monkeypatch.setenv("FAKE_LVM_VERSION", version)
    lvm.run("lvcreate", "-s", "-L", "8M", "-n", "snap", "vg0/vz")
    doc = json.loads(lvm.run("lvs", "--reportformat", "json", "vg0").stdout)
    assert ("log" in doc) is log_block
    assert (lvm.run("lvs", "--reportformat", "json_std", "vg0").returncode == 0) is json_std
    assert lvm.run("lvremove", "-f", "vg0/snap").stdout == (
        f'  Logical volume "snap" successfully removed{period}\n')


def test_pve_style_report(lvm):
    """pve-storage LVMPlugin.pm::lvm_list_volumes reads this shape."""
    lvm.run("lvcreate", "-s", "-L", "8M", "-n", "snap", "--addtag", "t1", "vg0/vz")
    done = lvm.run("lvs", "--separator", ":", "--noheadings", "--units", "b", "--unbuffered",
                   "--nosuffix", "--config", 'report/time_format="%s"', "--options",
                   "vg_name,lv_name,lv_size,lv_attr,pool_lv,data_percent,lv_tags", "vg0")
    assert done.stdout.splitlines() == [f"  vg0:snap:{8 << 20}:swi-a-s---::0.00:t1",
                                        f"  vg0:vz:{2 << 30}:owi-aos---:::"]


def test_stray_lines_inside_the_json_report(lvm, monkeypatch):
    monkeypatch.setenv("FAKE_LVM_STRAY_LINE", "  Reloading config files")
    text = lvm.run("lvs", "--reportformat", "json", "vg0").stdout
    assert "  Reloading config files\n" in text
    with pytest.raises(ValueError):
        json.loads(text)


def test_mount_refuses_what_does_not_exist(lvm, tmp_path):
    done = lvm.run("mount", "/dev/vg0/nolv", str(tmp_path))
    assert (done.returncode, done.stderr) == (
        32, f"mount: {tmp_path}: special device /dev/vg0/nolv does not exist.\n")
    done = lvm.run("umount", str(tmp_path))
    assert (done.returncode, done.stderr) == (32, f"umount: {tmp_path}: not mounted.\n")


def test_vgs_reports_free_space_and_extents_as_lvm2_2_03_16(lvm):
    done = lvm.run("vgs", "--reportformat", "json", "--units", "b", "--nosuffix", "-o",
                   "vg_name,vg_size,vg_free,vg_extent_size,vg_extent_count,vg_free_count", "vg0")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[4] == (
        '                  {"vg_name":"vg0", "vg_size":"68719476736", "vg_free":"66571993088", '
        '"vg_extent_size":"4194304", "vg_extent_count":"16384", "vg_free_count":"15872"}')
    lvm.run("lvcreate", "-s", "-L", "1G", "-n", "snap", "vg0/vz")
    [row] = json.loads(lvm.run("vgs", "--reportformat", "json", "-o", "vg_free_count",
                               "vg0").stdout)["report"][0]["vg"]
    assert row == {"vg_free_count": str(15872 - 256)}
    assert lvm.run("vgs").stdout.splitlines()[0].split() == [
        "VG", "#PV", "#LV", "#SN", "Attr", "VSize", "VFree"]
    done = lvm.run("vgs", "novg")
    assert (done.returncode, done.stderr) == (
        5, '  Volume group "novg" not found\n  Cannot process volume group novg\n')
    done = lvm.run("vgs", "-o", "vg_name,bogus", "vg0")
    assert (done.returncode, done.stderr) == (5, "  Unrecognised field: bogus\n")
    done = lvm.run("vgs", "--bogus")
    assert (done.returncode, done.stderr) == (
        3, "vgs: unrecognized option '--bogus'\n  Error during parsing of command line.\n")


def test_thin_pool_fill_shows_in_lvs(fake_lvm, tmp_path):
    fake_lvm.thin_pool("vg0/data", 10 << 30)
    fake_lvm.volume("vg0/vz", tmp_path, 4 << 30, kind="thin", pool="data")
    fake_lvm.fill_pool("vg0/data", 85.5, 12.25)
    rows = report(fake_lvm, "-o", "lv_name,lv_attr,pool_lv,data_percent,metadata_percent", "vg0")
    assert rows == [
        {"lv_name": "data", "lv_attr": "twi-a-tz--", "pool_lv": "", "data_percent": "85.50",
         "metadata_percent": "12.25"},
        {"lv_name": "vz", "lv_attr": "Vwi-aotz--", "pool_lv": "data", "data_percent": "0.00",
         "metadata_percent": ""}]
