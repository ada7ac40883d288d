"""vzbackup on Proxmox VE nodes (the emulators), through the command line: pve1 is this host
($PVE_FAKE_ROOT), pve2 another node of the same cluster (its tools run through wrappers)."""

from __future__ import annotations

import subprocess

import pytest

from tests.fakes.pve.cluster import BIN
from tests.support import is_root, require
from tests.treediff import tree_digest
from tests.unit.cli.conftest import Lab
from tests.unit.cli.test_exit_codes import flip_byte_in_a_pack


@pytest.fixture
def plab(pve, tmp_path, capsys) -> Lab:
    config = tmp_path / "vzbackup.toml"
    config.write_text(f"""
[state]
dir = "state"
[backup]
repository = "main"
[nodes.pve1]
platform = "proxmox"
root = "{pve.etc_pve('pve1')}"
pve_bin_dir = "{BIN}"
[nodes.pve2]
platform = "proxmox"
root = "{pve.etc_pve('pve2')}"
pve_bin_dir = "{pve.wrappers('pve2')}"
[repositories.main]
url = "file://repo"
""")
    lab = Lab(tmp_path, config, capsys)
    lab.pve = pve
    lab.ok("repo", "init")
    return lab


def add_node_option(lab: Lab, node: str, line: str) -> None:
    text = lab.config.read_text()
    lab.config.write_text(text.replace(f"[nodes.{node}]\n", f"[nodes.{node}]\n{line}\n"))


def rootfs(pve, node: str, vmid: int) -> dict:
    digest = tree_digest(pve.volume(node, f"local-lvm:vm-{vmid}-disk-0"), mtimes=True)
    # pct restore deletes ./etc/vzdump/pct.conf after extracting: etc/'s mtime changes (7.1)
    return {k: v for k, v in digest.items() if k not in (".", "etc", "tmp/scratch")}


def test_backup_and_restore_a_container_and_a_vm_onto_another_node(plab):
    lab, pve = plab, plab.pve
    result = lab.ok("backup", "--all", "--json").json()
    assert [(i["guest"], i["node"], i["status"]) for i in result["items"]] == [
        ("ct101", "pve1", "ok"), ("vm200", "pve1", "ok"), ("ct102", "pve2", "ok")]
    point = lab.ok("points", "ct101", "--json").json()[0]
    assert point["source_node"] == "pve1"
    lab.ok("restore", "ct101", "--to", "pve2", "--as", "111")
    restored = rootfs(pve, "pve2", 111)
    assert restored == {k: v for k, v in rootfs(pve, "pve1", 101).items() if k != "tmp/scratch"}
    conf = pve.conf("pve2", "ct", 111)
    assert conf["hostname"] == "web1" and conf["rootfs"] == "local-lvm:vm-111-disk-0,size=8G"
    lab.ok("restore", "vm200", "--to", "pve2", "--as", "211")
    assert pve.volume("pve2", "local-lvm:vm-211-disk-0").read_bytes() == \
        pve.volume("pve1", "local-lvm:vm-200-disk-0").read_bytes()
    assert pve.conf("pve2", "vm", 211)["name"] == "app"


def test_restore_refused_while_another_node_holds_the_vmid_then_the_dead_node_path(plab):
    lab, pve = plab, plab.pve
    lab.ok("backup", "ct102")
    r = lab.run("restore", "ct102", "--to", "pve1", "--json")
    assert r.code == 8
    item = r.json()["items"][0]
    assert "ct102 on node pve1" in item["message"] and "lives on node pve2" in item["message"]
    assert "dead-node procedure" in item["hint"]
    pve.set_offline("pve2")
    lab.ok("restore", "ct102", "--to", "pve1", "--force")
    assert not pve.conf_path("pve2", "ct", 102).exists()
    assert pve.conf("pve1", "ct", 102)["hostname"] == "db"
    assert rootfs(pve, "pve1", 102) == rootfs(pve, "pve2", 102)


def test_a_failing_vzdump_is_exit_15_naming_guest_node_and_vzdumps_error(plab):
    lab, pve = plab, plab.pve
    conf = pve.conf_path("pve1", "ct", 101)
    conf.write_text(conf.read_text() + "lock: backup\n")
    r = lab.run("backup", "ct101", "--json")
    assert r.code == 15
    item = r.json()["items"][0]
    assert "ct101 on node pve1: vzdump failed (exit 255)" in item["message"]
    assert "vzdump failed (exit 255): CT is locked (backup)" in item["message"]
    assert "pct unlock 101" in item["hint"]
    assert lab.ok("points", "--json").json() == []


