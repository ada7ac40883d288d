"""Nodes over SSH: every job runs in ``vzbackup agent`` on the node (a real sshd, another
process), with the data going node <-> repository directly when the node can open the
repository, and through the controller when the repository is a folder on the controller."""

from __future__ import annotations

import subprocess
import time

import pytest

import vzbackup
from demo.guestdata import make_container, make_vm
from tests.lab.site import AGENT, controller_toml
from tests.treediff import tree_digest
from tests.unit.cli.conftest import Lab
from vzbackup.cli.render import ConsoleReporter
from vzbackup.config import load_config
from vzbackup.domain.guests import GuestRef
from vzbackup.errors import IntegrityError
from vzbackup.platforms.guestconf import read_config
from vzbackup.wiring import App


def assert_same_container(original, restored) -> None:
    """Contents, modes, owners, mtimes, links and xattrs of the root file system, and the
    guest's settings (the folder itself is new, so its own times differ)."""
    assert tree_digest(restored / "rootfs") == tree_digest(original / "rootfs")
    assert read_config(restored) == read_config(original)


@pytest.fixture
def site_lab(ssh_site, tmp_path, capsys):
    site = ssh_site("node3", "node7")
    make_container(site.guests("node3"), 101, "web1", files=60, mib=2, seed=1)
    make_vm(site.guests("node3"), 200, "app", size_mib=8, data_mib=2, seed=2)
    config = tmp_path / "vzbackup.toml"
    config.write_text(controller_toml(tmp_path) + site.node_toml("node3") + site.node_toml("node7")
                      + site.sftp_repo_toml("on3", "node3"))
    lab = Lab(tmp_path, config, capsys)
    lab.site = site
    return lab


def test_backup_and_restore_stream_through_the_controller_for_a_local_repository(site_lab):
    lab, site = site_lab, site_lab.site
    lab.ok("repo", "init")
    result = lab.ok("backup", "--all", "--json").json()
    assert [(i["guest"], i["node"], i["status"]) for i in result["items"]] == \
        [("ct101", "node3", "ok"), ("vm200", "node3", "ok")]
    r = lab.ok("restore", "ct101", "--to", "node7", "--json").json()
    assert r["details"]["ran_on"] == "controller"
    assert_same_container(site.guests("node3") / "ct101", site.guests("node7") / "ct101")


def test_jobs_run_on_the_node_when_it_can_open_the_repository(site_lab):
    lab, site = site_lab, site_lab.site
    lab.ok("repo", "init", "on3")
    result = lab.ok("backup", "ct101", "-r", "on3", "--json").json()
    assert result["status"] == "success"
    point = lab.ok("points", "ct101", "--json").json()[0]
    assert [c["repository"] for c in point["copies"]] == ["on3"]
    # node3 wrote into its own disk: the manifest is there, and the controller read it back
    assert any(site.repo_dir("node3").rglob(point["id"]))
    r = lab.ok("restore", "ct101", "--to", "node7", "--json").json()
    assert r["details"]["ran_on"] == "node7" and r["details"]["repository"] == "on3"
    assert_same_container(site.guests("node3") / "ct101", site.guests("node7") / "ct101")
    again = lab.run("restore", "ct101", "--to", "node7")
    assert again.code == 8 and "ct101" in again.err and "node7" in again.err  # GuestExists, from the agent


def test_a_node_without_vzbackup_says_so(site_lab):
    lab = site_lab
    lab.config.write_text(lab.config.read_text().replace(
        f'vzbackup = "{AGENT}"', 'vzbackup = "/opt/nowhere/vzbackup"', 1))  # node3's
    r = lab.run("backup", "--node", "node3")
    assert r.code == 17, r
    assert "not installed" in r.err and "nodes.node3.vzbackup" in r.err


