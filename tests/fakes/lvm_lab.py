"""A pytest fixture that puts the LVM2 emulator first on PATH, with one volume group."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

FAKES = Path(__file__).resolve().parent
BIN = FAKES / "bin"
if str(FAKES) not in sys.path:
    sys.path.insert(0, str(FAKES))

import lvm_state  # noqa: E402


@dataclass
class FakeLvm:
    state: Path

    def volume(self, vg_lv: str, data_dir: Path, size: int = 8 << 30, *, kind: str = "linear",
               pool: str = "") -> None:
        """An LV (``vg/lv``) whose file system is ``data_dir``, mounted there."""
        vg, _, lv = vg_lv.partition("/")
        with lvm_state.locked(self.state) as base:
            if not lvm_state.vg_exists(base, vg):
                lvm_state.create_vg(base, vg, 64 << 30)
            lvm_state.create_lv(base, vg, lv, size, data_dir, kind=kind, pool=pool)

    def vg(self, vg: str, size: int) -> None:
        """Volume group ``vg`` of ``size`` bytes (before any ``volume`` in it)."""
        with lvm_state.locked(self.state) as base:
            lvm_state.create_vg(base, vg, size)

    def thin_pool(self, vg_lv: str, size: int) -> None:
        """A thin pool ``vg/pool`` (thin volumes: ``volume(..., kind="thin", pool=...)``)."""
        vg, _, lv = vg_lv.partition("/")
        data = self.state / vg / "data" / lv
        with lvm_state.locked(self.state) as base:
            if not lvm_state.vg_exists(base, vg):
                lvm_state.create_vg(base, vg, 64 << 30)
            data.mkdir(parents=True)
            lvm_state.create_lv(base, vg, lv, size, data, kind="pool", mounted=False)

    def fill_pool(self, vg_lv: str, data: float, metadata: float = 0.0) -> None:
        lvm_state.fill_pool(vg_lv, data, metadata, self.state)

    def write_origin(self, vg_lv: str, nbytes: int) -> list[str]:
        return lvm_state.write_origin(vg_lv, nbytes, self.state)

    def lvs(self, vg: str) -> list[lvm_state.LV]:
        return lvm_state.all_lvs(self.state, vg)

    def run(self, *argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / argv[0]), *argv[1:]], input=stdin, capture_output=True,
                              text=True)


@pytest.fixture
def fake_lvm(tmp_path, monkeypatch) -> FakeLvm:
    """The emulated lvcreate, lvs, vgs, lvremove, mount and umount first on PATH (for this
    process and its children), their state in ``tmp_path/lvm``."""
    state = tmp_path / "lvm"
    state.mkdir()
    monkeypatch.setenv(lvm_state.ROOT_ENV, str(state))
    monkeypatch.setenv("PATH", f"{BIN}:{__import__('os').environ['PATH']}")
    return FakeLvm(state)
