"""pytest fixtures of a fake PVE cluster (import them into a test module or conftest)."""

from __future__ import annotations

import pytest

from tests.fakes.pve.cluster import FakeCluster


@pytest.fixture
def pve(tmp_path, monkeypatch) -> FakeCluster:
    """Nodes pve1 (this host: $PVE_FAKE_ROOT) and pve2; ct101 (running) and vm200 on pve1,
    ct102 on pve2."""
    cluster = FakeCluster(tmp_path / "pve")
    cluster.add_ct("pve1", 101, "web1", files=30, seed=1)
    cluster.add_vm("pve1", 200, "app", mib=4, seed=2)
    cluster.add_ct("pve2", 102, "db", files=10, seed=3)
    cluster.set_status(101, "running")
    monkeypatch.setenv("PVE_FAKE_ROOT", str(cluster.root("pve1")))
    return cluster
