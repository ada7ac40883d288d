"""``vzbackup branch`` on Proxmox VE nodes (the emulators): pct/qm restore and set, sanitize
through ``pct mount``, destroy through ``pct|qm destroy``; export, then import on a laptop
node of another cluster while every production node and repository is unreachable."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.fakes.pve.cluster import BIN, FakeCluster
from tests.treediff import tree_digest
from tests.unit.cli.conftest import Lab
from tests.unit.proxmox.test_cli import plab, rootfs  # noqa: F401
from vzbackup.domain.clone import macs
from vzbackup.errors import BadBundle, BranchFailed

SOURCES = (("pve1", "ct", 101), ("pve2", "ct", 102), ("pve1", "vm", 200))
SCRUB = """#!/bin/sh
set -e
[ -n "$1" ] || exit 0
rm -rf "$1/home/demo"
echo "$VZBACKUP_SOURCE" > "$1/etc/sanitized"
"""


def production(pve) -> dict:
    """Configs and volumes of the production guests, to compare before and after."""
    out = {}
    for node, kind, vmid in SOURCES:
        volume = pve.volume(node, f"local-lvm:vm-{vmid}-disk-0")
        data = tree_digest(volume, mtimes=True) if volume.is_dir() else volume.read_bytes()
        out[f"{kind}{vmid}"] = (pve.conf_path(node, kind, vmid).read_text(), data)
    return out


def test_a_branch_of_three_on_proxmox_new_ids_macs_isolated_sanitized_production_unchanged(plab, tmp_path):  # noqa: F811
    lab, pve = plab, plab.pve
    lab.ok("backup", "--all")
    before = production(pve)
    scrub = tmp_path / "scrub.sh"
    scrub.write_text(SCRUB)
    scrub.chmod(0o755)
    made = lab.ok("branch", "create", "expo", "--guests", "ct101,ct102,vm200", "--to", "pve2",
                  "--sanitize", str(scrub), "--json").json()
    members = {m["source"]: m for m in made["members"]}
    assert [members[g]["clone"] for g in ("ct101", "ct102", "vm200")] == ["ct201", "ct202", "vm203"]
    for (node, kind, vmid), clone in zip(SOURCES, (201, 202, 203)):
        conf, source = pve.conf("pve2", kind, clone), pve.conf(node, kind, vmid)
        assert macs(conf) and macs(conf).isdisjoint(macs(source))
        assert "bridge=" not in conf["net0"] and "lock" not in conf
    ct = pve.volume("pve2", "local-lvm:vm-201-disk-0")
    assert (ct / "etc/sanitized").read_text() == "ct101\n" and not (ct / "home/demo").exists()
    assert rootfs(pve, "pve2", 201)["etc/hostname"] == rootfs(pve, "pve1", 101)["etc/hostname"]
    assert pve.conf("pve2", "ct", 201)["hostname"] == "web1-expo"
    assert pve.volume("pve2", "local-lvm:vm-203-disk-0").read_bytes() == \
        pve.volume("pve1", "local-lvm:vm-200-disk-0").read_bytes()
    assert all(m["shipped_point"] != m["point"] for m in made["members"])
    assert production(pve) == before
    assert not (pve.root("pve2") / "var/lib/lxc/201/rootfs").exists()  # unmounted

    bundle = tmp_path / "expo.vzb"
    digest = lab.ok("branch", "export", "expo", str(bundle), "--json").json()["digest"]
    away = laptop(lab, tmp_path)
    done = away.ok("branch", "import", str(bundle), "--to", "laptop", "--expect", digest,
                   "--json").json()
    assert [m["clone"] for m in done["branch"]["members"]] == ["ct201", "ct202", "vm203"]
    home = away.pve
    for kind, vmid in (("ct", 201), ("ct", 202)):  # as the (sanitized) points hold them
        assert rootfs(home, "laptop", vmid) == {k: v for k, v in rootfs(pve, "pve2", vmid).items()
                                                if k != "etc"}
        conf = home.conf("laptop", kind, vmid)
        assert "bridge=" not in conf["net0"] and macs(conf).isdisjoint(macs(pve.conf("pve2", kind, vmid)))
    assert home.volume("laptop", "local-lvm:vm-203-disk-0").read_bytes() == \
        pve.volume("pve1", "local-lvm:vm-200-disk-0").read_bytes()

    data = bytearray(bundle.read_bytes())
    data[len(data) // 3] ^= 0x10
    bundle.write_bytes(bytes(data))
    away.ok("branch", "destroy", "expo")
    assert not list((home.shared / "nodes/laptop").rglob("*.conf"))
    r = away.run("branch", "import", str(bundle), "--to", "laptop")
    assert r.code == BadBundle.exit_code and not list((home.shared / "nodes/laptop").rglob("*.conf"))

    lab.ok("branch", "destroy", "expo")
    assert not pve.conf_path("pve2", "ct", 201).exists() and not pve.conf_path("pve2", "vm", 203).exists()
    assert production(pve) == before


def test_a_failing_member_on_proxmox_removes_the_clones_already_made(plab, tmp_path):  # noqa: F811
    lab, pve = plab, plab.pve
    lab.ok("backup", "--all")
    r = lab.run("branch", "create", "expo", "--guests", "ct101,ct102", "--to", "pve2",
                "--sanitize", "/nonexistent/scrub.sh")
    assert r.code == BranchFailed.exit_code
    assert "ct101 (as ct201) on node pve2" in r.err and "does not exist" in r.err
    assert not pve.conf_path("pve2", "ct", 201).exists()
    assert lab.ok("branch", "list", "--json").json() == []


def test_destroy_refuses_a_member_renamed_since(plab):  # noqa: F811
    lab, pve = plab, plab.pve
    lab.ok("backup", "ct101")
    lab.ok("branch", "create", "demo", "--guests", "ct101", "--to", "pve1", "--network", "vmbr99")
    assert "bridge=vmbr99" in pve.conf("pve1", "ct", 201)["net0"]
    path = pve.conf_path("pve1", "ct", 201)
    path.write_text(path.read_text().replace("hostname: web1-demo", "hostname: someone-else"))
    r = lab.run("branch", "destroy", "demo")
    assert r.code == BranchFailed.exit_code and "someone-else" in r.err and path.exists()
    mounted = subprocess.run([str(BIN / "pct"), "mount", "201"], capture_output=True)
    assert mounted.returncode == 0 and pve.conf("pve1", "ct", 201)["lock"] == "mounted"
    lab.ok("branch", "destroy", "demo", "--force")  # unmounts what a killed sanitize left
    assert not path.exists()


def laptop(lab: Lab, tmp_path: Path) -> Lab:
    """A one-node cluster 'laptop'; the production nodes and the repository are dead."""
    home = FakeCluster(tmp_path / "laptop-pve", nodes=("laptop",))
    root = tmp_path / "laptop"
    root.mkdir()
    config = root / "vzbackup.toml"
    config.write_text(f"""
[state]
dir = "state"
[backup]
repository = "main"
[nodes.laptop]
platform = "proxmox"
root = "{home.etc_pve('laptop')}"
pve_bin_dir = "{home.wrappers('laptop')}"
[nodes.pve1]
platform = "proxmox"
root = "{tmp_path / 'dead-pve1/etc/pve'}"
[nodes.pve2]
platform = "proxmox"
transport = "ssh"
host = "192.0.2.7"
root = "/etc/pve"
connect_timeout = 1
[repositories.main]
url = "sftp://vzbackup@192.0.2.7:22/srv/repo"
connect_timeout = 1
""")
    away = Lab(root, config, lab.capsys)
    away.pve = home
    return away
