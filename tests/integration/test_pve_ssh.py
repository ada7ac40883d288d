"""Proxmox VE nodes over SSH: the agent on each node runs the PVE tools (the emulators,
found through the node's pve_bin_dir) and streams dumps and restores to the controller."""

from __future__ import annotations

import re

import pytest

from tests.fakes.pve.cluster import FakeCluster
from tests.lab.site import controller_toml
from tests.unit.cli.conftest import Lab


@pytest.fixture
def pve_site(ssh_site, tmp_path, capsys):
    site = ssh_site("pve1", "pve2")
    pve = FakeCluster(site.root / "pve")
    pve.add_ct("pve1", 101, "web1", files=20, seed=1)
    pve.add_vm("pve1", 200, "app", mib=4, seed=2)
    pve.set_status(101, "running")
    nodes = ""
    for name in ("pve1", "pve2"):
        toml = site.node_toml(name, platform="proxmox", pve_bin_dir=str(pve.wrappers(name)))
        nodes += re.sub(r'^root = .*$', f'root = "{pve.etc_pve(name)}"', toml, flags=re.M)
    config = tmp_path / "vzbackup.toml"
    config.write_text(controller_toml(tmp_path) + nodes)
    lab = Lab(tmp_path, config, capsys)
    lab.pve = pve
    return lab


def test_backup_on_one_ssh_node_and_restore_on_another(pve_site):
    lab, pve = pve_site, pve_site.pve
    lab.ok("repo", "init")
    result = lab.ok("backup", "--all", "--json").json()
    assert [(i["guest"], i["node"], i["status"]) for i in result["items"]] == [
        ("ct101", "pve1", "ok"), ("vm200", "pve1", "ok")]
    lab.ok("restore", "ct101", "--to", "pve2", "--as", "111")
    assert pve.conf("pve2", "ct", 111)["hostname"] == "web1"
    assert (pve.volume("pve2", "local-lvm:vm-111-disk-0") / "home/demo/f000.txt").read_bytes() == \
        (pve.volume("pve1", "local-lvm:vm-101-disk-0") / "home/demo/f000.txt").read_bytes()
    r = lab.run("restore", "vm200", "--to", "pve2", "--json")  # VMID 200 is held by pve1
    assert r.code == 8 and "lives on node pve1" in r.json()["items"][0]["message"]
    lab.ok("restore", "vm200", "--to", "pve2", "--as", "211")
    assert pve.volume("pve2", "local-lvm:vm-211-disk-0").read_bytes() == \
        pve.volume("pve1", "local-lvm:vm-200-disk-0").read_bytes()


def test_a_damaged_copy_streamed_to_a_node_leaves_no_guest_there(pve_site):
    from tests.unit.cli.test_exit_codes import flip_byte_in_a_pack

    lab, pve = pve_site, pve_site.pve
    lab.ok("repo", "init")
    lab.ok("backup", "vm200")
    flip_byte_in_a_pack(lab.root / "repo")
    r = lab.run("restore", "vm200", "--to", "pve2", "--as", "212")
    assert r.code == 7, r
    assert not pve.conf_path("pve2", "vm", 212).exists()
    assert not pve.volume("pve2", "local-lvm:vm-212-disk-0").exists()


def test_checkpoint_break_rollback_identical_over_ssh_then_expiry(pve_site):
    from datetime import datetime, timedelta, timezone

    from freezegun import freeze_time

    from tests.treediff import tree_digest

    lab, pve = pve_site, pve_site.pve
    volume = pve.volume("pve1", "local-lvm:vm-101-disk-0")
    before = tree_digest(volume, mtimes=True)
    lab.ok("checkpoint", "ct101", "vm200", "--label", "pre-upgrade", "--expire", "1h")
    assert "[pre-upgrade]" in pve.conf_path("pve1", "ct", 101).read_text()
    (volume / "home/demo/f000.txt").write_bytes(b"broken by the upgrade")
    (volume / "home/demo/f001.txt").unlink()
    (volume / "home/demo/new.txt").write_text("junk\n")
    lab.ok("rollback", "ct101", "pre-upgrade")
    assert tree_digest(volume, mtimes=True) == before
    r = lab.run("rollback", "ct101", "nope")
    assert r.code == 23 and "no checkpoint nope of ct101" in r.err
    with freeze_time(datetime.now(timezone.utc) + timedelta(hours=2)):
        lab.ok("checkpoint", "drop", "--expired")
    assert lab.ok("checkpoints", "--json").json() == []
    for kind, vmid in (("ct", 101), ("vm", 200)):
        assert "[pre-upgrade]" not in pve.conf_path("pve1", kind, vmid).read_text()


def test_clone_to_an_ssh_node_and_start_it_off_production(pve_site):
    from vzbackup.domain.clone import macs

    lab, pve = pve_site, pve_site.pve
    lab.ok("repo", "init")
    lab.ok("backup", "ct101")
    r = lab.run("clone", "ct101", "--to", "pve2", "--start")  # would stay on vmbr0
    assert r.code == 18 and "net0 stays on bridge vmbr0" in r.err
    assert pve.node_of(201) is None
    done = lab.ok("clone", "ct101", "--to", "pve2", "--network", "vmbr0=vmbr9", "--start",
                  "--json").json()["details"]
    assert (done["target"], done["node"], done["status"]) == ("ct201", "pve2", "running")
    conf, source = pve.conf("pve2", "ct", 201), pve.conf("pve1", "ct", 101)
    assert "bridge=vmbr9" in conf["net0"] and macs(conf).isdisjoint(macs(source))
    assert pve.status(201) == "running" and pve.status(101) == "running"
    assert (pve.volume("pve2", "local-lvm:vm-201-disk-0") / "home/demo/f000.txt").read_bytes() == \
        (pve.volume("pve1", "local-lvm:vm-101-disk-0") / "home/demo/f000.txt").read_bytes()


def test_a_branch_on_an_ssh_node_is_sanitized_and_destroyed_by_its_agent(pve_site):
    lab, pve = pve_site, pve_site.pve
    lab.ok("repo", "init")
    lab.ok("backup", "--all")
    scrub = lab.root / "scrub.sh"
    scrub.write_text('#!/bin/sh\n[ -n "$1" ] || exit 0\necho "$VZBACKUP_GUEST" > "$1/etc/scrubbed"\n')
    scrub.chmod(0o755)
    made = lab.ok("branch", "create", "expo", "--guests", "ct101,vm200", "--to", "pve2",
                  "--sanitize", str(scrub), "--json").json()
    assert [m["clone"] for m in made["members"]] == ["ct201", "vm202"]
    assert (pve.volume("pve2", "local-lvm:vm-201-disk-0") / "etc/scrubbed").read_text() == "ct201\n"
    assert "lock" not in pve.conf("pve2", "ct", 201) and "bridge=" not in pve.conf("pve2", "vm", 202)["net0"]
    lab.ok("branch", "destroy", "expo")
    assert not pve.conf_path("pve2", "ct", 201).exists() and not pve.conf_path("pve2", "vm", 202).exists()
