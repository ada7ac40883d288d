"""``vzbackup clone`` and ``clones`` through the command line, on the directory platform."""

from __future__ import annotations

from demo.treedigest import describe, differences
from vzbackup.domain.clone import macs
from vzbackup.errors import UsageError
from vzbackup.platforms.guestconf import read_config

NET0 = "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:2A:3B:4C,ip=10.0.0.5/24,gw=10.0.0.1,type=veth"


def with_network(lab):
    conf = lab.node("node1") / "ct101" / "guest.conf"
    conf.write_text(conf.read_text() + f"net0: {NET0}\n")
    lab.ok("repo", "init")
    lab.ok("backup", "--all")
    return lab


def test_clone_gets_next_free_vmid_new_mac_hostname_and_remapped_network(lab):
    with_network(lab)
    r = lab.ok("clone", "ct101", "--to", "node2", "--hostname", "staging-web",
               "--network", "vmbr0=vmbr9", "--json")
    assert r.json()["details"]["target"] == "ct201"  # vm200 exists: max + 1
    clone = lab.node("node2") / "ct201"
    assert differences(describe(lab.node("node1") / "ct101" / "rootfs"),
                       describe(clone / "rootfs")) == []
    conf = read_config(clone)
    assert conf["hostname"] == "staging-web"
    assert macs(conf) and macs(conf).isdisjoint(macs({"net0": NET0}))
    assert "bridge=vmbr9" in conf["net0"] and "10.0.0.5" not in conf["net0"]
    assert "gw=" not in conf["net0"]
    assert read_config(lab.node("node1") / "ct101")["net0"] == NET0  # the source untouched

    listed = lab.ok("clones", "--json").json()
    assert [(c["clone"], c["source"], c["node"], c["hostname"]) for c in listed] == [
        ("ct201", "ct101", "node2", "staging-web")]
    assert listed[0]["point"] == lab.ok("points", "ct101", "--json").json()[0]["id"]
    assert "ct201" in lab.ok("clones", "ct101").out
    # the clone itself is a guest like any other
    lab.ok("backup", "ct201")


def test_clone_as_isolated_with_default_hostname_and_explicit_vmid(lab):
    with_network(lab)
    lab.ok("clone", "web1", "--to", "node1", "--as", "150", "--network", "isolated")
    conf = read_config(lab.node("node1") / "ct150")
    assert conf["hostname"] == "web1-clone150" and "bridge=" not in conf["net0"]


def test_clone_refuses_a_used_vmid_a_bad_map_and_changes_nothing(lab):
    with_network(lab)
    r = lab.run("clone", "ct101", "--to", "node2", "--as", "200")
    assert r.code != 0 and "VMID 200 is already used" in r.err and "next step" in r.err
    r = lab.run("clone", "ct101", "--to", "node2", "--network", "vmbr0")
    assert r.code == UsageError.exit_code and "--network" in r.err
    r = lab.run("clone", "ct101", "--to", "node2", "--point", "abcdef", "--fresh")
    assert r.code == UsageError.exit_code
    assert not list(lab.node("node2").glob("ct*"))
    assert lab.ok("clones", "--json").json() == []


def test_dry_run_and_fresh(lab):
    with_network(lab)
    r = lab.ok("clone", "ct101", "--to", "node2", "--dry-run")
    assert "as ct201 'web1-clone201' on node2" in r.out
    assert not (lab.node("node2") / "ct201").exists()
    (lab.node("node1") / "ct101" / "rootfs" / "etc" / "new-file").write_text("after backup\n")
    lab.ok("clone", "ct101", "--to", "node2", "--fresh")
    assert (lab.node("node2") / "ct201" / "rootfs" / "etc" / "new-file").is_file()
    assert len(lab.ok("points", "ct101", "--json").json()) == 2


def test_prune_pins_the_point_a_clone_depends_on(lab):
    lab.config.write_text(lab.config.read_text() + "[retention.main]\nkeep_last = 1\n")
    with_network(lab)
    first = lab.ok("points", "ct101", "--json").json()[0]["id"]
    lab.ok("clone", "ct101", "--to", "node2", "--point", first[:12])
    lab.ok("backup", "ct101")
    plan = lab.ok("prune", "--dry-run", "ct101", "--json").json()
    mine = [i for i in plan if i["point"] == first]
    assert mine and mine[0]["decision"] == "keep"
    assert "clone ct201 depends on it" in mine[0]["reason"]


def test_a_rebuilt_catalogue_keeps_clones_lineage_and_the_pin(lab):
    """Promise 6: the lineage is also a note in the repository the clone came from."""
    lab.config.write_text(lab.config.read_text() + "[retention.main]\nkeep_last = 1\n")
    with_network(lab)
    first = lab.ok("points", "ct101", "--json").json()[0]["id"]
    lab.ok("clone", "ct101", "--to", "node2", "--point", first[:12], "--hostname", "stage")
    lab.ok("backup", "ct101")
    before = lab.ok("clones", "--json").json()
    (lab.root / "state" / "catalog.db").unlink()
    for leftover in (lab.root / "state").glob("catalog.db-*"):
        leftover.unlink()
    assert lab.ok("clones", "--json").json() == []
    r = lab.ok("catalog", "rebuild")
    assert "1 clone lineage record(s) restored" in r.err
    assert lab.ok("clones", "--json").json() == before
    lab.ok("catalog", "rebuild")  # again: nothing doubled
    assert lab.ok("clones", "--json").json() == before
    plan = lab.ok("prune", "--dry-run", "ct101", "--json").json()
    mine = [i for i in plan if i["point"] == first]
    assert mine and mine[0]["decision"] == "keep" and "clone ct201" in mine[0]["reason"]
