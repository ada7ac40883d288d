"""``vzbackup clone`` onto Proxmox VE nodes (the emulators): pct/qm restore, then pct/qm set."""

from __future__ import annotations

from tests.unit.proxmox.test_cli import plab, rootfs  # noqa: F401
from vzbackup.domain.clone import macs


def test_clone_a_container_and_a_vm_to_another_node(plab):  # noqa: F811
    lab, pve = plab, plab.pve
    lab.ok("backup", "--all")
    lab.ok("clone", "ct101", "--to", "pve2", "--hostname", "staging-web",
           "--network", "vmbr0=vmbr9")
    conf = pve.conf("pve2", "ct", 201)  # ct101, vm200, ct102: next free is 201
    source = pve.conf("pve1", "ct", 101)
    assert conf["hostname"] == "staging-web"
    assert "bridge=vmbr9" in conf["net0"] and macs(conf).isdisjoint(macs(source))
    assert rootfs(pve, "pve2", 201) == {k: v for k, v in rootfs(pve, "pve1", 101).items()
                                        if k != "tmp/scratch"}
    assert source["hostname"] != "staging-web" and "bridge=vmbr0" in source["net0"]

    lab.ok("clone", "vm200", "--to", "pve1", "--network", "isolated")
    vm = pve.conf("pve1", "vm", 202)
    assert vm["name"].endswith("-clone202") and "bridge=" not in vm["net0"]
    assert macs(vm).isdisjoint(macs(pve.conf("pve1", "vm", 200)))
    assert [c["clone"] for c in lab.ok("clones", "--json").json()] == ["ct201", "vm202"]
