"""Replication throughput against plain uploads of the same bytes, measured in the same run.

Generates guest-like data (as bench/backup_bench.py does), backs it up into a local
repository through the CLI (untimed), then times, each into a fresh target on loopback:
  - vzbackup replicate --to sftp  vs  paramiko SFTPClient.put of one file
  - vzbackup replicate --to s3    vs  boto3 upload_file, default TransferConfig
The one file holds the repository's stored objects end to end: the same bytes, in one
object. A third column does per object what replication does, with the plain library and
four threads (SFTP: stat, write a temporary file, rename it; S3: HEAD, then PUT with a
SHA-256 checksum) on a sample of the repository's objects: the cost of the protocol alone.
SFTP goes to a throwaway sshd (tests/lab/ssh.py), S3 to SeaweedFS (tests/lab/s3.py).
vzbackup runs as a user runs it: the CLI in its own process, start-up included.

Run as root (sshd): make bench-replicate  (or python -m bench.replicate_bench --gib 0.6)
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import paramiko
from botocore.exceptions import ClientError

from bench.backup_bench import TOP, bench_config, generate, remove, settle, tree_bytes, wait_after_deletes
from tests.lab.s3 import SEAWEED_ACCESS, SEAWEED_SECRET, seaweed_binary, seaweed_server
from tests.lab.ssh import SshNode, free_port, keygen

SAMPLE = 2000  # objects in the per-object probe
THREADS = 4  # as vzbackup's replication


def vzbackup(config: Path, *args: str) -> tuple[float, float]:
    """Run the CLI; (seconds, CPU seconds it used)."""
    cpu = _children_cpu()
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "vzbackup", "--quiet", "--config", str(config), *args],
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started, _children_cpu() - cpu


def timed(action) -> tuple[float, float]:  # noqa: ANN001
    """Run ``action`` in this process; (seconds, CPU seconds of this process)."""
    cpu = time.process_time()
    started = time.perf_counter()
    action()
    return time.perf_counter() - started, time.process_time() - cpu


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def join_objects(repo: Path, out: Path) -> tuple[int, int]:
    """Every object the repository stores, end to end in ``out``: (objects, bytes)."""
    count = 0
    with open(out, "wb") as f:
        for path in sorted(p for p in repo.rglob("*") if p.is_file()):
            with open(path, "rb") as src:
                shutil.copyfileobj(src, f)
            count += 1
    return count, out.stat().st_size


def sample_objects(repo: Path, n: int) -> list[bytes]:
    paths = sorted(p for p in repo.rglob("*") if p.is_file())
    return [p.read_bytes() for p in paths[::max(1, len(paths) // n)][:n]]


class SftpTarget:
    def __init__(self, node: SshNode, key: Path, known_hosts: Path):
        self.node = node
        self.client = paramiko.SSHClient()
        self.client.load_host_keys(str(known_hosts))
        self.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        self.client.connect("127.0.0.1", port=node.port, username="root", key_filename=str(key),
                            allow_agent=False, look_for_keys=False)
        self._local = threading.local()

    def sftp(self) -> paramiko.SFTPClient:
        if not hasattr(self._local, "sftp"):
            self._local.sftp = self.client.open_sftp()
        return self._local.sftp

    def put_file(self, local: Path) -> None:
        self.sftp().put(str(local), str(self.node.data / "baseline.bin"))

    def put_objects(self, blobs: list[bytes]) -> None:
        folder = str(self.node.data / "probe")
        self.sftp().mkdir(folder)

        def put(i: int) -> None:
            sftp, key = self.sftp(), f"{folder}/{i:06d}"
            try:
                sftp.stat(key)
            except FileNotFoundError:
                pass
            with sftp.open(key + ".tmp", "wb") as f:
                f.set_pipelined(True)
                f.write(blobs[i])
            sftp.posix_rename(key + ".tmp", key)

        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(put, range(len(blobs))))


class S3Target:
    def __init__(self, endpoint: str):
        self.bucket = f"bench-{uuid.uuid4().hex[:8]}"
        self.client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                                   aws_access_key_id=SEAWEED_ACCESS,
                                   aws_secret_access_key=SEAWEED_SECRET)
        self.client.create_bucket(Bucket=self.bucket)

    def put_file(self, local: Path) -> None:
        self.client.upload_file(str(local), self.bucket, "baseline.bin")

    def put_objects(self, blobs: list[bytes]) -> None:
        def put(i: int) -> None:
            key = f"probe/{i:06d}"
            try:
                self.client.head_object(Bucket=self.bucket, Key=key)
            except ClientError:
                pass
            self.client.put_object(Bucket=self.bucket, Key=key, Body=blobs[i],
                                   ChecksumAlgorithm="SHA256")

        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(put, range(len(blobs))))

    def stored(self, prefix: str) -> int:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sum(o["Size"] for page in pages for o in page.get("Contents", ()))


def replica_config(node: SshNode, key: Path, known_hosts: Path, endpoint: str, bucket: str,
                   credentials: Path) -> str:
    return f"""
