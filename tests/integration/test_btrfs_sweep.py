"""``vzbackup snapshots sweep`` on a real btrfs (loop device, root): the btrfs snapshots a
crashed run left are removed, and nothing else."""

from __future__ import annotations

import json

import pytest

from tests.integration.test_btrfs_snapshots import btrfs, run, snapshots, subvolume_with_file  # noqa: F401
from tests.unit.cli.conftest import Lab
from vzbackup.snapshots.btrfs import PREFIX

pytestmark = pytest.mark.root


@pytest.fixture
def btrfs_lab(btrfs, tmp_path, capsys) -> Lab:  # noqa: F811
    config = tmp_path / "vzbackup.toml"
    config.write_text(f"""
[state]
dir = "{tmp_path / 'state'}"
[backup]
repository = "main"
[nodes.bnode]
root = "{btrfs}"
snapshotter = "btrfs"
[repositories.main]
url = "file://{tmp_path / 'repo'}"
""")
    return Lab(tmp_path, config, capsys)


def test_sweep_removes_vzbackups_btrfs_leftovers_only(btrfs_lab, btrfs):  # noqa: F811
    guest = subvolume_with_file(btrfs)
    ours = f"{PREFIX}ct101-1a2b3c4d"
    run("btrfs", "subvolume", "snapshot", "-r", str(guest), str(btrfs / ours))
    run("btrfs", "subvolume", "snapshot", "-r", str(guest), str(btrfs / "user-snapshot"))
    (btrfs / f"{PREFIX}ct102-plain-dir").mkdir()  # the right name, but not a subvolume
    r = btrfs_lab.run("snapshots", "sweep", "--dry-run", "--json")
    [item] = json.loads(r.out)["data"]["items"]
    assert (r.code, item["guest"]) == (1, "ct101") and "would be removed" in item["message"]
    assert ours in snapshots(btrfs)
    r = btrfs_lab.run("snapshots", "sweep", "--node", "bnode")
    assert r.code == 1 and f"btrfs snapshot {btrfs / ours}" in r.err
    assert sorted(p.name for p in btrfs.iterdir()) == [f"{PREFIX}ct102-plain-dir", "ct101",
                                                       "user-snapshot"]
    btrfs_lab.ok("repo", "init")
    btrfs_lab.ok("backup", "ct101")  # a clean run leaves nothing to sweep
    assert btrfs_lab.run("snapshots", "sweep").code == 0