def test_an_unknown_host_key_is_refused_with_the_way_to_trust_it(site_lab):
    lab = site_lab
    lab.site.known_hosts.write_text("")
    r = lab.run("backup", "--node", "node3")
    assert r.code == 5, r
    assert "unknown host key" in r.err and "ssh-keyscan" in r.err


def test_a_dead_node_is_reported_and_the_others_are_backed_up(site_lab):
    lab, site = site_lab, site_lab.site
    make_container(site.guests("node7"), 102, "db1", files=20, mib=1, seed=3)
    lab.ok("repo", "init")
    site.kill("node3")
    r = lab.run("backup", "--all", "--json")
    assert r.code == 5
    items = {(i["guest"], i["node"]): i for i in r.json()["items"]}
    assert items[("ct102", "node7")]["status"] == "ok"
    assert items[("*", "node3")]["exit_code"] == 5


class _CutAfter:
    """A restore stream that fails verification half-way, as a damaged copy does."""

    def __init__(self, data: bytes, cut: int):
        self.data, self.cut, self.pos = data, cut, 0

    def read(self, n: int = -1) -> bytes:
        if self.pos >= self.cut:
            raise IntegrityError("chunk #7 does not match its id")
        n = min(n if n > 0 else len(self.data), self.cut - self.pos)
        self.pos += n
        return self.data[self.pos - n:self.pos]


def test_a_stream_cut_half_way_installs_nothing_on_the_node(site_lab):
    lab, site = site_lab, site_lab.site
    node = App(load_config(lab.config), ConsoleReporter(quiet=True)).nodes["node7"]
    source = site.guests("node3") / "ct101"
    tar = subprocess.run(["tar", "-C", str(source / "rootfs"), "-cf", "-", "."],
                         check=True, capture_output=True).stdout
    with pytest.raises(IntegrityError):
        node.restore(GuestRef("ct", 101), _CutAfter(tar, len(tar) // 2), name="web1",
                     config={"hostname": "web1"})
    deadline = time.monotonic() + 10  # the agent was hung up on: it unwinds and cleans up
    while any(site.guests("node7").iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(site.guests("node7").iterdir()) == []  # no guest, no staging folder


def flip_a_byte_in_the_largest_object(repo_dir) -> None:
    data_files = [f for f in repo_dir.rglob("*") if f.is_file()
                  and f.parts[len(repo_dir.parts)] in ("chunks", "packs")]
    victim = max(data_files, key=lambda f: f.stat().st_size)
    with open(victim, "r+b") as f:
        f.seek(victim.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0x40]))


def test_a_damaged_copy_read_on_the_node_is_marked_and_the_next_one_used(site_lab):
    lab, site = site_lab, site_lab.site
    lab.config.write_text(lab.config.read_text().replace(
        'repository = "here"', 'repository = "on3"\nreplicate_to = ["here"]'))
    lab.ok("repo", "init", "on3")
    lab.ok("backup", "ct101")
    lab.ok("replicate")
    flip_a_byte_in_the_largest_object(site.repo_dir("node3"))
    r = lab.run("restore", "ct101", "--to", "node3", "--as", "111", "--json")
    assert r.code == 0, r
    assert "copy in on3 failed" in r.err and "on node node3" in r.err
    assert r.json()["details"]["repository"] == "here"
    copies = {c["repository"]: c["state"] for c in lab.ok("points", "ct101", "--json").json()[0]["copies"]}
    assert copies == {"on3": "corrupt", "here": "ok"}
    # verify re-reads on3 on node3 itself, finds the same damage, and repairs it
    r = lab.run("verify", "--all", "--repair", "--json")
    assert r.code == 7
    bad = [i for i in r.json()["items"] if i["status"] == "failed"]
    assert [i["node"] for i in bad] == ["on3"] and "chunk" in bad[0]["message"]
    assert "pack moved to quarantine" in r.err
    lab.ok("backup", "ct101")  # stores the quarantined chunks again
    assert lab.ok("verify", "--all", "--json").json()["status"] == "success"