def test_a_damaged_copy_leaves_no_half_restored_guest(plab):
    lab, pve = plab, plab.pve
    lab.ok("backup", "vm200")
    flip_byte_in_a_pack(lab.root / "repo")
    r = lab.run("restore", "vm200", "--to", "pve1", "--as", "220")
    assert r.code == 7, r
    assert not pve.conf_path("pve1", "vm", 220).exists()  # qmrestore leaves it: removed
    assert not pve.volume("pve1", "local-lvm:vm-220-disk-0").exists()


def hook_script(lab: Lab, fail_phase: str) -> str:
    record = lab.root / "hook.log"
    script = lab.root / "hook.sh"
    script.write_text(f"""#!/bin/sh
echo "$*" >> {record}
[ "$1" = "{fail_phase}" ] && exit 2
exit 0
""")
    script.chmod(0o755)
    return str(script)


def test_hook_phases_of_one_guest(plab):
    lab = plab
    add_node_option(lab, "pve1", f'hook_script = "{hook_script(lab, "none")}"')
    lab.ok("backup", "ct101")
    assert (lab.root / "hook.log").read_text().splitlines() == [
        "job-init", "job-start", "backup-start snapshot 101", "pre-stop snapshot 101",
        "pre-restart snapshot 101", "post-restart snapshot 101", "backup-end snapshot 101",
        "log-end snapshot 101", "job-end"]


def test_a_failing_backup_end_hook_fails_the_guest_and_keeps_no_point(plab):
    lab = plab
    add_node_option(lab, "pve1", f'hook_script = "{hook_script(lab, "backup-end")}"')
    r = lab.run("backup", "ct101")
    assert r.code == 15
    assert "backup-end snapshot 101' failed: exit code 2" in r.err
    assert lab.ok("points", "--json").json() == []


def test_a_failing_log_end_hook_is_a_warning(plab):
    lab = plab
    add_node_option(lab, "pve1", f'hook_script = "{hook_script(lab, "log-end")}"')
    r = lab.run("backup", "ct101", "--json")
    assert r.code == 1, r
    item = r.json()["items"][0]
    assert item["status"] == "ok" and "log-end snapshot 101' failed" in " ".join(item["warnings"])


def test_config_checks_of_proxmox_options(plab):
    lab = plab
    add_node_option(lab, "pve1", 'snapshotter = "btrfs"\npve_tmpdir = "relative"')
    text = lab.config.read_text() + '[nodes.plain]\nroot = "x"\npve_dump_mode = "stop"\n'
    lab.config.write_text(text)
    r = lab.run("config", "check")
    assert r.code == 3
    assert 'nodes.pve1.snapshotter: must be "none" with platform = "proxmox"' in r.err
    assert "nodes.pve1.pve_tmpdir: must be an absolute path on the node" in r.err
    assert 'nodes.plain.pve_dump_mode: only for platform = "proxmox"' in r.err


def test_a_full_backup_storage_names_guest_node_and_cause_and_keeps_nothing(plab):
    require(is_root(), "needs root to mount a small tmpfs")
    lab, pve = plab, plab.pve
    full = lab.root / "full"
    full.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(full)], check=True)
    try:
        lab.config.write_text(lab.config.read_text() + '[repositories.full]\nurl = "file://full"\n')
        lab.ok("repo", "init", "full")
        r = lab.run("backup", "vm200", "-r", "full", "--json")
        assert r.code == 13, r
        item = r.json()["items"][0]
        assert (item["guest"], item["node"]) == ("vm200", "pve1")
        assert "no space" in item["message"].lower()
        assert lab.ok("points", "--json").json() == []
        assert "lock" not in pve.conf("pve1", "vm", 200)  # vzdump was stopped and cleaned up
    finally:
        subprocess.run(["umount", "-l", str(full)], check=True)


def test_a_vzdump_lock_timeout_names_guest_node_and_cause(plab):
    import fcntl

    lab, pve = plab, plab.pve
    add_node_option(lab, "pve1", "pve_lockwait = 0")
    path = pve.root("pve1") / "var/run/vzdump.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as held:  # another vzdump job runs on the node
        fcntl.flock(held, fcntl.LOCK_EX)
        r = lab.run("backup", "ct101", "--json")
    assert r.code == 15, r
    item = r.json()["items"][0]
    assert (item["guest"], item["node"]) == ("ct101", "pve1")
    assert "can't acquire lock '/var/run/vzdump.lock'" in item["message"]
    assert "pve_lockwait" in item["hint"]
    assert lab.ok("points", "--json").json() == []
