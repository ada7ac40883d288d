"""A backup killed with SIGKILL at any moment leaves no half restore point, and the next
backup succeeds (DESIGN: manifest last)."""

from __future__ import annotations

import signal
import subprocess
import time


def test_sigkill_at_any_moment_leaves_only_whole_points(lab):
    lab.add_random_vm("node1", 300, 96)
    base, env = lab.subprocess_argv("--quiet")
    subprocess.run(base + ["repo", "init"], check=True, env=env)
    for delay in (0.3, 0.6, 0.9, 1.2, 1.6):
        proc = subprocess.Popen(base + ["backup", "--all"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        points = lab.ok("points", "--json").json()
        for p in points:  # whatever is listed is whole
            assert lab.run("verify", p["id"]).code == 0
    lab.ok("backup", "--all")
    r = lab.ok("verify", "--all", "--json").json()
    assert r["status"] == "success"
    assert {i["guest"] for i in r["items"]} >= {"ct101", "vm200", "vm300"}