[repositories.sftp]
url = "sftp://root@127.0.0.1:{node.port}{node.data / 'repo'}"
key_file = "{key}"
known_hosts = "{known_hosts}"
[repositories.s3]
url = "s3://{bucket}/repo"
endpoint_url = "{endpoint}"
credentials_file = "{credentials}"
"""


def measure(config: Path, joined: Path, sample: list[bytes], servers: Path) -> dict:
    """Start the servers, time everything; rows of (seconds, CPU seconds) and checks."""
    keygen(servers / "client_key")
    node = SshNode("peer", servers / "peer", free_port())
    node.start((servers / "client_key.pub").read_text())
    known_hosts = servers / "known_hosts"
    known_hosts.write_text(node.known_hosts_line())
    credentials = servers / "s3-credentials"
    credentials.write_text(f"[default]\naws_access_key_id = {SEAWEED_ACCESS}\n"
                           f"aws_secret_access_key = {SEAWEED_SECRET}\n")
    out: dict = {}
    try:
        with seaweed_server(seaweed_binary()) as endpoint:
            sftp, s3 = SftpTarget(node, servers / "client_key", known_hosts), S3Target(endpoint)
            with open(config, "a") as f:
                f.write(replica_config(node, servers / "client_key", known_hosts, endpoint,
                                       s3.bucket, credentials))
            out["startup"], _ = vzbackup(config, "points")  # start-up, config, catalogue
            for name, target in (("sftp", sftp), ("s3", s3)):
                settle()
                wait_after_deletes()
                out[name, "file"] = timed(lambda t=target: t.put_file(joined))
                settle()
                out[name, "objects"] = timed(lambda t=target: t.put_objects(sample))
                settle()
                out[name, "vzbackup"] = vzbackup(config, "replicate", "--to", name)
            out["stored"] = {"sftp": tree_bytes(node.data / "repo"), "s3": s3.stored("repo/")}
    finally:
        node.stop()
    return out


def report(data: int, objects: int, size: int, sample: list[bytes], m: dict) -> None:
    mb, sample_mb = size / 1e6, sum(map(len, sample)) / 1e6
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{platform.platform()}")
    print(f"data: {data / 1e6:.0f} MB of guests; the repository stores {mb:.0f} MB in {objects} "
          f"objects (average {size / objects / 1024:.0f} KiB); vzbackup start-up {m['startup']:.1f} s; "
          f"per-object probe: {len(sample)} of those objects, {THREADS} threads\n")
    print(f"{'':16}{'vzbackup':>11}{'per object':>12}{'one file':>11}{'ratio':>8}   CPU s: "
          "vzbackup / one file")
    for name, what in (("sftp", "SFTP, loopback"), ("s3", "S3, SeaweedFS")):
        (ours, ours_cpu), (probe, _), (base, base_cpu) = (m[name, k] for k in ("vzbackup", "objects", "file"))
        print(f"{what:16}{mb / ours:6.1f} MB/s{sample_mb / probe:7.1f} MB/s{mb / base:6.1f} MB/s"
              f"{base / ours:7.2f}x   {ours_cpu:5.1f} / {base_cpu:4.1f}")
    print("\none file: paramiko SFTPClient.put; boto3 upload_file, default TransferConfig. "
          f"Stored by the replicas: SFTP {m['stored']['sftp'] / 1e6:.0f} MB, "
          f"S3 {m['stored']['s3'] / 1e6:.0f} MB (the repository: {mb:.0f} MB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gib", type=float, default=0.6, help="data to generate (default 0.6)")
    ap.add_argument("--work", type=Path, default=TOP / ".bench-replicate")
    ap.add_argument("--keep", action="store_true", help="leave the work folder in place")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root: the SFTP target is a throwaway sshd")
    work = args.work
    remove(work)
    (work / "dst").mkdir(parents=True)
    src = work / "src"
    src.mkdir()
    print(f"generating {args.gib} GiB of guest-like data in {work} ...", flush=True)
    generate(src, args.gib)
    data = sum(tree_bytes(src / g) for g in ("ct101", "vm200"))
    config = work / "bench.toml"
    config.write_text(bench_config("src", 32, 3))
    vzbackup(config, "repo", "init")
    vzbackup(config, "backup", "--all")
    objects, size = join_objects(work / "repo", work / "objects.bin")
    sample = sample_objects(work / "repo", SAMPLE)
    servers = Path(tempfile.mkdtemp(prefix="vzbackup-bench-"))
    try:
        measured = measure(config, work / "objects.bin", sample, servers)
    finally:
        shutil.rmtree(servers, ignore_errors=True)
    report(data, objects, size, sample, measured)
    if not args.keep:
        remove(work)


if __name__ == "__main__":
    main()
