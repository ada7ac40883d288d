"""Checkpoints of directory guests on a real btrfs (loop device; root): checkpoint, break
the guest, roll back: identical. The free-space guard refuses with the numbers."""

from __future__ import annotations

import subprocess

import pytest

from demo.treedigest import describe, differences
from tests.integration.test_btrfs_snapshots import btrfs  # noqa: F401
from tests.unit.cli.conftest import Lab
from vzbackup.errors import NoSpace

pytestmark = pytest.mark.root


@pytest.fixture
def blab(btrfs, tmp_path, capsys):  # noqa: F811
    config = tmp_path / "vzbackup.toml"
    config.write_text(f"""
[state]
dir = "state"
[backup]
repository = "main"
[repositories.main]
url = "file://repo"
[nodes.node1]
root = "{btrfs}"
snapshotter = "btrfs"
""")
    guest = btrfs / "ct101"
    subprocess.run(["btrfs", "subvolume", "create", str(guest)], check=True, capture_output=True)
    (guest / "rootfs" / "etc").mkdir(parents=True)
    (guest / "rootfs" / "etc" / "app.conf").write_text("version = 1\n")
    (guest / "rootfs" / "data.bin").write_bytes(b"\x01" * 200_000)
    (guest / "guest.conf").write_text("hostname: web1\n")
    return Lab(tmp_path, config, capsys)


def test_checkpoint_break_rollback_identical(blab, btrfs):  # noqa: F811
    lab, guest = blab, btrfs / "ct101"
    before = describe(guest)
    lab.ok("checkpoint", "ct101", "--label", "pre-upgrade")
    (guest / "rootfs" / "etc" / "app.conf").write_text("version = 2, broken\n")
    (guest / "rootfs" / "data.bin").unlink()
    (guest / "rootfs" / "new").write_text("junk\n")
    lab.ok("rollback", "ct101", "pre-upgrade")
    assert differences(before, describe(guest)) == []
    lab.ok("rollback", "ct101", "pre-upgrade")  # the checkpoint stays usable
    lab.ok("checkpoint", "drop", "pre-upgrade")
    assert not list((btrfs / ".checkpoints").iterdir())


def test_a_checkpoint_that_would_overflow_is_refused_with_the_numbers(blab, btrfs):  # noqa: F811
    lab = blab
    with open(btrfs / "ct101" / "rootfs" / "big.bin", "wb", buffering=0) as f:
        while True:  # fill the file system
            try:
                f.write(b"\x02" * (1 << 20))
            except OSError:
                break
    r = lab.run("checkpoint", "ct101", "--label", "too-big")
    assert r.code == NoSpace.exit_code
    assert "checkpoint too-big of ct101 on node node1 refused" in r.err
    assert "needs" in r.err and "available" in r.err and "MiB" in r.err
    assert lab.ok("checkpoints", "--json").json() == []


def test_expired_checkpoints_are_removed_from_the_file_system(blab, btrfs):  # noqa: F811
    from datetime import datetime, timedelta, timezone

    from freezegun import freeze_time

    lab = blab
    lab.ok("checkpoint", "ct101", "--label", "short", "--expire", "1h")
    lab.ok("checkpoint", "ct101", "--label", "long", "--expire", "7d")
    with freeze_time(datetime.now(timezone.utc) + timedelta(hours=2)):
        assert "(expired)" in lab.ok("checkpoints").out
        lab.ok("checkpoint", "drop", "--expired")
    assert sorted(p.name for p in (btrfs / ".checkpoints").iterdir()) == ["ct101@long"]
    assert [c["label"] for c in lab.ok("checkpoints", "--json").json()] == ["long"]

