"""Checkpoints of a directory node over SSH whose guests are on a thick LVM volume: the
agent on the node runs the LVM emulator (through a wrapper that gives it the emulator's
state, as sshd passes no environment on), so take, guard, rollback and drop cross SSH."""

from __future__ import annotations

import re

import pytest

from demo.guestdata import make_container
from tests.fakes.lvm_lab import BIN, fake_lvm  # noqa: F401
from tests.lab.site import AGENT, controller_toml
from tests.treediff import tree_digest
from tests.unit.cli.conftest import Lab
from vzbackup.errors import NoSpace


@pytest.fixture
def lvm_site(ssh_site, fake_lvm, tmp_path, capsys):  # noqa: F811
    site = ssh_site("node3")
    guests = site.guests("node3")
    make_container(guests, 101, "web1", files=40, mib=1, seed=1)
    make_container(guests, 102, "db1", files=40, mib=1, seed=2)
    fake_lvm.vg("vg0", 8 << 30)
    fake_lvm.volume("vg0/guests", guests, 4 << 30)
    agent = tmp_path / "agent"
    agent.write_text(f"#!/bin/sh\nFAKE_LVM_ROOT='{fake_lvm.state}' PATH='{BIN}':\"$PATH\" "
                     f"exec '{AGENT}' \"$@\"\n")
    agent.chmod(0o755)
    node = site.node_toml("node3", snapshotter="lvm", lvm_volume="vg0/guests",
                          lvm_mountpoint=str(guests), lvm_mount_dir=str(tmp_path / "mnt"))
    node = re.sub(r'^vzbackup = .*$', f'vzbackup = "{agent}"', node, flags=re.M)
    config = tmp_path / "vzbackup.toml"
    config.write_text(controller_toml(tmp_path) + node)
    lab = Lab(tmp_path, config, capsys)
    lab.site, lab.lvm, lab.guests = site, fake_lvm, guests
    return lab


def test_checkpoint_break_rollback_identical_over_ssh(lvm_site):
    lab, guests = lvm_site, lvm_site.guests
    before = tree_digest(guests / "ct101" / "rootfs", mtimes=True)
    lab.ok("checkpoint", "ct101", "--label", "pre-upgrade")
    assert [lv.name for lv in lab.lvm.lvs("vg0")] == ["guests", "vzckpt-node3-ct101-pre-upgrade"]
    victim = sorted(p for p in (guests / "ct101" / "rootfs").rglob("*") if p.is_file())[0]
    victim.write_text("broken\n")
    (guests / "ct101" / "rootfs" / "junk").write_text("junk\n")
    lab.ok("rollback", "ct101", "pre-upgrade")
    assert tree_digest(guests / "ct101" / "rootfs", mtimes=True) == before
    lab.ok("checkpoint", "drop", "pre-upgrade")
    assert [lv.name for lv in lab.lvm.lvs("vg0")] == ["guests"]


def test_the_guard_refuses_a_group_over_ssh_with_the_numbers(lvm_site):
    lab = lvm_site
    # VG 8 GiB, volume 4 GiB: 4 GiB free; two snapshots of 820 MiB plus a 3 GiB reserve: no
    lab.config.write_text(lab.config.read_text() + 'lvm_checkpoint_reserve = "3G"\n')
    r = lab.run("checkpoint", "ct101", "ct102", "--label", "grp")
    assert r.code == NoSpace.exit_code, r
    assert ("2 snapshot(s) of vg0/guests need 2 x 820.0 MiB = 1.6 GiB (410 extents of 4.0 MiB; "
            "lvm_checkpoint_size 20% of 4.0 GiB), and volume group vg0 has 4.0 GiB free "
            "(1024 extents) of which 3.0 GiB must stay free") in r.err
    assert [lv.name for lv in lab.lvm.lvs("vg0")] == ["guests"]
    lab.ok("checkpoint", "ct101", "--label", "one")  # one fits: 820 MiB + 3 GiB <= 4 GiB
