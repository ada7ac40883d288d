"""``vzbackup clone`` onto Proxmox VE nodes (the emulators): pct/qm restore, then pct/qm set."""

from __future__ import annotations

from tests.unit.proxmox.test_cli import plab, rootfs  # noqa: F401
from vzbackup.domain.clone import macs
from vzbackup.errors import GuestCommandFailed, UsageError


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


def test_start_is_refused_on_a_production_bridge_before_anything_is_made(plab):  # noqa: F811
    lab, pve = plab, plab.pve
    lab.ok("backup", "--all")
    r = lab.run("clone", "ct101", "--to", "pve2", "--start")
    assert r.code == UsageError.exit_code
    assert "net0 stays on bridge vmbr0" in r.err and "nothing was created" in r.err
    assert "--network isolated" in r.err and "--allow-production-network" in r.err
    assert not pve.conf_path("pve2", "ct", 201).exists()
    assert lab.ok("clones", "--json").json() == []
    r = lab.run("clone", "ct101", "--to", "pve2", "--network", "vmbr0=vmbr9,keep-ip", "--start")
    if "ip=" in pve.conf("pve1", "ct", 101)["net0"] and "ip=dhcp" not in pve.conf("pve1", "ct", 101)["net0"]:
        assert r.code == UsageError.exit_code and "keep-ip" in r.err
    r = lab.run("clone", "ct101", "--to", "pve2", "--allow-production-network")
    assert r.code == UsageError.exit_code and "goes with --start" in r.err


def test_start_runs_the_clone_off_production(plab):  # noqa: F811
    lab, pve = plab, plab.pve
    lab.ok("backup", "--all")
    assert pve.status(101) == "running"
    result = lab.ok("clone", "ct101", "--to", "pve2", "--network", "vmbr0=vmbr9", "--start",
                    "--json").json()
    assert result["details"]["status"] == "running" and pve.status(201) == "running"
    assert "bridge=vmbr9" in pve.conf("pve2", "ct", 201)["net0"]
    lab.ok("clone", "vm200", "--to", "pve1", "--network", "isolated", "--start")
    assert pve.status(202) == "running" and "bridge=" not in pve.conf("pve1", "vm", 202)["net0"]
    # told explicitly: on the source's bridge
    lab.ok("clone", "ct101", "--to", "pve2", "--start", "--allow-production-network")
    assert pve.status(203) == "running" and "bridge=vmbr0" in pve.conf("pve2", "ct", 203)["net0"]
    # without --start the clone stays stopped
    lab.ok("clone", "ct101", "--to", "pve2", "--network", "isolated")
    assert pve.status(204) != "running"


def test_a_clone_that_cannot_start_exists_and_says_so(plab):  # noqa: F811
    lab, pve = plab, plab.pve
    lab.ok("backup", "--all")
    # as if a backup crashed on the new guest just before the start: pct start refuses it
    pct = pve.wrappers("pve2") / "pct"
    conf = pve.conf_path("pve2", "ct", 201)
    pct.write_text(pct.read_text().replace(
        "PVE_FAKE_ROOT", f'[ "$1" = start ] && sed -i "1i lock: backup" "{conf}"\nPVE_FAKE_ROOT', 1))
    r = lab.run("clone", "ct101", "--to", "pve2", "--network", "isolated", "--start")
    assert r.code == GuestCommandFailed.exit_code
    assert "clone ct201 of ct101 was made on node pve2 but could not be started" in r.out
    assert "CT is locked (backup)" in r.out
    assert pve.conf_path("pve2", "ct", 201).exists()
    assert [c["clone"] for c in lab.ok("clones", "--json").json()] == ["ct201"]
