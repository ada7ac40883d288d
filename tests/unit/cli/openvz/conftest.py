"""The command-line lab plus node3, an OpenVZ node whose private areas are on an LVM
volume (emulated: tests/fakes/bin/vzlist, vzctl, lvcreate, lvs, lvremove, mount, umount)."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fakes import vz_tools
from tests.fakes.lvm_lab import BIN, FakeLvm, fake_lvm  # noqa: F401
from tests.unit.cli.conftest import Lab

NODE3 = """
[nodes.node3]
platform = "openvz"
snapshotter = "lvm"
root = "node3/vz"
lvm_volume = "vg0/vz"
lvm_snapshot_size = "{size}"
lvm_mount_dir = "{mnt}"
openvz_conf_dir = "{conf}"
"""


@dataclass
class OvzLab:
    lab: Lab
    lvm: FakeLvm
    vz: Path  # the node's /var/lib/vz (the LV's mount point)
    vz_state: Path  # the OpenVZ emulator's root (/etc/vz/conf, run state)
    mnt: Path

    def container(self, ctid: int, hostname: str, files: int = 30, state: str = "running") -> Path:
        private = self.vz / "private" / str(ctid)
        rng = random.Random(ctid)
        for d in ("etc", "var/www", "root"):
            (private / d).mkdir(parents=True, exist_ok=True)
        (private / "etc" / "hostname").write_text(hostname + "\n")
        for i in range(files):
            (private / "var/www" / f"page{i}.html").write_bytes(rng.randbytes(2000))
        os.symlink("/etc/hostname", private / "root" / "link")
        vz_tools.make_ct(self.vz_state, ctid, hostname, private, state)
        return private

    def snapshot_lvs(self) -> list[str]:
        return [lv.name for lv in self.lvm.lvs("vg0") if lv.name != "vz"]


@pytest.fixture
def ovz(lab, fake_lvm, monkeypatch) -> OvzLab:  # noqa: F811
    vz, state, mnt = lab.root / "node3" / "vz", lab.root / "node3", lab.root / "mnt"
    (vz / "private").mkdir(parents=True)
    monkeypatch.setenv(vz_tools.ROOT_ENV, str(state))
    fake_lvm.volume("vg0/vz", vz.resolve(), 4 << 30)
    with open(lab.config, "a") as f:
        f.write(NODE3.format(size="64M", mnt=mnt.resolve(),
                             conf=vz_tools.conf_dir(state).resolve()))
    o = OvzLab(lab, fake_lvm, vz, state, mnt)
    o.container(101 + 1000, "web-ovz")
    return o
