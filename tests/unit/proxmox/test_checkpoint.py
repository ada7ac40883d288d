"""Checkpoints on Proxmox VE nodes (the emulators): pct/qm snapshot, rollback, delsnapshot."""

from __future__ import annotations

import subprocess
from datetime import datetime, timedelta, timezone

from freezegun import freeze_time

from tests.fakes.pve.cluster import BIN
from tests.unit.proxmox.test_cli import plab  # noqa: F401
from vzbackup.errors import CheckpointFailed, UsageError


def test_checkpoint_break_rollback_identical_then_drop(plab):  # noqa: F811
    lab, pve = plab, plab.pve
    f = pve.volume("pve1", "local-lvm:vm-101-disk-0") / "home/demo/f000.txt"
    before = f.read_bytes()
    lab.ok("checkpoint", "ct101", "vm200", "--label", "pre-upgrade", "--expire", "7d")
    listed = lab.ok("checkpoints", "--json").json()
    assert [(c["guest"], c["label"], c["node"]) for c in listed] == [
        ("ct101", "pre-upgrade", "pve1"), ("vm200", "pre-upgrade", "pve1")]
    assert "[pre-upgrade]" in pve.conf_path("pve1", "ct", 101).read_text()
    f.write_bytes(b"broken by the upgrade")
    lab.ok("rollback", "ct101", "pre-upgrade")
    assert f.read_bytes() == before
    lab.ok("checkpoint", "drop", "pre-upgrade")
    assert "[pre-upgrade]" not in pve.conf_path("pve1", "ct", 101).read_text()
    assert lab.ok("checkpoints", "--json").json() == []


def test_a_group_is_all_or_nothing(plab):  # noqa: F811
    lab, pve = plab, plab.pve
    pve.add_ct("pve1", 103, "nosnap", storage="local")  # dir storage: no snapshots
    r = lab.run("checkpoint", "ct101", "ct103", "--label", "grp")
    assert r.code == CheckpointFailed.exit_code
    assert "grp" in r.err and "ct103" in r.err and "snapshot feature is not available" in r.err
    assert "[grp]" not in pve.conf_path("pve1", "ct", 101).read_text()  # ct101's was removed
    assert lab.ok("checkpoints", "--json").json() == []


def test_expired_checkpoints_are_dropped_and_bad_input_refused(plab):  # noqa: F811
    lab, pve = plab, plab.pve
    lab.ok("checkpoint", "ct101", "--label", "short", "--expire", "1h")
    lab.ok("checkpoint", "ct101", "--label", "long", "--expire", "7d")
    later = datetime.now(timezone.utc) + timedelta(hours=2)
    with freeze_time(later):
        assert "(expired)" in lab.ok("checkpoints").out
        lab.ok("checkpoint", "drop", "--expired")
    assert [c["label"] for c in lab.ok("checkpoints", "--json").json()] == ["long"]
    text = pve.conf_path("pve1", "ct", 101).read_text()
    assert "[short]" not in text and "[long]" in text
    assert lab.run("checkpoint", "ct101", "--label", "Bad Label").code == UsageError.exit_code
    assert lab.run("checkpoint", "ct101", "--label", "x2", "--expire", "soon").code == UsageError.exit_code
    r = lab.run("checkpoint", "ct101", "--label", "long")
    assert r.code == CheckpointFailed.exit_code and "already exists" in r.err
    r = lab.run("rollback", "ct101", "nope")
    assert r.code == CheckpointFailed.exit_code and "vzbackup checkpoints" in r.err


def test_prune_lists_and_a_job_run_drops_expired_checkpoints(plab):  # noqa: F811
    lab, pve = plab, plab.pve
    lab.config.write_text(lab.config.read_text()
                          + '\n[jobs.nightly]\nschedule = "30 1 * * *"\nguests = ["ct102"]\n')
    lab.ok("checkpoint", "ct101", "--label", "old", "--expire", "1h")
    lab.ok("checkpoint", "ct101", "--label", "keep")
    with freeze_time(datetime.now(timezone.utc) + timedelta(hours=2)):
        assert "expired checkpoints: old of ct101" in lab.ok("prune", "--dry-run").err
        details = lab.ok("run", "nightly", "--json").json()["details"]
    assert details["checkpoints_expired_dropped"] == 1
    assert [c["label"] for c in lab.ok("checkpoints", "--json").json()] == ["keep"]
    text = pve.conf_path("pve1", "ct", 101).read_text()
    assert "[old]" not in text and "[keep]" in text


def test_with_backup_rollback_restores_the_point_when_the_snapshot_is_gone(plab):  # noqa: F811
    lab, pve = plab, plab.pve
    f = pve.volume("pve1", "local-lvm:vm-101-disk-0") / "home/demo/f000.txt"
    before = f.read_bytes()
    lab.ok("checkpoint", "ct101", "--label", "pre", "--with-backup")
    point = lab.ok("points", "ct101", "--json").json()[0]
    assert point["labels"]["checkpoint"] == "pre"
    subprocess.run([str(BIN / "pct"), "delsnapshot", "101", "pre"], check=True,
                   capture_output=True)  # the snapshot is lost behind vzbackup's back
    f.write_bytes(b"broken")
    r = lab.run("rollback", "ct101", "pre")
    assert r.code == CheckpointFailed.exit_code
    assert point["id"][:12] in r.err and "--to NODE" in r.err
    pve.set_status(101, "stopped")
    lab.ok("rollback", "ct101", "pre", "--to", "pve1")
    volid = pve.conf("pve1", "ct", 101)["rootfs"].split(",")[0]
    assert (pve.volume("pve1", volid) / "home/demo/f000.txt").read_bytes() == before


def test_a_rebuilt_catalogue_lists_the_checkpoints_still_taken(plab):  # noqa: F811
    """Promise 6: each checkpoint is noted in the backup repository, and a drop too."""
    lab = plab
    lab.ok("checkpoint", "ct101", "vm200", "--label", "pre-upgrade", "--expire", "7d")
    lab.ok("checkpoint", "ct101", "--label", "older")
    lab.ok("checkpoint", "drop", "older")
    before = lab.ok("checkpoints", "--json").json()
    (lab.root / "state" / "catalog.db").unlink()
    for leftover in (lab.root / "state").glob("catalog.db-*"):
        leftover.unlink()
    assert lab.ok("checkpoints", "--json").json() == []
    r = lab.ok("catalog", "rebuild")
    assert "2 checkpoint(s) restored" in r.err
    assert lab.ok("checkpoints", "--json").json() == before  # "older" stays dropped
    lab.ok("rollback", "ct101", "pre-upgrade")  # the rows point at the real snapshots
