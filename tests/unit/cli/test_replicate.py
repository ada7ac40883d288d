"""Replication to a peer directory and an S3 bucket; restore from a replica when the
backup repository is gone."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time

import pytest

from demo.guestdata import change_container
from demo.treedigest import describe, differences
from tests.lab.s3 import reset_moto


@pytest.fixture
def replicated(backed_up, moto_endpoint, tmp_path):
    lab = backed_up
    reset_moto(moto_endpoint)
    creds = tmp_path / "s3-credentials"
    creds.write_text("[default]\naws_access_key_id = AKIAVZTEST\naws_secret_access_key = sup3r-s3cret-value\n")
    lab.config.write_text(lab.config.read_text().replace(
        '[backup]\nrepository = "main"', '[backup]\nrepository = "main"\nreplicate_to = ["peer"]') + f"""
[repositories.peer]
url = "file://peer"
[repositories.offsite]
url = "s3://vzoffsite/site-a"
endpoint_url = "{moto_endpoint}"
credentials_file = "{creds}"
""")
    import boto3
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1",
                 aws_access_key_id="x", aws_secret_access_key="y").create_bucket(Bucket="vzoffsite")
    return lab


def pack_bytes(repo) -> int:
    return sum(f.stat().st_size for f in (repo / "packs").rglob("*") if f.is_file())


def stored_bytes(repo, point: str) -> int:
    """The stored bytes of the point's chunks that the index of the repository in ``repo``
    names."""
    from vzbackup.repo.backends import open_backend
    from vzbackup.repo.repository import open_chunk_repository

    opened = open_chunk_repository("r", open_backend(repo.as_uri()), passphrase=None, cache_dir=None)
    index = opened.chunk_index()
    chunks = {c.id for c in open_chunk_repository("m", open_backend((repo.parent / "repo").as_uri()),
                                                  passphrase=None, cache_dir=None
                                                  ).load_manifest(point).chunks}
    return sum(index.locate(c).length for c in chunks if c in index)


def sent(result) -> int:
    return sum(i["new_bytes"] for i in result["items"])


def test_replicate_is_idempotent_and_costs_what_changed(replicated):
    lab = replicated
    first = lab.ok("replicate", "--json").json()[0]
    assert first["status"] == "success" and len(first["items"]) == 2 and sent(first) > 0
    copies = {c["repository"] for p in lab.ok("points", "--json").json() for c in p["copies"]}
    assert copies == {"main", "peer"}
    again = lab.ok("replicate", "--json").json()[0]
    assert again["items"] == []
    change_container(lab.node("node1") / "ct101", 0.02, seed=5)
    lab.ok("backup", "ct101")
    second = lab.ok("replicate", "--json").json()[0]
    assert len(second["items"]) == 1 and sent(second) < 0.2 * sent(first)
    assert lab.ok("verify", "--all", "--json").json()["status"] == "success"


def test_restore_from_replicas_when_the_backup_repository_is_gone(replicated):
    lab = replicated
    original = describe(lab.node("node1") / "ct101" / "rootfs")
    lab.ok("replicate")
    lab.ok("replicate", "--to", "offsite")
    shutil.rmtree(lab.root / "repo")
    r = lab.ok("restore", "ct101", "--to", "node2")
    assert "from peer (on this host's disk), then offsite (in object storage)" in r.err
    shutil.rmtree(lab.root / "peer")
    lab.ok("restore", "ct101", "--to", "node2", "--as", "501")
    for vmid in (101, 501):
        assert differences(original, describe(lab.node("node2") / f"ct{vmid}" / "rootfs")) == []
    everything = "".join(p.read_text(errors="replace") for p in (lab.root / "state").rglob("*")
                         if p.is_file() and p.suffix != ".db")
    assert "sup3r-s3cret-value" not in everything + r.out + r.err


def test_replication_cut_midway_resumes_with_only_the_rest(replicated):
    lab = replicated
    lab.add_random_vm("node1", 300, 48)
    lab.ok("backup", "vm300")
    lab.config.write_text(lab.config.read_text().replace('url = "file://peer"',
                                                         'url = "file://peer"\nbwlimit_mib = 16'))
    point = lab.ok("points", "vm300", "--json").json()[0]["id"]
    argv, env = lab.subprocess_argv("--quiet", "replicate", "vm300")
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    index = lab.root / "peer" / "index"
    while time.monotonic() < deadline and not (index.exists() and any(index.iterdir())):
        time.sleep(0.02)  # cut once a pack has gone over and is indexed
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert all(c["repository"] == "main"
               for p in lab.ok("points", "vm300", "--json").json() for c in p["copies"])
    partial = pack_bytes(lab.root / "peer")
    assert 0 < partial < 40 << 20
    kept = stored_bytes(lab.root / "peer", point)
    assert kept > 0
    lab.config.write_text(lab.config.read_text().replace("bwlimit_mib = 16", "bwlimit_mib = 0"))
    rest = sent(lab.ok("replicate", "vm300", "--json").json()[0])
    assert rest == stored_bytes(lab.root / "repo", point) - kept  # only what was missing
    lab.ok("verify", "--all")


def test_restore_fails_over_past_a_dead_peer_node_to_s3(replicated, ssh_lab):
    from tests.lab.ssh import free_port
    lab = replicated
    node = ssh_lab.nodes[1]
    sftp = (f'url = "sftp://root@127.0.0.1:{node.port}{node.data}/peer-{lab.root.name}"\n'
            f'key_file = "{ssh_lab.client_key}"\nknown_hosts = "{ssh_lab.known_hosts}"\n')
    text = lab.config.read_text().replace('url = "file://peer"\n', sftp)
    lab.config.write_text(text)
    lab.ok("replicate", "--to", "peer")
    lab.ok("replicate", "--to", "offsite")
    shutil.rmtree(lab.root / "repo")  # the backup server's disk is gone...
    lab.config.write_text(text.replace(f"127.0.0.1:{node.port}", f"127.0.0.1:{free_port()}"))
    started = time.monotonic()
    r = lab.ok("restore", "ct101", "--to", "node2")  # ...and the peer node is down
    assert "repository peer left out" in r.err and "from offsite" in r.err
    assert time.monotonic() - started < 60
    points = lab.ok("points", "ct101", "--json").json()
    assert {c["repository"]: c["state"] for c in points[0]["copies"]}["peer"] == "ok"  # not blamed
