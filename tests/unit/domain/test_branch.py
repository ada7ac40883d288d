"""The pure part of branches: names, one consistent set of points, the branch network."""

from __future__ import annotations

import os

from datetime import datetime, timedelta, timezone

import pytest

from vzbackup.domain.branch import branch_network, check_branch_name, pick_points
from vzbackup.domain.clone import clone_config
from vzbackup.domain.guests import GuestRef
from vzbackup.domain.points import RestorePoint

T0 = datetime(2026, 11, 20, 2, 0, tzinfo=timezone.utc)
CT101, CT102 = GuestRef("ct", 101), GuestRef("ct", 102)


def point(guest: GuestRef, hours: int) -> RestorePoint:
    return RestorePoint(f"{guest}-{hours}", guest, str(guest), T0 + timedelta(hours=hours), 1, 1, "n")


@pytest.mark.parametrize("name, ok", [("expo-2026", True), ("a", True), ("demo.v2_x", True),
                                      ("Expo", False), ("-x", False), ("", False), ("a/b", False),
                                      ("x" * 64, False)])
def test_branch_names(name, ok):
    assert (check_branch_name(name) is None) == ok


def test_each_guest_newest_point_at_or_before_one_time_and_those_without():
    points = {CT101: [point(CT101, 0), point(CT101, 24)], CT102: [point(CT102, 30)]}
    chosen, lacking = pick_points(points, T0 + timedelta(hours=25))
    assert {g: p.id for g, p in chosen.items()} == {CT101: "ct101-24"} and lacking == [CT102]
    chosen, lacking = pick_points(points, None)
    assert {g: p.id for g, p in chosen.items()} == {CT101: "ct101-24", CT102: "ct102-30"}
    assert lacking == []


def test_isolated_or_one_branch_bridge_never_a_production_one():
    conf = {"net0": "name=eth0,bridge=vmbr0,hwaddr=AA:BB:CC:DD:EE:01,ip=10.0.0.5/24,gw=10.0.0.1",
            "net1": "name=eth1,bridge=vmbr1,hwaddr=AA:BB:CC:DD:EE:02,ip=dhcp"}
    iso = branch_network(None, {"vmbr0", "vmbr1"})
    out = clone_config(conf, hostname="h", network=iso.map_for(conf), randbytes=os.urandom)
    assert all("bridge=" not in v and "10.0.0" not in v for v in (out["net0"], out["net1"]))
    br = branch_network("vmbr99", {"vmbr0", "vmbr1"})
    out = clone_config(conf, hostname="h", network=br.map_for(conf), randbytes=os.urandom)
    assert all("bridge=vmbr99" in out[k] for k in ("net0", "net1")) and "gw=" not in out["net0"]
    with pytest.raises(ValueError, match="production bridge"):
        branch_network("vmbr1", {"vmbr0", "vmbr1"})
    with pytest.raises(ValueError):
        branch_network("vmbr0=vmbr9", set())

