"""State of the LVM2 emulator (tests/fakes/bin/lvcreate, lvs, vgs, lvremove, mount, umount).

Facts: shared/reference/pve.md section 11 (lvm2 2.03.16, the PVE 8 version, unless
FAKE_LVM_VERSION says otherwise). Everything lives in a directory (``FAKE_LVM_ROOT``):

    <root>/<vg>/vg.json          extent size and number of extents
    <root>/<vg>/lvs/<lv>.json    one LV: kind, size, origin, tags, state, mounts
    <root>/<vg>/data/<lv>/       a snapshot's frozen content

Simplifications (the kernel has no device-mapper here, so nothing is a block device):
- an LV *is* a directory: an origin's ``data_dir`` is any folder the test chose (its
  "file system"); a snapshot is a copy of that folder taken by ``lvcreate -s``;
- copy-on-write is counted, not done: the test calls ``write_origin`` to say how many
  bytes of the origin changed; every active COW snapshot of it fills by that much, and one
  that overflows becomes invalid (attr ``swi-I-s---``, 100.00%) and its content vanishes,
  so that reads through a mount fail as the kernel's I/O errors would;
- ``mount DEV DIR`` replaces the empty folder DIR by a symlink to the LV's content and
  counts the LV open; ``umount DIR`` puts the empty folder back. Read-only is not enforced.
- thin pools have no data limit (a thin snapshot never overflows); how full a pool is
  (``data_percent``, ``metadata_percent`` in ``lvs``) is what the test sets (``fill_pool``);
- dmeventd's messages go to ``<root>/dmeventd.log`` (syslog on a real node); it never
  extends a snapshot (``snapshot_autoextend_threshold`` 100, the default) nor unmounts one.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

EXTENT = 4 << 20  # the default physical extent size
ROOT_ENV = "FAKE_LVM_ROOT"
VERSION_ENV = "FAKE_LVM_VERSION"  # e.g. 2.03.11 (PVE 7), 2.03.16 (PVE 8), 2.03.31 (PVE 9)
NO_DM_ENV = "FAKE_LVM_NO_DM"  # "1": like this lab's kernel, no device-mapper
STRAY_ENV = "FAKE_LVM_STRAY_LINE"  # a non-JSON line printed inside the JSON report
WRITES_AFTER_MOUNT_ENV = "FAKE_LVM_WRITES_AFTER_MOUNT"  # "vg/lv=9M": origin writes once a
# snapshot is mounted (what a busy guest does during the dump), applied by ``mount``


class LvmError(Exception):
    """A runtime failure: ``message`` as LVM prints it (without the indent), exit 5."""

    def __init__(self, message: str, code: int = 5):
        super().__init__(message)
        self.message, self.code = message, code


@dataclass
class LV:
    name: str
    kind: str  # linear | cow | thin | pool
    size: int  # bytes (COW snapshot: its COW area)
    origin: str = ""
    pool: str = ""
    tags: list[str] = field(default_factory=list)
    active: bool = True
    writable: bool = True
    skip_activation: bool = False
    data_dir: str = ""  # where the LV's "file system" is
    cow_used: int = 0
    invalid: bool = False
    mounts: list[str] = field(default_factory=list)
    created: float = 0.0
    pool_data: float = 0.0  # thin pool: percent of its data / metadata used (``fill_pool``)
    pool_metadata: float = 0.0

    def attr(self, has_snapshots: bool) -> str:
        vol = {"cow": "s", "thin": "V", "pool": "t"}.get(self.kind, "o" if has_snapshots else "-")
        perm = "w" if self.writable else "r"
        state = "I" if self.invalid else ("a" if self.active else "-")
        opened = "o" if self.mounts else "-"
        target = "s" if self.kind == "cow" or (has_snapshots and self.kind == "linear") else (
            "t" if self.kind in ("thin", "pool") else "-")
        zero = "z" if self.kind in ("thin", "pool") else "-"
        skip = "k" if self.skip_activation else "-"
        return f"{vol}{perm}i-{state}{opened}{target}{zero}-{skip}"

    def data_percent(self) -> str:
        if not self.active and not self.invalid:
            return ""
        if self.kind == "cow":
            return "100.00" if self.invalid else f"{100.0 * self.cow_used / self.size:.2f}"
        if self.kind == "pool":
            return f"{self.pool_data:.2f}"
        if self.kind == "thin":
            return "0.00"
        return ""

    def metadata_percent(self) -> str:
        return f"{self.pool_metadata:.2f}" if self.kind == "pool" and self.active else ""


def version() -> tuple[int, ...]:
    return tuple(int(x) for x in os.environ.get(VERSION_ENV, "2.03.16").split("."))


def root() -> Path:
    value = os.environ.get(ROOT_ENV)
    if not value:
        raise LvmError(f"emulator: {ROOT_ENV} is not set", code=4)
    return Path(value)


@contextmanager
def locked(base: Path | None = None) -> Iterator[Path]:
    """The state under an exclusive lock (LVM's own global lock, in effect)."""
    base = base or root()
    base.mkdir(parents=True, exist_ok=True)
    with open(base / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield base


# ---- volume groups and volumes -------------------------------------------------------------


def create_vg(base: Path, vg: str, size: int) -> None:
    (base / vg / "lvs").mkdir(parents=True, exist_ok=True)
    (base / vg / "data").mkdir(exist_ok=True)
    (base / vg / "vg.json").write_text(json.dumps({"extent_size": EXTENT, "extents": size // EXTENT}))


def create_lv(base: Path, vg: str, name: str, size: int, data_dir: Path, *,
              kind: str = "linear", pool: str = "", mounted: bool = True) -> LV:
    """An LV holding a file system whose content is ``data_dir``, mounted there (test
    set-up: in real life lvcreate, mkfs and mount)."""
    lv = LV(name, kind, _round(size), pool=pool, data_dir=str(data_dir), created=time.time(),
            mounts=[os.path.abspath(data_dir)] if mounted else [])
    save(base, vg, lv)
    return lv


def vg_exists(base: Path, vg: str) -> bool:
    return (base / vg / "vg.json").is_file()


def vg_info(base: Path, vg: str) -> dict:
    return json.loads((base / vg / "vg.json").read_text())


def vgs(base: Path) -> list[str]:
    return sorted(p.parent.name for p in base.glob("*/vg.json"))


def load(base: Path, vg: str, name: str) -> LV | None:
    path = base / vg / "lvs" / f"{name}.json"
    if not path.is_file():
        return None
    return LV(**json.loads(path.read_text()))


def all_lvs(base: Path, vg: str) -> list[LV]:
    return [LV(**json.loads(p.read_text())) for p in sorted((base / vg / "lvs").glob("*.json"))]


def save(base: Path, vg: str, lv: LV) -> None:
    path = base / vg / "lvs" / f"{lv.name}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(lv)))
    os.replace(tmp, path)


def delete(base: Path, vg: str, lv: LV) -> None:
    (base / vg / "lvs" / f"{lv.name}.json").unlink()
    shutil.rmtree(base / vg / "data" / lv.name, ignore_errors=True)


def free_extents(base: Path, vg: str) -> int:
    used = sum(lv.size // EXTENT for lv in all_lvs(base, vg) if lv.kind != "thin")
    return vg_info(base, vg)["extents"] - used


def snapshots_of(base: Path, vg: str, origin: str) -> list[LV]:
    return [lv for lv in all_lvs(base, vg) if lv.origin == origin]


def _round(size: int) -> int:
    return -(-size // EXTENT) * EXTENT


def snapshot_content(base: Path, vg: str, origin: LV, snap: str) -> Path:
    """Freeze the origin's content as the snapshot's (a copy: see the module docstring),
    with everything a block-level snapshot keeps: owners, modes, times, links, xattrs."""
    dest = base / vg / "data" / snap
    subprocess.run(["cp", "-a", "--", origin.data_dir, str(dest)], check=True)
    return dest


# ---- what the tests drive ---------------------------------------------------------------------


def write_origin(vg_lv: str, nbytes: int, base: Path | None = None) -> list[str]:
    """``nbytes`` of origin ``vg/lv`` changed: every active COW snapshot of it fills up.
    Returns the names of the snapshots this made invalid."""
    vg, _, name = vg_lv.partition("/")
    invalidated = []
    with locked(base) as b:
        for snap in snapshots_of(b, vg, name):
            if snap.kind != "cow" or snap.invalid or not snap.active:
                continue
            before = 100 * snap.cow_used // snap.size
            snap.cow_used = min(snap.size, snap.cow_used + nbytes)
            _dmeventd(b, vg, snap, before)
            if snap.cow_used >= snap.size:
                snap.invalid = True
                # I/O on an invalid snapshot fails: its content is gone
                shutil.rmtree(Path(snap.data_dir), ignore_errors=True)
                invalidated.append(snap.name)
            save(b, vg, snap)
    return invalidated


def fill_pool(vg_lv: str, data: float, metadata: float, base: Path | None = None) -> None:
    """Thin pool ``vg/pool`` is ``data`` % full (data) and ``metadata`` % (metadata)."""
    vg, _, name = vg_lv.partition("/")
    with locked(base) as b:
        lv = load(b, vg, name)
        assert lv is not None and lv.kind == "pool", vg_lv
        lv.pool_data, lv.pool_metadata = data, metadata
        save(b, vg, lv)


def dm_name(vg: str, lv: str) -> str:
    return f"{vg.replace('-', '--')}-{lv.replace('-', '--')}"


def _dmeventd(base: Path, vg: str, snap: LV, before: int) -> None:
    """What dmeventd's snapshot plugin logs (to syslog; here ``<root>/dmeventd.log``):
    from 80 % full in 5 % steps, then the invalidation."""
    now = 100 * snap.cow_used // snap.size
    lines = [f"WARNING: Snapshot {dm_name(vg, snap.name)} is now {p}% full."
             for p in range(80, 100, 5) if before < p <= now]
    if snap.cow_used >= snap.size:
        lines.append(f"WARNING: Snapshot {dm_name(vg, snap.name)} changed state to: Invalid and "
                     "should be removed.")
    if lines:
        with open(base / "dmeventd.log", "a") as f:
            f.write("".join(line + "\n" for line in lines))


def find_device(base: Path, device: str) -> tuple[str, LV] | None:
    """``/dev/<vg>/<lv>`` or ``/dev/mapper/<vg>-<lv>`` (dashes in names doubled)."""
    if device.startswith("/dev/mapper/"):
        rest = device[len("/dev/mapper/"):]
        for vg in vgs(base):
            for lv in all_lvs(base, vg):
                if rest == dm_name(vg, lv.name):
                    return vg, lv
        return None
    parts = device.split("/")
    if len(parts) == 4 and parts[:2] == ["", "dev"] and vg_exists(base, parts[2]):
        lv = load(base, parts[2], parts[3])
        return (parts[2], lv) if lv else None
    return None
