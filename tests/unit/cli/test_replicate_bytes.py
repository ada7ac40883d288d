"""What replication costs, measured on the wire: a counting TCP proxy stands between
vzbackup and the replica (S3, or a peer node over SFTP), and the server's own listing
says what it holds. Nothing here trusts the tool's statistics or the repository layout."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import boto3
import pytest

from demo.guestdata import change_container, make_container
from tests.lab.proxy import CountingProxy
from tests.lab.s3 import SEAWEED_ACCESS, SEAWEED_SECRET

MiB = 1 << 20


@dataclass
class Replica:
    """The repository ``name``, reached through ``proxy``; ``stored()``: the bytes its
    server holds (every object, manifests included)."""

    name: str
    proxy: CountingProxy
    stored: Callable[[], int]


def s3_replica(lab, name: str, endpoint: str) -> Replica:
    url = urlsplit(endpoint)
    proxy = CountingProxy((url.hostname, url.port))
    bucket = f"vzbytes-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id=SEAWEED_ACCESS, aws_secret_access_key=SEAWEED_SECRET)
    s3.create_bucket(Bucket=bucket)
    creds = lab.root / f"{name}-credentials"
    creds.write_text(f"[default]\naws_access_key_id = {SEAWEED_ACCESS}\n"
                     f"aws_secret_access_key = {SEAWEED_SECRET}\n")
    lab.config.write_text(lab.config.read_text() + f"""
[repositories.{name}]
url = "s3://{bucket}/site"
endpoint_url = "http://127.0.0.1:{proxy.port}"
credentials_file = "{creds}"
""")

    def stored() -> int:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return sum(o["Size"] for page in pages for o in page.get("Contents", ()))

    return Replica(name, proxy, stored)


def sftp_replica(lab, name: str, ssh_lab) -> Replica:
    node = ssh_lab.nodes[0]
    proxy = CountingProxy(("127.0.0.1", node.port))
    known = lab.root / f"{name}-known_hosts"  # the node's key, under the proxy's address
    known.write_text(node.known_hosts_line().replace(f"]:{node.port} ", f"]:{proxy.port} "))
    root = node.data / f"far-{uuid.uuid4().hex[:12]}"
    lab.config.write_text(lab.config.read_text() + f"""
[repositories.{name}]
url = "sftp://root@127.0.0.1:{proxy.port}{root}"
key_file = "{ssh_lab.client_key}"
known_hosts = "{known}"
""")

    def stored() -> int:  # not the dot-files of puts cut before their rename
        return sum(p.stat().st_size for p in root.rglob("*")
                   if p.is_file() and not p.name.startswith("."))

    return Replica(name, proxy, stored)


def make_replica(lab, kind: str, name: str, request) -> Replica:
    if kind == "s3":
        return s3_replica(lab, name, request.getfixturevalue("seaweed_endpoint"))
    return sftp_replica(lab, name, request.getfixturevalue("ssh_lab"))


@pytest.fixture
def replicas(request, lab) -> Iterator[Callable[[str, str], Replica]]:
    """``make(kind, name)``: an S3 bucket (SeaweedFS) or a peer node's folder over SFTP,
    behind its own proxy."""
    made: dict[str, Replica] = {}

    def make(kind: str, name: str) -> Replica:
        made[name] = make_replica(lab, kind, name, request)
        return made[name]

    yield make
    for replica in made.values():
        replica.proxy.close()


def replicate(lab, replica: Replica, *guests: str) -> tuple[int, int]:
    """Bytes one ``replicate`` to ``replica`` sent on the wire, and the bytes it reported."""
    replica.proxy.reset()
    result = lab.ok("replicate", "--to", replica.name, *guests, "--json").json()[0]
    return replica.proxy.sent, sum(i["new_bytes"] for i in result["items"])


@pytest.mark.parametrize("kind", ["s3", "sftp"])
def test_a_cut_replication_sends_only_what_is_still_missing(lab, replicas, kind):
    lab.add_random_vm("node1", 300, 4)  # incompressible: ~4 MiB on the wire
    lab.ok("repo", "init")
    lab.ok("backup", "vm300")
    whole, _ = replicate(lab, replicas(kind, "whole"), "vm300")  # what a copy costs, uncut
    far = replicas(kind, "far")
    far.proxy.stall_after(2 * MiB)
    argv, env = lab.subprocess_argv("--quiet", "replicate", "--to", "far", "vm300")
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert far.proxy.stalled.wait(60), "the replication ended before the line was cut"
    finally:
        proc.kill()  # the line went silent midway; the run is given up
        proc.wait()
    cut = far.proxy.sent
    far.proxy.reopen()
    before = far.stored()
    sent, reported = replicate(lab, far, "vm300")
    arrived = far.stored() - before
    assert before > MiB and arrived > MiB  # cut midway: a good part on each side of the cut
    assert reported <= arrived <= sent  # the tool's count, what the server got, the wire
    # Nothing went twice, but what was in flight at the cut: up to an eighth of the copy
    # (four chunks, or the pack being put).
    assert cut + sent <= 1.125 * whole + 256 * 1024
    assert lab.ok("verify", "--all", "--json").json()["status"] == "success"


def test_a_second_night_after_2_percent_change_sends_at_most_5_percent(lab, replicas):
    """A container of 400 files and 16 MiB, changed as demo/guestdata.py changes it in a
    night: 3.0-3.2% here. (At this scale the ratio moves with the files that change: 2.9-4.5%
    of the stored bytes over four seeds. VM images are left to the backup bench: here one
    rewritten extent of up to 256 KiB is already 3% of a small disk.)"""
    for guest in ("ct101", "vm200"):
        shutil.rmtree(lab.node("node1") / guest)
    ct = make_container(lab.node("node1"), 101, "web1", files=400, mib=16, seed=1)
    far = [replicas("s3", "s3"), replicas("sftp", "sftp")]
    lab.ok("repo", "init")
    lab.ok("backup", "--all")
    first = [replicate(lab, replica)[0] for replica in far]
    change_container(ct, 0.02, seed=5)
    lab.ok("backup", "--all")
    for replica, night1 in zip(far, first):
        sent, reported = replicate(lab, replica)
        assert reported <= sent <= 0.05 * night1, replica.name
