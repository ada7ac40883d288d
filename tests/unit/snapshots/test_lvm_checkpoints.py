"""``LvmCheckpoints`` against the LVM emulator, on each lvm2 version's report shape."""

from __future__ import annotations

import pytest

from tests.fakes import lvm_state
from vzbackup.snapshots import lvmtools
from vzbackup.snapshots.lvm import LvmSnapshotter
from vzbackup.snapshots.lvmcheckpoints import CheckpointPolicy, LvmCheckpoints


@pytest.mark.parametrize("version", ["2.03.11", "2.03.16", "2.03.31"])
def test_vgs_is_read_on_every_version_even_with_a_stray_line(fake_lvm, tmp_path, monkeypatch,
                                                             version):
    monkeypatch.setenv(lvm_state.VERSION_ENV, version)  # 2.03.31: a "log" block
    monkeypatch.setenv(lvm_state.STRAY_ENV, "  WARNING: something informational")
    fake_lvm.vg("vg0", 10 << 30)
    fake_lvm.volume("vg0/vz", tmp_path, 2 << 30)
    vg = lvmtools.vg_report("vg0")
    assert (vg.size, vg.free, vg.extent_size, vg.extents, vg.free_extents) == (
        10 << 30, 8 << 30, 4 << 20, 2560, 2048)


def test_snapshot_size_is_a_percentage_or_a_size_in_whole_extents(fake_lvm, tmp_path):
    snap = LvmSnapshotter("vg0/vz", tmp_path, "n1")
    ext = 4 << 20

    def size(spec: str, origin: int = 4 << 30) -> int:
        return LvmCheckpoints(snap, CheckpointPolicy(size=spec)).snapshot_bytes(origin, ext)

    assert size("20%") == 205 * ext  # 819.2 MiB rounded up
    assert size("1G") == 1 << 30 and size("100M") == 100 << 20 and size("1") == ext
    assert size("200%") == 4 << 30 and size("8G") == 4 << 30  # at most the origin
