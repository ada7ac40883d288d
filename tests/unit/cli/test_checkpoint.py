"""Checkpoints on the directory platform without a snapshotter that keeps snapshots."""

from __future__ import annotations

from vzbackup.errors import CheckpointFailed


def test_checkpoint_refused_without_btrfs_naming_guest_node_label_and_next_step(lab):
    r = lab.run("checkpoint", "ct101", "--label", "pre-upgrade")
    assert r.code == CheckpointFailed.exit_code
    assert "checkpoint pre-upgrade of ct101 on node node1" in r.err
    assert "btrfs" in r.err and "next step" in r.err
    assert lab.ok("checkpoints", "--json").json() == []
    assert "checkpoint" in lab.ok("checkpoint", "--help").out
