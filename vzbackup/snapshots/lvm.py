"""The ``lvm`` snapshotter: an LVM2 snapshot of the volume holding the guests, mounted
read-only for the dump, then unmounted and removed.

- ``size`` set: a classic copy-on-write snapshot of that size (thick volumes). While the
  dump runs, a watcher reads the snapshot's data percent through ``lvs``; when the COW area
  fills up the snapshot becomes invalid (attr position 5 ``I``) and the dump is failed
  with a message that says so and how much space it needed.
- ``size`` empty: a thin snapshot (thin volumes), created without the activation-skip flag
  (``-kn``) so that it can be mounted at once; it cannot overflow on its own.

Crash safety: the snapshot is ``vzbackup-<node>-<tag>`` (tag ``ct101-1a2b3c4d``), tagged
``vzbackup`` in LVM's metadata, and mounted at ``<mount_dir>/<its name>``. It is removed on
success, failure, timeout and SIGTERM (the entry points turn SIGTERM into an exception); a
SIGKILL or power loss leaves it, and ``leftovers`` finds it by name, node *and* tag, so a
sweep never touches a snapshot vzbackup did not make, nor another node's on a shared VG.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DumpFailed, VzError
from ..ports import Leftover
from . import lvmtools
from .lvmtools import LvRow

log = logging.getLogger(__name__)

PREFIX = "vzbackup-"
LVM_TAG = "vzbackup"
_TAG = re.compile(r"^((?:ct|vm)\d+)-[0-9a-f]{4,32}$")
REMOVE_WAITS = (1, 2, 4, 8)  # seconds between lvremove attempts ("LV in use" is common)
WARN_AT = 80.0  # percent full: warn once


@dataclass
class Watch:
    """What the watcher saw: samples of (seconds since the snapshot, percent full)."""

    started: float = field(default_factory=time.monotonic)
    samples: list[tuple[float, float]] = field(default_factory=list)
    invalid_after: float | None = None
    error: str | None = None

    def see(self, row: LvRow) -> None:
        t = time.monotonic() - self.started
        if row.invalid:
            if self.invalid_after is None:
                self.invalid_after = t
        elif row.data_percent is not None:
            self.samples.append((t, row.data_percent))


class LvmSnapshotter:
    name = "lvm"
    persistent = None  # no btrfs-like subvolumes: checkpoints are volume_checkpoints
    volume_checkpoints = None  # lvmcheckpoints.LvmCheckpoints, set by the wiring

    def __init__(self, volume: str, mountpoint: Path, node: str, *, size: str = "",
                 mount_dir: Path = Path("/run/vzbackup/snapshots"), poll: float = 2.0,
                 removal_waits: tuple[float, ...] = REMOVE_WAITS):
        self.vg, _, self.lv = volume.partition("/")
        self.mountpoint = Path(mountpoint)  # where the origin volume is mounted
        self.node, self.size, self.mount_dir = node, size, Path(mount_dir)
        self.poll, self.removal_waits = poll, removal_waits

    @property
    def volume(self) -> str:
        return f"{self.vg}/{self.lv}"

    # ---- a snapshot for one dump -----------------------------------------------------------

    @contextmanager
    def snapshot(self, path: Path, tag: str) -> Iterator[Path]:
        if not _TAG.match(tag):
            raise ValueError(f"snapshot tag {tag!r}: expected <guest>-<hex>")
        inside = self._relative(path)
        name = f"{PREFIX}{self.node}-{tag}"
        where = self._mount_path(name)
        watch, stop = Watch(), threading.Event()
        watcher = None
        try:
            self._create(name)
            self._mount(name, where)
            watcher = threading.Thread(target=self._watch, args=(name, watch, stop), daemon=True,
                                       name=f"vzbackup-watch-{tag}")
            watcher.start()
            yield where / inside
            self._stop(watcher, stop)
            self._check(name, watch)  # before removal: lvs can still see it
        except BaseException as e:
            self._stop(watcher, stop)
            overflow = self._overflow_error(name, watch)
            self._cleanup_quietly(name, where)
            if overflow is not None and isinstance(e, Exception):
                raise overflow from e
            raise
        self._cleanup(name, where)

    def _relative(self, path: Path) -> Path:
        try:
            return Path(path).relative_to(self.mountpoint)
        except ValueError:
            raise DumpFailed(f"{path} is not on the LVM volume {self.volume} mounted at "
                             f"{self.mountpoint}, so no snapshot of it can be taken",
                             hint=f"Set nodes.{self.node}.lvm_volume and lvm_mountpoint to the "
                                  "volume that holds the guests.") from None

    def _mount_path(self, name: str) -> Path:
        return self.mount_dir / name

    def _create(self, name: str) -> None:
        argv = ["lvcreate", "--snapshot", "--name", name, "--addtag", LVM_TAG, "--permission", "r"]
        argv += ["--size", self.size] if self.size else ["--setactivationskip", "n"]
        done = lvmtools.run([*argv, self.volume])
        if done.code == 0:
            log.info("created LVM snapshot %s/%s of %s", self.vg, name, self.volume)
            return
        hint = ("Free extents in the volume group (vgs), or lower lvm_snapshot_size."
                if "insufficient free space" in done.err else
                f"Set nodes.{self.node}.lvm_snapshot_size: {self.volume} is a thick volume."
                if "specify either size" in done.err else
                "Read LVM's message; 'vzbackup snapshots sweep' removes vzbackup's leftovers.")
        raise DumpFailed(f"node {self.node}: cannot snapshot {self.volume}: {done.last_error()}",
                         hint=hint)

    def _mount(self, name: str, where: Path) -> None:
        where.mkdir(parents=True, exist_ok=True)
        argv = ["mount", "-o", self._mount_options(), f"/dev/{self.vg}/{name}", str(where)]
        done = lvmtools.run(argv)
        if done.code != 0:
            raise DumpFailed(f"node {self.node}: cannot mount the snapshot {self.vg}/{name}: "
                             f"{done.last_error()}")

    def _mount_options(self) -> str:
        """Read-only without touching the journal: a snapshot of a mounted ext4 or xfs has
        a dirty one, and xfs refuses a second mount of the same UUID."""
        fstype = _fstype(self.mountpoint)
        return {"ext3": "ro,noload", "ext4": "ro,noload",
                "xfs": "ro,nouuid,norecovery"}.get(fstype or "", "ro")

    # ---- watching the COW area ---------------------------------------------------------------

    def _watch(self, name: str, watch: Watch, stop: threading.Event) -> None:
        warned = False
        while not stop.wait(self.poll):
            try:
                row = self._row(name)
            except VzError as e:
                watch.error = str(e)
                continue
            if row is None:
                return
            watch.see(row)
            if row.invalid:
                log.error("LVM snapshot %s/%s overflowed: the dump will fail", self.vg, name)
                return
            if not warned and (row.data_percent or 0) >= WARN_AT:
                warned = True
                log.warning("LVM snapshot %s/%s is %.0f%% full", self.vg, name, row.data_percent)

    @staticmethod
    def _stop(watcher: threading.Thread | None, stop: threading.Event) -> None:
        stop.set()
        if watcher is not None:
            watcher.join()

    def _row(self, name: str) -> LvRow | None:
        rows = lvmtools.report(self.vg)
        return next((r for r in rows if r.name == name), None)

    def _check(self, name: str, watch: Watch) -> None:
        if watch.error:
            log.warning("the state of LVM snapshot %s/%s could not always be read during the "
                        "dump: %s", self.vg, name, watch.error)
        error = self._overflow_error(name, watch)
        if error is not None:
            raise error

    def _overflow_error(self, name: str, watch: Watch) -> DumpFailed | None:
        """The overflow as an error, if the snapshot overflowed (asks lvs once more)."""
        try:
            row = self._row(name)
        except VzError:  # lvs failing must not hide the error being reported
            row = None
        if row is not None:
            watch.see(row)
        if watch.invalid_after is None:
            return None
        return DumpFailed(self._overflow_message(name, watch),
                          hint=f"Give the snapshot more room: nodes.{self.node}.lvm_snapshot_size "
                               f"(now {self.size}; free extents: vgs {self.vg}), or back up at a "
                               "quieter time, or move the guests to a thin volume.")

    def _overflow_message(self, name: str, watch: Watch) -> str:
        after = watch.invalid_after or 0.0
        lasted = time.monotonic() - watch.started
        text = (f"node {self.node}: the LVM snapshot {self.vg}/{name} of {self.volume} "
                f"overflowed: its {self.size} copy-on-write area filled up {after:.0f} s into the "
                f"dump, so the snapshot became invalid and the dump was discarded. It needed "
                f"more than {self.size}")
        if self.size and after > 0 and lasted > after * 1.1:
            needed = _size_bytes(self.size) * lasted / after
            text += (f"; at the rate it filled, the {lasted:.0f} s dump needed about "
                     f"{_human(needed)}")
        return text + "."

    # ---- removal ---------------------------------------------------------------------------

    def _cleanup(self, name: str, where: Path) -> None:
        self._umount(where)
        self._remove_lv(name)

    def _cleanup_quietly(self, name: str, where: Path) -> None:
        try:
            self._cleanup(name, where)
        except VzError as e:  # the first error is the one to report
            log.error("%s", e)

    def _umount(self, where: Path) -> None:
        if _is_mounted(where):
            done = lvmtools.run(["umount", str(where)])
            if done.code != 0 and _is_mounted(where):
                log.warning("umount %s: %s; trying a lazy unmount", where, done.last_error())
                lvmtools.run(["umount", "-l", str(where)])
        try:
            os.rmdir(where)
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warning("cannot remove the mount point %s: %s", where, e)

    def _remove_lv(self, name: str) -> None:
        target = f"{self.vg}/{name}"
        for wait in (*self.removal_waits, None):
            done = lvmtools.run(["lvremove", "-f", target])
            if done.code == 0 or "Failed to find logical volume" in done.err:
                log.info("removed LVM snapshot %s", target)
                return
            if wait is None:
                break
            log.warning("lvremove %s failed (%s) - trying again in %s seconds", target,
                        done.last_error(), wait)
            time.sleep(wait)
        raise DumpFailed(f"node {self.node}: cannot remove the LVM snapshot {target}: "
                         f"{done.last_error()}",
                         hint="It will fill up and slow the volume down: run 'vzbackup "
                              f"snapshots sweep --node {self.node}' once nothing uses it.")

    # ---- leftovers -------------------------------------------------------------------------

    def leftovers(self, guests_dir: Path) -> list[Leftover]:
        mine = f"{PREFIX}{self.node}-"
        found: list[Leftover] = []
        for row in lvmtools.report(self.vg):
            tag = row.name[len(mine):]
            m = _TAG.match(tag) if row.name.startswith(mine) else None
            if m and LVM_TAG in row.tags and row.is_snapshot:
                state = "invalid" if row.invalid else (
                    f"{row.data_percent:.0f}% full" if row.data_percent is not None else "inactive")
                found.append(Leftover(f"{row.vg}/{row.name}", m.group(1), "lvm",
                                      f"snapshot of {row.vg}/{row.origin}, {state}"))
        return found + self._orphan_mount_points(mine, {lo.id for lo in found})

    def _orphan_mount_points(self, mine: str, known: set[str]) -> list[Leftover]:
        """Mount points of ours whose snapshot is gone (a crash between lvremove and rmdir)."""
        try:
            entries = sorted(self.mount_dir.iterdir())
        except OSError:
            return []
        out = []
        for path in entries:
            m = _TAG.match(path.name[len(mine):]) if path.name.startswith(mine) else None
            if m and f"{self.vg}/{path.name}" not in known:
                out.append(Leftover(f"{self.vg}/{path.name}", m.group(1), "lvm",
                                    f"mount point {path} without its snapshot"))
        return out

    def remove(self, leftover: Leftover) -> None:
        vg, _, name = leftover.id.partition("/")
        if vg != self.vg or not name.startswith(f"{PREFIX}{self.node}-"):
            raise DumpFailed(f"node {self.node}: {leftover.id} is not a vzbackup snapshot of "
                             "this node: not removed")
        self._cleanup(name, self._mount_path(name))


def _is_mounted(where: Path) -> bool:
    target = os.path.abspath(where)
    return os.path.islink(target) or os.path.ismount(target) or any(
        line.split()[1:2] == [target] for line in _mounts())


def _mounts() -> list[str]:
    try:
        with open("/proc/self/mounts") as f:
            return f.readlines()
    except OSError:
        return []


def _fstype(mountpoint: Path) -> str | None:
    target = os.path.abspath(mountpoint)
    for line in _mounts():
        parts = line.split()
        if len(parts) > 2 and parts[1] == target:
            return parts[2]
    return None


_UNITS = {"b": 1, "s": 512, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def _size_bytes(size: str) -> float:
    """An lvcreate size (``1G``, ``512M``, ``1024`` = MiB)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([bBsSkKmMgGtT]?)", size.strip())
    if not m:
        raise ValueError(f"not an LVM size: {size!r}")
    return float(m.group(1)) * _UNITS[(m.group(2) or "m").lower()]


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.0f} B"

