"""``vzbackup snapshots sweep`` removes what a crashed run left, and only that."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from tests.fakes.lvm_lab import BIN

OURS = "vzbackup-node3-ct1101-1a2b3c4d"


def leave(ovz, name: str, *tags: str) -> None:
    argv = [str(BIN / "lvcreate"), "-s", "-L", "8M", "-n", name, "vg0/vz"]
    for tag in tags:
        argv += ["--addtag", tag]
    subprocess.run(argv, check=True, capture_output=True)


def test_sweep_removes_only_vzbackups_own(ovz):
    lab = ovz.lab
    leave(ovz, OURS, "vzbackup")
    leave(ovz, "vzbackup-node9-ct1102-1a2b3c4d", "vzbackup")  # another node's, on a shared VG
    leave(ovz, "vzbackup-node3-ct1103-1a2b3c4d")  # right name, not tagged by vzbackup
    leave(ovz, "vzsnap-node3-0", "vzbackup")  # vzdump's own
    leave(ovz, "nightly", "vzbackup")
    r = lab.run("snapshots", "sweep", "--dry-run", "--json")
    assert r.code == 1
    [item] = json.loads(r.out)["data"]["items"]
    assert item["guest"] == "ct1101" and "would be removed" in item["message"]
    assert OURS in ovz.snapshot_lvs()
    r = lab.run("snapshots", "sweep", "--node", "node3")
    assert r.code == 1 and f"lvm snapshot vg0/{OURS} (snapshot of vg0/vz, 0% full) removed" in r.err
    assert sorted(ovz.snapshot_lvs()) == ["nightly", "vzbackup-node3-ct1103-1a2b3c4d",
                                          "vzbackup-node9-ct1102-1a2b3c4d", "vzsnap-node3-0"]
    assert lab.run("snapshots", "sweep").code == 0  # nothing left to do


def test_sweep_unmounts_a_leftover_of_a_killed_backup(ovz, monkeypatch):
    """A backup killed (SIGKILL) while its snapshot was mounted and being read."""
    lab = ovz.lab
    lab.ok("repo", "init")
    for i in range(300):
        (ovz.vz / "private" / "1101" / "var/www" / f"big{i}").write_bytes(bytes(200_000))
    argv, env = lab.subprocess_argv("backup", "ct1101")
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not any(p.is_symlink() for p in ovz.mnt.glob("*")) and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    assert len(ovz.snapshot_lvs()) == 1
    r = lab.run("snapshots", "sweep", "--json")
    assert r.code == 1, r
    assert ovz.snapshot_lvs() == [] and list(ovz.mnt.iterdir()) == []


def test_snapshot_of_a_guest_being_backed_up_is_kept(ovz):
    lab = ovz.lab
    leave(ovz, OURS, "vzbackup")
    code = ("import sys, time; from pathlib import Path; from vzbackup.locks import FileLocks;"
            "from vzbackup.domain.guests import GuestRef;"
            "cm = FileLocks(Path(sys.argv[1])).guest(GuestRef('ct', 1101), 'backup'); cm.__enter__();"
            "print('locked', flush=True); time.sleep(30)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(lab.root / "state")],
                              stdout=subprocess.PIPE, text=True, env=lab.subprocess_argv()[1])
    try:
        assert holder.stdout.readline() == "locked\n"
        r = lab.run("snapshots", "sweep", "--json")
        [item] = json.loads(r.out)["data"]["items"]
        assert "kept: its guest is locked by a running job" in item["message"]
        assert OURS in ovz.snapshot_lvs()
    finally:
        holder.kill()
        holder.wait()


def test_sigterm_mid_dump_unmounts_and_removes_the_snapshot(ovz):
    lab = ovz.lab
    lab.ok("repo", "init")
    for i in range(300):
        (ovz.vz / "private" / "1101" / "var/www" / f"big{i}").write_bytes(bytes(200_000))
    argv, env = lab.subprocess_argv("backup", "ct1101")
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not any(p.is_symlink() for p in ovz.mnt.glob("*")) and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.terminate()
    assert proc.wait(timeout=60) == 128 + 15
    assert ovz.snapshot_lvs() == [] and list(ovz.mnt.iterdir()) == []
    assert lab.ok("points", "--json").json() == []
