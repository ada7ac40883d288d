"""Retention that removes, and garbage collection that gives the space back, from the
command line: 'vzbackup prune', 'vzbackup repo gc', and a job run that prunes."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

from freezegun import freeze_time

from demo.guestdata import make_container
from demo.treedigest import describe, differences

KEEP_ONE = """
[retention.main]
keep_last = 1
"""


def packs_bytes(repo: Path) -> int:
    return sum(p.stat().st_size for p in (repo / "packs").rglob("*") if p.is_file())


def later(hours: float):
    return freeze_time(datetime.now(timezone.utc) + timedelta(hours=hours), tick=True)


def nights(lab, n: int, seed: int = 10) -> None:
    """``n`` backups of ct101, its data replaced each time (nothing to deduplicate)."""
    for i in range(n):
        shutil.rmtree(lab.node("node1") / "ct101")
        make_container(lab.node("node1"), 101, "web1", files=60, mib=2, seed=seed + i)
        lab.ok("backup", "ct101")


def test_prune_removes_what_retention_does_not_keep_and_gc_gives_the_space_back(lab):
    lab.config.write_text(lab.config.read_text() + KEEP_ONE)
    lab.ok("repo", "init")
    nights(lab, 3)
    newest = describe(lab.node("node1") / "ct101" / "rootfs")
    repo = lab.root / "repo"
    full = packs_bytes(repo)

    r = lab.ok("prune", "ct101", "--json").json()
    assert r["result"]["details"]["removed"] == 2
    assert [p["id"] for p in lab.ok("points", "ct101", "--json").json()] == \
        [i["point"] for i in r["plan"] if i["decision"] == "keep"]
    assert len(list((repo / "manifests").iterdir())) == 1
    assert r["result"]["details"]["gc"]["main"]["condemned"] == 0  # young packs: a backup's?
    assert packs_bytes(repo) == full

    with later(49):
        dry = lab.ok("repo", "gc", "--dry-run", "--json").json()[0]["report"]
        assert dry["condemned"] >= 2 and packs_bytes(repo) == full
        first = lab.ok("repo", "gc")
        assert "waiting out the grace period" in first.err
    assert len(list((repo / "garbage").iterdir())) == 1
    assert packs_bytes(repo) == full  # phase 1 deletes nothing
    with later(49 + 47):
        assert lab.ok("repo", "gc", "--json").json()[0]["report"]["deleted"] == 0
    with later(49 + 49):
        report = lab.ok("repo", "gc", "--json").json()[0]["report"]
    assert report["deleted"] >= 2 and report["deleted_bytes"] > full / 2
    assert packs_bytes(repo) < full / 2
    assert list((repo / "garbage").iterdir()) == []

    shutil.rmtree(lab.node("node1") / "ct101")
    lab.ok("restore", "ct101", "--to", "node2")
    assert differences(newest, describe(lab.node("node2") / "ct101" / "rootfs")) == []
    assert lab.ok("verify", "--all", "--json").json()["status"] == "success"


def test_prune_never_removes_the_last_verified_point_even_when_every_newer_one_failed(lab):
    lab.config.write_text(lab.config.read_text() + KEEP_ONE)
    lab.ok("repo", "init")
    nights(lab, 1)
    good = describe(lab.node("node1") / "ct101" / "rootfs")
    lab.ok("verify", "--all")
    (verified,) = [p["id"] for p in lab.ok("points", "ct101", "--json").json()]
    first = set((lab.root / "repo" / "packs").rglob("*"))
    nights(lab, 2, seed=40)
    for pack in set((lab.root / "repo" / "packs").rglob("*")) - first:
        if pack.is_file():  # damage every pack of the two newer points
            data = bytearray(pack.read_bytes())
            data[len(data) // 3] ^= 0x01
            pack.write_bytes(bytes(data))
    newer = [p["id"] for p in lab.ok("points", "ct101", "--json").json() if p["id"] != verified]
    for point in newer:
        assert lab.run("verify", point).code == 7

    r = lab.ok("prune", "ct101", "--json").json()
    reasons = {i["point"]: (i["decision"], i["reason"]) for i in r["plan"]}
    assert reasons[verified] == ("keep", "pinned: newest verified point")
    remaining = {p["id"] for p in lab.ok("points", "ct101", "--json").json()}
    assert verified in remaining
    with later(49):
        lab.ok("repo", "gc")
    with later(98):
        lab.ok("repo", "gc")
    shutil.rmtree(lab.node("node1") / "ct101")
    lab.ok("restore", "ct101", "--to", "node2", "--point", verified)
    assert differences(good, describe(lab.node("node2") / "ct101" / "rootfs")) == []


def test_a_repository_held_by_another_prune_is_left_alone(lab):
    from vzbackup.locks import FileLocks

    lab.config.write_text(lab.config.read_text() + KEEP_ONE)
    lab.ok("repo", "init")
    nights(lab, 2)
    with FileLocks(lab.root / "state").repository("main", "collect garbage in"):
        r = lab.run("prune", "--json")
        gc = lab.run("repo", "gc")
    assert r.code == 11 and gc.code == 11
    assert "cannot collect garbage in repository main" in gc.err
    item = r.json()["result"]["items"][0]
    assert item["status"] == "failed" and "not removed: cannot prune repository main" in item["message"]
    assert len(lab.ok("points", "ct101", "--json").json()) == 2


def test_prune_dry_run_shows_what_gc_would_do_and_changes_nothing(lab):
    lab.config.write_text(lab.config.read_text() + KEEP_ONE)
    lab.ok("repo", "init")
    nights(lab, 2)
    listing = sorted(str(p) for p in (lab.root / "repo").rglob("*"))
    with later(49):
        text = lab.ok("prune", "--dry-run")
    assert "would be removed" in text.err and "taken out of the index" in text.out
    assert sorted(str(p) for p in (lab.root / "repo").rglob("*")) == listing


def test_a_job_run_prunes_its_guests_by_its_retention(lab):
    lab.config.write_text(lab.config.read_text() + """
