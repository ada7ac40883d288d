"""Two real ``vzbackup daemon`` processes on the demo config (config/demo.toml, with a
drop-in: one PostgreSQL catalogue, a one-minute cron schedule, a btrfs node): one schedules,
the other stands by; each job runs once, one summary each;
SIGTERM in the middle of a dump (btrfs snapshot on a loop device) removes the snapshot and
records the run as aborted; the standby then takes over.

Waits for the next minute boundary (at most 60 s)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from demo.guestdata import make_container, write_guest_config
from tests.integration.test_btrfs_snapshots import btrfs, run  # noqa: F401  (fixture)
from vzbackup.catalog import open_catalog
from vzbackup.snapshots.btrfs import PREFIX

pytestmark = [pytest.mark.root, pytest.mark.server, pytest.mark.slow]
TOP = Path(__file__).resolve().parents[2]


class Webhook:
    def __init__(self):
        self.posts: list[dict] = []
        posts = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def of(self, job: str) -> list[dict]:
        return [p for p in self.posts if p["run"]["details"]["job"] == job]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Notifications:
    """The NOTIFY_SOCKET a daemon sends its sd_notify datagrams to."""

    def __init__(self, path: Path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.seen: list[str] = []

    def poll(self) -> list[str]:
        while True:
            try:
                self.seen.append(self.sock.recv(4096).decode())
            except (TimeoutError, socket.timeout):
                return self.seen


def wait_for(what, timeout: float, why: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {why}")


def snapshots(mnt: Path) -> list[str]:
    return sorted(p.name for p in mnt.iterdir() if p.name.startswith(PREFIX))


def test_two_daemons_one_minute_schedule_sigterm_mid_dump(btrfs, pg_url, tmp_path):  # noqa: F811
    site = tmp_path / "site"
    config = site / "config" / "vzbackup.toml"  # the demo's paths: ../.demo-lab/...
    (site / "config" / "conf.d").mkdir(parents=True)
    config.write_text((TOP / "config" / "demo.toml").read_text())
    for node in ("node1", "node3", "node7"):
        (site / ".demo-lab" / node).mkdir(parents=True)
    make_container(site / ".demo-lab" / "node1", 101, "web1", files=40, mib=1, seed=1)
    run("btrfs", "subvolume", "create", str(btrfs / "vm300"))
    write_guest_config(btrfs / "vm300", {"name": "big", "scsi0": "disk-0.raw"})
    with open(btrfs / "vm300" / "disk-0.raw", "wb") as f:
        f.write(os.urandom(64 << 20))
    hook = Webhook()
    (site / "config" / "conf.d" / "test.toml").write_text(f"""
[catalog]
url = "{pg_url}"
[nodes.node9]
root = "{btrfs}"
snapshotter = "btrfs"
[repositories.slow]
url = "file://../.demo-lab/slow"
bwlimit_mib = 8
[jobs.nightly]
schedule = "* * * * *"
all = false
nodes = ["node1", "node3", "node7"]
verify_after = "none"
[jobs.big]
schedule = "* * * * *"
nodes = ["node9"]
repository = "slow"
verify_after = "none"
[daemon]
standby_poll_seconds = 1
[alerts]
webhook_url = "http://127.0.0.1:{hook.port}/"
""")
    env = {**os.environ, "PYTHONPATH": str(TOP)}
    base = [sys.executable, "-m", "vzbackup", "--config", str(config)]
    for name in ("main", "slow"):
        subprocess.run(base + ["repo", "init", name], check=True, env=env, capture_output=True)
    sockets = [Notifications(tmp_path / f"notify{i}") for i in (1, 2)]
    logs = [open(tmp_path / f"d{i}.log", "wb") for i in (1, 2)]
    procs = [subprocess.Popen(base + ["daemon"], env={**env, "NOTIFY_SOCKET": s.path},
                              stdout=subprocess.DEVNULL, stderr=log)
             for s, log in zip(sockets, logs)]
    try:
        for s in sockets:
            wait_for(lambda s=s: "READY=1" in s.poll(), 20, "READY=1")
        status = [[m for m in s.poll() if m.startswith("STATUS=")] for s in sockets]
        assert sorted(st[0] for st in status) == ["STATUS=scheduling", "STATUS=standing by"]
        leader = 0 if status[0][0] == "STATUS=scheduling" else 1
        # the next minute boundary: nightly is done in a second, big dumps at 8 MiB/s
        wait_for(lambda: hook.of("nightly"), 75, "the summary of job nightly")
        wait_for(lambda: snapshots(btrfs), 10, "the snapshot of vm300")
        procs[leader].send_signal(signal.SIGTERM)
        assert procs[leader].wait(30) == 0
        assert snapshots(btrfs) == []
        standby = sockets[1 - leader]
        wait_for(lambda: "STATUS=scheduling" in standby.poll(), 10, "the standby to take over")
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(30)
        hook.close()
        for log in logs:
            log.close()
    catalog = open_catalog(pg_url)
    try:
        runs = catalog.runs(50)
    finally:
        catalog.close()
    first = min(r.started for r in runs if r.kind == "job")
    night = [r for r in runs if r.started < first + timedelta(seconds=40)]
    jobs = {r.args["job"]: r for r in night if r.kind == "job"}
    assert sorted(r.args["job"] for r in night if r.kind == "job") == ["big", "nightly"]
    assert jobs["nightly"].status == "success" and jobs["big"].status == "aborted"
    assert jobs["nightly"].args["trigger"] == "schedule"
    big_backup = [r for r in night if r.kind == "backup" and r.args["job_run"] == jobs["big"].id]
    assert [r.status for r in big_backup] == ["aborted"]
    assert len(hook.of("nightly")) == 1 and hook.of("nightly")[0]["run"]["status"] == "success"
    assert [p["run"]["details"].get("aborted") for p in hook.of("big")] == ["vzbackup was stopped"]
    log = (tmp_path / f"d{leader + 1}.log").read_text()
    assert "aborting running dumps" in log
