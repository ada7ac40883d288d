"""Checkpoints on an OpenVZ node whose private areas are on a thick LVM volume (emulated):
persistent snapshots that a sweep leaves alone, a rollback that is identical, a guard that
refuses with the numbers, expired checkpoints removed."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from freezegun import freeze_time

from demo.treedigest import describe, differences
from tests.fakes import vz_tools
from vzbackup.errors import CheckpointFailed, NoSpace

CT = "ct1101"
LV = "vzckpt-node3-ct1101-pre-upgrade"


def test_checkpoint_break_rollback_identical_then_drop(ovz):
    lab, private = ovz.lab, ovz.vz / "private" / "1101"
    before = describe(private)
    lab.ok("checkpoint", CT, "--label", "pre-upgrade")
    [lv] = [lv for lv in ovz.lvm.lvs("vg0") if lv.name == LV]
    assert (lv.kind, lv.tags, lv.writable) == ("cow", ["vzbackup-checkpoint"], False)
    assert lv.size == 820 << 20  # 20% of 4 GiB, in whole 4 MiB extents
    assert lab.run("snapshots", "sweep").code == 0 and LV in ovz.snapshot_lvs()

    (private / "etc" / "hostname").write_text("broken\n")
    (private / "var/www" / "page3.html").unlink()
    (private / "var/www" / "new.html").write_text("junk\n")
    ovz.lvm.write_origin("vg0/vz", 1 << 20)
    lab.ok("rollback", CT, "pre-upgrade")
    assert differences(before, describe(private)) == []
    assert vz_tools.status(ovz.vz_state, 1101) == "running"  # stopped for the swap, started
    assert list(ovz.mnt.iterdir()) == [] and not list(private.parent.glob(".rollback-*"))
    lab.ok("rollback", CT, "pre-upgrade")  # the checkpoint stays usable
    assert differences(before, describe(private)) == []

    lab.ok("checkpoint", "drop", "pre-upgrade")
    assert ovz.snapshot_lvs() == [] and lab.ok("checkpoints", "--json").json() == []


def test_a_group_that_would_overflow_the_volume_group_is_refused_with_the_numbers(ovz):
    lab = ovz.lab
    ovz.container(1102, "db-ovz")
    ovz.container(1103, "mail-ovz")
    text = lab.config.read_text()
    lab.config.write_text(text.replace('lvm_volume = "vg0/vz"',
                                       'lvm_volume = "vg0/vz"\nlvm_checkpoint_reserve = "58G"'))
    # the VG: 64 GiB, 4 GiB of it the volume: 60 GiB free; each snapshot 820 MiB
    lab.ok("checkpoint", CT, "--label", "one")  # 820 MiB + 58 GiB reserve: fits
    r = lab.run("checkpoint", CT, "ct1102", "ct1103", "--label", "grp")
    assert r.code == NoSpace.exit_code, r
    assert ("checkpoint grp of ct1101, ct1102, ct1103 on node node3 refused: 3 snapshot(s) of "
            "vg0/vz need 3 x 820.0 MiB = 2.4 GiB (615 extents of 4.0 MiB; lvm_checkpoint_size "
            "20% of 4.0 GiB), and volume group vg0 has 59.2 GiB free (15155 extents) of which "
            "58.0 GiB must stay free (lvm_checkpoint_reserve): short by 1.2 GiB") in r.err
    assert "lvm_checkpoint_size" in r.err and "checkpoint drop" in r.err
    assert ovz.snapshot_lvs() == [LV.replace("pre-upgrade", "one")]  # none of the group
    assert [c["label"] for c in lab.ok("checkpoints", "--json").json()] == ["one"]


def test_expired_checkpoints_are_removed_and_an_overflowed_one_is_refused(ovz):
    lab = ovz.lab
    lab.ok("checkpoint", CT, "--label", "short", "--expire", "1h")
    lab.ok("checkpoint", CT, "--label", "long", "--expire", "7d")
    with freeze_time(datetime.now(timezone.utc) + timedelta(hours=2)):
        lab.ok("checkpoint", "drop", "--expired")
    assert ovz.snapshot_lvs() == ["vzckpt-node3-ct1101-long"]
    assert [c["label"] for c in lab.ok("checkpoints", "--json").json()] == ["long"]

    assert ovz.lvm.write_origin("vg0/vz", 900 << 20) == ["vzckpt-node3-ct1101-long"]
    r = lab.run("rollback", CT, "long")
    assert r.code == CheckpointFailed.exit_code
    assert "vg0/vzckpt-node3-ct1101-long overflowed" in r.err and "checkpoint drop long" in r.err
    assert (ovz.vz / "private" / "1101" / "etc" / "hostname").read_text() == "web-ovz\n"


def test_a_rollback_that_would_overflow_a_snapshot_is_refused(ovz):
    lab = ovz.lab
    lab.ok("checkpoint", CT, "--label", "pre")
    ovz.lvm.write_origin("vg0/vz", (820 << 20) - 1000)  # almost full: no room for the copy
    r = lab.run("rollback", CT, "pre")
    assert r.code == NoSpace.exit_code
    assert "rollback of ct1101 to checkpoint pre on node node3 refused" in r.err
    assert re.search(r"the copy of the guest \(\d+\.\d KiB\) written to vg0/vz would overflow", r.err)
    assert "snapshot vg0/vzckpt-node3-ct1101-pre has 0 B of its 820.0 MiB copy-on-write" in r.err
    assert list(ovz.mnt.iterdir()) == []


def test_checkpoints_need_the_lvm_snapshotter(ovz):
    lab = ovz.lab
    text = lab.config.read_text()
    start = text.index("[nodes.node3]")
    lab.config.write_text(text[:start] + '[nodes.node3]\nplatform = "openvz"\nroot = "node3/vz"\n'
                          f'openvz_conf_dir = "{vz_tools.conf_dir(ovz.vz_state).resolve()}"\n')
    r = lab.run("checkpoint", CT, "--label", "x1")
    assert r.code == CheckpointFailed.exit_code and 'need snapshotter = "lvm"' in r.err


def test_a_container_that_cannot_be_stopped_is_left_as_it_was(ovz):
    lab, private = ovz.lab, ovz.vz / "private" / "1101"
    lab.ok("checkpoint", CT, "--label", "pre")
    (private / "etc" / "hostname").write_text("changed\n")
    broken = describe(private)
    (ovz.vz_state / "run" / "1101.lck").write_text("")  # another vzctl holds it
    r = lab.run("rollback", CT, "pre")
    assert r.code == 22 and "vzctl stop failed (exit 9): Container already locked" in r.err
    assert differences(broken, describe(private)) == []  # running, untouched
    assert vz_tools.status(ovz.vz_state, 1101) == "running"
    assert not list(private.parent.glob(".rollback-*")) and list(ovz.mnt.iterdir()) == []
    (ovz.vz_state / "run" / "1101.lck").unlink()
    lab.ok("rollback", CT, "pre")
    assert (private / "etc" / "hostname").read_text() == "web-ovz\n"