def test_nodes_tells_which_answer_and_what_runs_there(site_lab):
    lab, site = site_lab, site_lab.site
    found = {n["node"]: n for n in lab.ok("nodes", "--json").json()}
    assert (found["node3"]["ok"], found["node3"]["guests"], found["node3"]["transport"]) == (True, 2, "ssh")
    assert found["node3"]["agent_version"] == vzbackup.__version__
    assert (found["node7"]["ok"], found["node7"]["guests"]) == (True, 0)
    site.kill("node7")
    r = lab.run("nodes")
    assert r.code == 5 and "node7" in r.out and "FAILED" in r.out
    assert "node node7" in r.err and "does not answer" in r.err


def test_prune_and_gc_of_a_repository_on_a_node_run_on_that_node(site_lab):
    """The repository on node3's own disk is collected by node3's agent: packs a repack
    reads stay on node3; the controller sends the job and gets a report."""
    from datetime import datetime, timedelta, timezone

    from freezegun import freeze_time

    lab, site = site_lab, site_lab.site
    lab.config.write_text(lab.config.read_text().replace(
        'repository = "here"', 'repository = "on3"') + "\n[retention.on3]\nkeep_last = 1\n")
    lab.ok("repo", "init", "on3")
    lab.ok("backup", "ct101")
    (site.guests("node3") / "ct101").rename(site.guests("node3") / "old101")
    make_container(site.guests("node3"), 101, "web1", files=60, mib=2, seed=9)
    lab.ok("backup", "ct101")
    packs = site.repo_dir("node3") / "packs"
    full = sum(f.stat().st_size for f in packs.rglob("*") if f.is_file())
    r = lab.ok("prune", "ct101", "--json").json()
    assert r["result"]["details"]["removed"] == 1
    for hours in (49, 98):
        with freeze_time(datetime.now(timezone.utc) + timedelta(hours=hours), tick=True):
            done = lab.ok("repo", "gc", "on3", "--json").json()[0]
        assert done["ran_on"] == "node3", done
    assert done["report"]["deleted"] >= 1
    assert sum(f.stat().st_size for f in packs.rglob("*") if f.is_file()) < full * 0.7
    r = lab.ok("restore", "ct101", "--to", "node7", "--json").json()
    assert r["details"]["ran_on"] == "node7"
    assert_same_container(site.guests("node3") / "ct101", site.guests("node7") / "ct101")


def test_clone_to_an_ssh_node_through_its_agent(site_lab):
    lab, site = site_lab, site_lab.site
    conf = site.guests("node3") / "ct101" / "guest.conf"
    conf.write_text(conf.read_text() + "net0: name=eth0,bridge=vmbr0,hwaddr=BC:24:11:2A:3B:4C,"
                                       "ip=10.0.0.5/24\n")
    lab.ok("repo", "init")
    lab.ok("backup", "ct101")
    r = lab.run("clone", "ct101", "--to", "node7", "--network", "isolated", "--start")
    assert r.code == 18 and "node node7 runs the directory platform" in r.err
    done = lab.ok("clone", "ct101", "--to", "node7", "--hostname", "staging-web", "--network",
                  "vmbr0=vmbr9", "--json").json()["details"]
    clone = site.guests("node7") / done["target"]
    assert tree_digest(clone / "rootfs") == tree_digest(site.guests("node3") / "ct101" / "rootfs")
    settings = read_config(clone)
    assert settings["hostname"] == "staging-web" and "bridge=vmbr9" in settings["net0"]
    assert "BC:24:11:2A:3B:4C" not in settings["net0"] and "10.0.0.5" not in settings["net0"]
    assert "bridge=vmbr0" in read_config(site.guests("node3") / "ct101")["net0"]
    r = lab.run("checkpoint", "ct101", "--label", "pre")  # snapshotter none, from the agent
    assert r.code == 23 and "node3" in r.err and "cannot keep snapshots" in r.err
