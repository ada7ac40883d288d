"""A sweep of an SSH node runs through its agent: 'snapshots' lists the node's leftovers,
'snapshot-remove' removes one (the controller holds the guest's lock meanwhile)."""

from __future__ import annotations

import io
import json

from tests.fakes.lvm_lab import FakeLvm
from vzbackup.cli.agent import run_job
from vzbackup.nodes.frames import PROTOCOL, read_frame


def agent(job: dict, spec: dict) -> dict:
    out = io.BytesIO()
    line = json.dumps({"protocol": PROTOCOL, "node": spec, **job}).encode() + b"\n"
    run_job(io.BytesIO(line), out)
    out.seek(0)
    _kind, payload = read_frame(out, "agent")
    return json.loads(payload)


def test_agent_lists_and_removes_leftovers(fake_lvm: FakeLvm, tmp_path):
    vz = tmp_path / "vz"
    vz.mkdir()
    fake_lvm.volume("vg0/vz", vz)
    fake_lvm.run("lvcreate", "-s", "-L", "8M", "-n", "vzbackup-node7-ct101-1a2b3c4d",
                 "--addtag", "vzbackup", "vg0/vz")
    spec = {"name": "node7", "platform": "directory", "snapshotter": "lvm", "root": str(vz),
            "cache_dir": "", "lvm_volume": "vg0/vz", "lvm_mountpoint": "",
            "lvm_snapshot_size": "1G", "lvm_mount_dir": str(tmp_path / "mnt"),
            "openvz_conf_dir": "/etc/vz/conf"}
    listed = agent({"op": "snapshots"}, spec)["done"]["leftovers"]
    assert listed == [{"id": "vg0/vzbackup-node7-ct101-1a2b3c4d", "guest": "ct101", "kind": "lvm",
                       "detail": "snapshot of vg0/vz, 0% full"}]
    assert agent({"op": "snapshot-remove", "leftover": listed[0]}, spec) == {"done": {}}
    assert [lv.name for lv in fake_lvm.lvs("vg0")] == ["vz"]
    refused = agent({"op": "snapshot-remove", "leftover": {**listed[0], "id": "vg0/vz"}}, spec)
    assert "is not a vzbackup snapshot of this node: not removed" in refused["error"]["message"]
