"""Checkpoints of directory guests on an LVM-thin volume (the LVM emulator): checkpoint,
break, roll back: identical; the thin pool guard refuses with the numbers; expired
checkpoints are removed; a sweep never takes a checkpoint for a leftover."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from freezegun import freeze_time

from demo.guestdata import make_container, make_vm
from demo.treedigest import describe, differences
from tests.fakes.lvm_lab import fake_lvm  # noqa: F401
from tests.unit.cli.conftest import Lab
from vzbackup.errors import NoSpace

NODE = """
[nodes.lv1]
root = "{root}"
snapshotter = "lvm"
lvm_volume = "vg1/guests"
lvm_snapshot_size = ""
lvm_mount_dir = "{mnt}"
"""


@pytest.fixture
def tlab(lab, fake_lvm):  # noqa: F811
    root, mnt = (lab.root / "lv1").resolve(), (lab.root / "mnt").resolve()
    root.mkdir()
    make_container(root, 301, "web3", files=60, mib=1, seed=3)
    make_vm(root, 302, "app3", size_mib=4, data_mib=1, seed=4)
    fake_lvm.thin_pool("vg1/pool", 100 << 30)
    fake_lvm.volume("vg1/guests", root, 20 << 30, kind="thin", pool="pool")
    with open(lab.config, "a") as f:
        f.write(NODE.format(root=root, mnt=mnt))
    lab.lvm, lab.guests, lab.mnt = fake_lvm, root, mnt
    return lab


def checkpoint_lvs(lab: Lab) -> list[str]:
    return [lv.name for lv in lab.lvm.lvs("vg1") if lv.name.startswith("vzckpt-")]


def test_group_checkpoint_break_rollback_identical(tlab):
    lab, root = tlab, tlab.guests
    before = {g: describe(root / g) for g in ("ct301", "vm302")}
    lab.ok("checkpoint", "ct301", "vm302", "--label", "pre-upgrade", "--expire", "7d")
    assert checkpoint_lvs(lab) == ["vzckpt-lv1-ct301-pre-upgrade", "vzckpt-lv1-vm302-pre-upgrade"]
    snap = next(lv for lv in lab.lvm.lvs("vg1") if lv.name == "vzckpt-lv1-ct301-pre-upgrade")
    assert (snap.kind, snap.pool, snap.skip_activation) == ("thin", "pool", False)
    assert lab.run("snapshots", "sweep").code == 0 and len(checkpoint_lvs(lab)) == 2

    (root / "ct301" / "rootfs" / "etc" / "app" / "settings.conf").write_text("broken\n")
    (root / "ct301" / "guest.conf").write_text("hostname: broken\n")
    with open(root / "vm302" / "disk-0.raw", "r+b") as f:
        f.write(b"\xff" * 4096)
    lab.ok("rollback", "ct301", "pre-upgrade")
    lab.ok("rollback", "vm302", "pre-upgrade")
    for g, digest in before.items():
        assert differences(digest, describe(root / g)) == [], g
    assert list(lab.mnt.iterdir()) == [] and not list(root.glob(".rollback-*"))

    lab.ok("checkpoint", "drop", "pre-upgrade", "ct301")
    assert checkpoint_lvs(lab) == ["vzckpt-lv1-vm302-pre-upgrade"]
    with freeze_time(datetime.now(timezone.utc) + timedelta(days=8)):
        lab.ok("checkpoint", "drop", "--expired")
    assert checkpoint_lvs(lab) == [] and lab.ok("checkpoints", "--json").json() == []


def test_a_full_thin_pool_refuses_with_the_numbers(tlab):
    lab = tlab
    lab.lvm.fill_pool("vg1/pool", 85.5, 12.0)
    r = lab.run("checkpoint", "ct301", "vm302", "--label", "pre")
    assert r.code == NoSpace.exit_code
    assert ("checkpoint pre of ct301, vm302 on node lv1 refused: thin pool vg1/pool of "
            "vg1/guests is 85.50% full (data) and 12.00% (metadata), at or above the 80% limit "
            "(lvm_thin_pool_limit): 14.5 GiB of 100.0 GiB free") in r.err
    assert checkpoint_lvs(lab) == [] and lab.ok("checkpoints", "--json").json() == []
    lab.lvm.fill_pool("vg1/pool", 40.0, 81.0)  # metadata counts too
    r = lab.run("checkpoint", "ct301", "--label", "pre")
    assert r.code == NoSpace.exit_code and "81.00% (metadata)" in r.err
    lab.lvm.fill_pool("vg1/pool", 40.0, 10.0)
    lab.ok("checkpoint", "ct301", "--label", "pre")
