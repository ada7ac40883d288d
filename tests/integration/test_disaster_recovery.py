"""The disaster-recovery promise, end to end: a night on node3, replicated to node9 and to
S3; node3 dies; ``restore ct101 --to node7`` brings ct101 back from node9; with node9 also
down, from S3. Every node is a real sshd running this checkout's ``vzbackup agent``."""

from __future__ import annotations

import os
import signal
import threading
import time

import boto3
import pytest

from demo.guestdata import make_container, make_vm
from tests.integration.test_ssh_nodes import assert_same_container
from tests.lab.s3 import reset_moto
from tests.unit.cli.conftest import Lab


@pytest.fixture
def site(ssh_site, moto_endpoint, tmp_path, capsys):
    site = ssh_site("node3", "node7", "node9")
    make_container(site.guests("node3"), 101, "web1", files=80, mib=3, seed=11)
    make_vm(site.guests("node3"), 200, "app", size_mib=8, data_mib=2, seed=12)
    reset_moto(moto_endpoint)
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1",
                 aws_access_key_id="x", aws_secret_access_key="y").create_bucket(Bucket="offsite")
    creds = tmp_path / "s3-credentials"
    creds.write_text("[default]\naws_access_key_id = AKIADR\naws_secret_access_key = dr-s3cret\n")
    os.chmod(creds, 0o600)
    config = tmp_path / "vzbackup.toml"
    config.write_text(f"""
[state]
dir = "{tmp_path / 'state'}"
[backup]
repository = "main"
replicate_to = ["node9", "offsite"]
[repositories.offsite]
url = "s3://offsite/site-a"
endpoint_url = "{moto_endpoint}"
credentials_file = "{creds}"
""" + "".join(site.node_toml(n) for n in ("node3", "node7", "node9"))
        + site.sftp_repo_toml("main", "node3") + site.sftp_repo_toml("node9", "node9"))
    lab = Lab(tmp_path, config, capsys)
    lab.site = site
    return lab


def freeze(node) -> None:
    """The node hangs: its sshd accepts connections (the kernel does) but never answers."""
    os.kill(node.proc.pid, signal.SIGSTOP)


def test_node3_dies_then_node9_restore_comes_from_the_nearest_copy_left(site):
    lab, s = site, site.site
    lab.ok("repo", "init")
    night = lab.ok("backup", "--all", "--json").json()
    assert night["status"] == "success"
    copies = lab.ok("replicate", "--json").json()
    assert [r["status"] for r in copies] == ["success", "success"]
    # node3 holds the source: it sends to node9 and to S3 itself
    assert [r["details"]["ran_on"] for r in copies] == [["node3"], ["node3"]]
    point = lab.ok("points", "ct101", "--json").json()[0]
    assert sorted(c["repository"] for c in point["copies"]) == ["main", "node9", "offsite"]
    original = s.guests("node3") / "ct101"  # still on node3's disk, for the comparison

    s.kill("node3")
    started = time.monotonic()
    r = lab.run("restore", "ct101", "--to", "node7", "--json")
    assert r.code == 0, r
    assert "repository main left out" in r.err  # node3's disk is gone with it
    details = r.json()["details"]
    assert (details["repository"], details["ran_on"]) == ("node9", "node7")
    assert_same_container(original, s.guests("node7") / "ct101")
    first = time.monotonic() - started

    freeze(s.nodes["node9"])
    started = time.monotonic()
    r = lab.run("restore", "ct101", "--to", "node7", "--force", "--json")
    assert r.code == 0, r
    details = r.json()["details"]
    assert (details["repository"], details["ran_on"]) == ("offsite", "node7")
    assert_same_container(original, s.guests("node7") / "ct101")
    second = time.monotonic() - started
    # Dead nodes are given up on within their connect timeouts (2 s, 3 tries), not minutes.
    assert first < 30 and second < 45, (first, second)
    os.kill(s.nodes["node9"].proc.pid, signal.SIGCONT)


def test_dry_run_says_which_copy_and_why(site):
    lab, s = site, site.site
    lab.ok("repo", "init")
    lab.ok("backup", "ct101")
    lab.ok("replicate")
    plan = lab.ok("restore", "ct101", "--to", "node9", "--dry-run", "--json").json()
    assert plan["sources"] == ["node9", "main", "offsite"]
    assert plan["reasons"] == ["on node9's own disk", "on peer node node3", "in object storage"]
    assert not (s.guests("node9") / "ct101").exists()
    r = lab.ok("restore", "ct101", "--to", "node9", "--json").json()
    assert (r["details"]["repository"], r["details"]["ran_on"]) == ("node9", "node9")


def test_a_node_killed_mid_backup_leaves_no_point_and_the_next_night_works(site):
    lab, s = site, site.site
    make_vm(s.guests("node3"), 300, "big", size_mib=96, data_mib=96, seed=13)
    lab.ok("repo", "init")
    repo = s.repo_dir("node3")
    before = sum(1 for _ in repo.rglob("*"))
    killer = threading.Thread(target=_kill_when_writing, args=(s, "node3", repo, before))
    killer.start()
    r = lab.run("backup", "vm300", "--json")
    killer.join()
    assert r.code == 5, r
    item = r.json()["items"][0]
    assert (item["guest"], item["node"], item["exit_code"]) == ("vm300", "node3", 5)
    assert lab.ok("points", "--json").json() == []
    s.nodes["node3"].start(s.client_key.with_suffix(".pub").read_text())
    assert lab.ok("backup", "vm300", "--json").json()["status"] == "success"
    point = lab.ok("points", "vm300", "--json").json()[0]
    assert lab.ok("verify", point["id"][:12], "--json").json()["status"] == "success"


def _kill_when_writing(s, node: str, repo, before: int, timeout: float = 60) -> None:
    """Kill the node once its agent has started writing into the repository."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(1 for _ in repo.rglob("*")) > before + 3:
            s.kill(node)
            return
        time.sleep(0.02)