[jobs.nightly]
schedule = "30 1 * * *"
guests = ["ct101"]
keep_last = 2
""")
    lab.ok("repo", "init")
    for i in range(3):
        shutil.rmtree(lab.node("node1") / "ct101")
        make_container(lab.node("node1"), 101, "web1", files=60, mib=2, seed=70 + i)
        r = lab.ok("run", "nightly", "--json").json()
    assert r["details"]["pruned"] == 1
    assert [s["kind"] for s in r["details"]["steps"]][-1] == "prune"
    assert len(lab.ok("points", "ct101", "--json").json()) == 2


def test_gc_while_a_backup_process_runs_never_costs_it_a_chunk(lab):
    """A backup process deduplicates against garbage, is paused, and GC condemns that
    garbage under it; resumed, it stores those chunks again before its manifest. Then GC
    deletes the condemned packs a grace period later, and the point stays whole."""
    import os
    import signal
    import subprocess
    import time

    lab.config.write_text(lab.config.read_text() + KEEP_ONE)
    lab.add_random_vm("node1", 300, 48)
    disk = lab.node("node1") / "vm300" / "disk-0.raw"
    first = disk.read_bytes()
    lab.ok("repo", "init")
    lab.ok("backup", "vm300")
    disk.write_bytes(os.urandom(len(first)))
    lab.ok("backup", "vm300")
    lab.ok("prune")  # the first point goes: its chunks are garbage...
    packs = lab.root / "repo" / "packs"
    old = time.time() - 3 * 86400
    for f in packs.rglob("*"):
        os.utime(f, (old, old))  # ...in packs older than the grace period
    before = set(packs.rglob("*"))
    expected = first + os.urandom(64 << 20)
    disk.write_bytes(expected)  # that garbage again, then new data
    base, env = lab.subprocess_argv()
    proc = subprocess.Popen(base + ["backup", "vm300"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    while not set(packs.rglob("*")) - before:  # deduplicated, now writing new packs
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.01)
    proc.send_signal(signal.SIGSTOP)
    condemned = lab.ok("repo", "gc", "--json").json()[0]["report"]["condemned"]
    proc.send_signal(signal.SIGCONT)
    assert proc.wait(timeout=120) == 0
    assert condemned >= 1 and "condemned while it ran stored again" in proc.stderr.read().decode()
    newest = lab.ok("points", "vm300", "--json").json()[-1]["id"]
    for hours in (49, 98):
        with later(hours):
            lab.ok("repo", "gc")
    assert lab.ok("verify", "--all", "--json").json()["status"] == "success"
    shutil.rmtree(disk.parent)
    lab.ok("restore", "vm300", "--to", "node2", "--point", newest)
    assert (lab.node("node2") / "vm300" / "disk-0.raw").read_bytes() == expected
