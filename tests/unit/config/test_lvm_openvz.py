"""Config keys of LVM snapshots and OpenVZ nodes: checked together, named by key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from vzbackup.config import load_config
from vzbackup.errors import ConfigError
from vzbackup.wiring import build_node, node_from_spec

BASE = """
[backup]
repository = "main"
[repositories.main]
url = "file://repo"
[nodes.ovz1]
root = "/var/lib/vz"
"""


def load(tmp_path: Path, extra: str):
    path = tmp_path / "vzbackup.toml"
    path.write_text(BASE + extra)
    return load_config(path)


def test_openvz_node_with_lvm_snapshots(tmp_path):
    config = load(tmp_path, 'platform = "openvz"\nsnapshotter = "lvm"\nlvm_volume = "pve/vz"\n'
                            'lvm_snapshot_size = "512M"\n')
    nc = config.nodes["ovz1"]
    assert (nc.lvm_volume, nc.lvm_snapshot_size, nc.openvz_conf_dir) == ("pve/vz", "512M", "/etc/vz/conf")
    node = build_node(nc)
    assert (node.platform.name, node.snapshotter.name) == ("openvz", "lvm")
    assert (node.snapshotter.volume, node.snapshotter.mountpoint) == ("pve/vz", Path("/var/lib/vz"))


def test_agent_builds_the_same_node_from_the_spec(tmp_path):
    config = load(tmp_path, 'transport = "ssh"\nhost = "ovz1"\nplatform = "openvz"\n'
                            'snapshotter = "lvm"\nlvm_volume = "pve/vz"\nlvm_snapshot_size = ""\n'
                            'lvm_mount_dir = "/mnt/vzb"\n')
    node = build_node(config.nodes["ovz1"])
    local = node_from_spec(node.spec)  # what 'vzbackup agent' does on the node
    s = local.snapshotter
    assert (local.platform.name, s.volume, s.size, str(s.mount_dir), str(s.mountpoint)) == (
        "openvz", "pve/vz", "", "/mnt/vzb", "/var/lib/vz")


@pytest.mark.parametrize("extra, problem", [
    ('snapshotter = "lvm"\n', 'nodes.ovz1.lvm_volume: required with snapshotter = "lvm", as VG/LV'),
    ('snapshotter = "lvm"\nlvm_volume = "vz"\n', "nodes.ovz1.lvm_volume: required"),
    ('snapshotter = "lvm"\nlvm_volume = "pve/vz"\nlvm_snapshot_size = "lots"\n',
     "nodes.ovz1.lvm_snapshot_size: expected a size such as 1G or 512M"),
    ('lvm_volume = "pve/vz"\n', 'nodes.ovz1.lvm_volume: only for snapshotter = "lvm"'),
    ('openvz_conf_dir = "/etc/vz/other"\n', 'nodes.ovz1.openvz_conf_dir: only for platform = "openvz"'),
    ('snapshotter = "lvm"\nlvm_volume = "pve/vz"\nlvm_mount_dir = "mnt"\n',
     "nodes.ovz1.lvm_mount_dir: must be an absolute path on the node"),
])
def test_problems_are_named(tmp_path, extra, problem):
    with pytest.raises(ConfigError) as e:
        load(tmp_path, extra)
    assert problem in str(e.value)


def test_checkpoint_options_are_checked_and_reach_the_snapshotter(tmp_path):
    lvm = 'platform = "openvz"\nsnapshotter = "lvm"\nlvm_volume = "pve/vz"\n'
    with pytest.raises(ConfigError) as e:
        load(tmp_path, lvm + 'lvm_checkpoint_size = "120%"\nlvm_checkpoint_reserve = "lots"\n')
    assert "nodes.ovz1.lvm_checkpoint_size: expected a percentage of the volume" in str(e.value)
    assert "nodes.ovz1.lvm_checkpoint_reserve: expected a size" in str(e.value)
    with pytest.raises(ConfigError) as e:
        load(tmp_path, lvm + "lvm_thin_pool_limit = 0\n")
    assert "nodes.ovz1.lvm_thin_pool_limit: must be at least 1" in str(e.value)
    with pytest.raises(ConfigError) as e:
        load(tmp_path, 'lvm_checkpoint_size = "10%"\n')
    assert "nodes.ovz1.lvm_checkpoint_size: only for snapshotter" in str(e.value)
    nc = load(tmp_path, lvm + 'lvm_checkpoint_size = "8G"\nlvm_thin_pool_limit = 70\n').nodes["ovz1"]
    policy = build_node(nc).snapshotter.volume_checkpoints.policy
    assert (policy.size, policy.reserve, policy.pool_limit) == ("8G", "1G", 70.0)
    spec_node = node_from_spec({"name": "ovz1", "platform": "openvz", "snapshotter": "lvm",
                                "root": "/var/lib/vz", "lvm_volume": "pve/vz",
                                "lvm_checkpoint_size": "8G", "lvm_thin_pool_limit": 70})
    assert spec_node.snapshotter.volume_checkpoints.policy == policy
