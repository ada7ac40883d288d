"""Checkpoints on an ``lvm`` node: persistent LVM snapshots of the volume holding the guests.

A checkpoint ``pre-upgrade`` of ``ct101`` on node ``node3`` is the snapshot LV
``<vg>/vzckpt-node3-ct101-pre-upgrade``, tagged ``vzbackup-checkpoint``, read-only: a
classic copy-on-write snapshot on a thick volume, a thin snapshot (created without the
activation-skip flag, so it comes back active after a reboot) on a thin one. Its name does
not start with ``vzbackup-`` and it lacks the ``vzbackup`` tag, so ``snapshots sweep``
never takes it for a dump's leftover.

The snapshot holds the whole volume, every guest on it, so rollback does not merge it
(``lvconvert --merge`` would put *every* guest back, and on a mounted origin it waits for
the next activation): the snapshot is mounted read-only, the guest's own folder in it is
copied beside the guest, then swapped into place (the platform does that part).

The free-space guard, before any snapshot of a group is made:

- thick: each snapshot gets ``lvm_checkpoint_size`` (a percentage of the volume, or a
  size), rounded up to whole extents; the group is refused when the VG's free extents
  (``vgs``) minus all of them would be under ``lvm_checkpoint_reserve``;
- thin: the pool (``lvs`` ``data_percent``, ``metadata_percent``) must be under
  ``lvm_thin_pool_limit`` percent; a full pool stops every thin volume in it.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import CheckpointFailed, NoSpace, VzError
from . import lvmtools
from .lvm import LvmSnapshotter, _human, _size_bytes

log = logging.getLogger(__name__)

PREFIX = "vzckpt-"
LVM_TAG = "vzbackup-checkpoint"
_PERCENT = re.compile(r"^(\d+(?:\.\d+)?)%$")


@dataclass(frozen=True)
class CheckpointPolicy:
    size: str = "20%"  # COW room per snapshot: a percentage of the volume, or a size
    reserve: str = "1G"  # what must stay free in the VG
    pool_limit: float = 80.0  # thin: refuse at or above this percent of the pool


class LvmCheckpoints:
    """``ports.VolumeCheckpoints`` over an ``LvmSnapshotter``'s volume and mounts."""

    def __init__(self, snapshotter: LvmSnapshotter, policy: CheckpointPolicy):
        self.snap, self.policy = snapshotter, policy
        self.vg, self.node = snapshotter.vg, snapshotter.node

    def lv_name(self, guest: str, label: str) -> str:
        return f"{PREFIX}{self.node}-{guest}-{label}"

    def _where(self, guests: list[str], label: str) -> str:
        return f"checkpoint {label} of {', '.join(guests)} on node {self.node}"

    # ---- the guard ---------------------------------------------------------------------------

    def guard(self, guests: list[str], label: str) -> None:
        origin = self._origin()
        if origin.thin:
            self._guard_thin(origin, guests, label)
        else:
            self._guard_thick(origin, guests, label)

    def _origin(self) -> lvmtools.LvRow:
        rows = self._lvs(self.snap.volume, lvmtools.POOL_FIELDS)
        if not rows:
            raise CheckpointFailed(f"node {self.node}: lvs does not report {self.snap.volume}")
        return rows[0]

    def snapshot_bytes(self, origin_size: int, extent: int) -> int:
        """One checkpoint snapshot's COW room, whole extents, at most the origin's size."""
        m = _PERCENT.match(self.policy.size.strip())
        wanted = origin_size * float(m.group(1)) / 100 if m else _size_bytes(self.policy.size)
        return min(math.ceil(wanted / extent), math.ceil(origin_size / extent)) * extent

    def _guard_thick(self, origin: lvmtools.LvRow, guests: list[str], label: str) -> None:
        vg = self._vgs()
        each = self.snapshot_bytes(origin.size, vg.extent_size)
        need = each * len(guests)
        reserve = math.ceil(_size_bytes(self.policy.reserve) / vg.extent_size) * vg.extent_size
        if vg.free - need >= reserve:
            return
        ext = vg.extent_size
        raise NoSpace(
            f"{self._where(guests, label)} refused: {len(guests)} snapshot(s) of "
            f"{self.snap.volume} need {len(guests)} x {_human(each)} = {_human(need)} "
            f"({need // ext} extents of {_human(ext)}; lvm_checkpoint_size "
            f"{self.policy.size} of {_human(origin.size)}), and volume group {self.vg} has "
            f"{_human(vg.free)} free ({vg.free_extents} extents) of which "
            f"{_human(reserve)} must stay free (lvm_checkpoint_reserve): short by "
            f"{_human(need + reserve - vg.free)}",
            hint=f"Free extents in {self.vg} (drop old checkpoints: 'vzbackup checkpoints', "
                 f"'vzbackup checkpoint drop LABEL'), or lower nodes.{self.node}."
                 "lvm_checkpoint_size, or checkpoint fewer guests at once.")

    def _guard_thin(self, origin: lvmtools.LvRow, guests: list[str], label: str) -> None:
        rows = self._lvs(f"{self.vg}/{origin.pool}", lvmtools.POOL_FIELDS) if origin.pool else []
        if not rows:
            raise CheckpointFailed(f"node {self.node}: the thin pool of {self.snap.volume} "
                                   f"({origin.pool or 'unknown'}) is not reported by lvs")
        pool, limit = rows[0], self.policy.pool_limit
        data, meta = pool.data_percent or 0.0, pool.metadata_percent or 0.0
        if data < limit and meta < limit:
            return
        free = int(pool.size * (100 - data) / 100)
        raise NoSpace(
            f"{self._where(guests, label)} refused: thin pool {self.vg}/{origin.pool} of "
            f"{self.snap.volume} is {data:.2f}% full (data) and {meta:.2f}% (metadata), at "
            f"or above the {limit:g}% limit (lvm_thin_pool_limit): {_human(free)} of "
            f"{_human(pool.size)} free; the changes a checkpoint keeps would fill it, and a "
            "full pool stops every volume in it",
            hint=f"Grow the pool (lvextend {self.vg}/{origin.pool}, or --poolmetadatasize) or "
                 "drop old checkpoints ('vzbackup checkpoint drop LABEL').")

    # ---- take, view, drop --------------------------------------------------------------------

    def exists(self, guest: str, label: str) -> bool:
        name = self.lv_name(guest, label)
        return any(r.name == name for r in self._lvs(self.vg))

    def take(self, guest: str, label: str) -> None:
        name = self.lv_name(guest, label)
        if self.exists(guest, label):
            raise CheckpointFailed(f"{self._where([guest], label)} already exists "
                                   f"({self.vg}/{name})",
                                   hint="Pick another --label, or drop the old checkpoint.")
        origin = self._origin()
        argv = ["lvcreate", "--snapshot", "--name", name, "--addtag", LVM_TAG,
                "--permission", "r"]
        if origin.thin:
            argv += ["--setactivationskip", "n"]
        else:
            size = self.snapshot_bytes(origin.size, self._vgs().extent_size)
            argv += ["--size", f"{math.ceil(size / (1 << 20))}m"]
        done = lvmtools.run([*argv, self.snap.volume])
        if done.code != 0:
            raise CheckpointFailed(f"{self._where([guest], label)}: cannot snapshot "
                                   f"{self.snap.volume}: {done.last_error()}",
                                   hint="Read LVM's message; 'vgs' shows the free extents.")
        log.info("took %s: LVM snapshot %s/%s", self._where([guest], label), self.vg, name)

    @contextmanager
    def view(self, guest: str, label: str, path: Path) -> Iterator[Path]:
        """``path`` (on the volume) as it was at the checkpoint: the snapshot mounted
        read-only while in the block, unmounted after (whatever happens)."""
        name = self.lv_name(guest, label)
        rows = [r for r in self._lvs(self.vg) if r.name == name]
        if not rows:
            raise CheckpointFailed(f"{self._where([guest], label)} does not exist on the node "
                                   f"(no LV {self.vg}/{name})",
                                   hint="List checkpoints with 'vzbackup checkpoints'.")
        if rows[0].invalid:
            raise CheckpointFailed(
                f"{self._where([guest], label)}: the snapshot {self.vg}/{name} overflowed (its "
                "copy-on-write room filled up), so it no longer holds the checkpoint",
                hint=f"Drop it ('vzbackup checkpoint drop {label}'); next time give it more "
                     f"room (nodes.{self.node}.lvm_checkpoint_size), or restore a restore point.")
        inside = self._inside(path)
        where = self.snap._mount_path(name)
        self.snap._umount(where)  # a crash may have left it mounted
        try:
            try:
                self.snap._mount(name, where)
            except VzError as e:
                raise CheckpointFailed(f"{self._where([guest], label)}: {e.message}",
                                       hint=e.hint) from None
            self._room_for_copy(where / inside, guest, label)
            yield where / inside
        finally:
            self.snap._umount(where)

    def _room_for_copy(self, folder: Path, guest: str, label: str) -> None:
        """Rolling back writes a copy of the guest onto the volume: on a thick volume every
        snapshot of it (this checkpoint included) keeps the blocks overwritten, on a thin
        one the pool gives them. Refuse, with the numbers, what would overflow."""
        size = _tree_bytes(folder)
        origin = self._origin()
        if origin.thin:
            pool = self._lvs(f"{self.vg}/{origin.pool}", lvmtools.POOL_FIELDS)[0]
            free = int(pool.size * (100 - (pool.data_percent or 0.0)) / 100)
            short = [f"thin pool {self.vg}/{origin.pool} has {_human(free)} free"] if free < size else []
        else:
            short = []
            for r in self._lvs(self.vg):
                if r.origin == self.snap.lv and r.attr[:1] == "s" and not r.invalid:
                    free = int(r.size * (100 - (r.data_percent or 0.0)) / 100)
                    if free < size:
                        short.append(f"snapshot {self.vg}/{r.name} has {_human(free)} of its "
                                     f"{_human(r.size)} copy-on-write room left")
        if short:
            raise NoSpace(
                f"rollback of {guest} to checkpoint {label} on node {self.node} refused: the "
                f"copy of the guest ({_human(size)}) written to {self.snap.volume} would "
                f"overflow it: {'; '.join(short)}",
                hint="Grow the snapshots (lvextend -L +SIZE VG/SNAPSHOT) or the pool, or drop "
                     "other checkpoints first; the guest is unchanged.")

    def drop(self, guest: str, label: str) -> bool:
        if not self.exists(guest, label):
            return False
        name = self.lv_name(guest, label)
        self.snap._umount(self.snap._mount_path(name))
        try:
            self.snap._remove_lv(name)
        except VzError as e:
            raise CheckpointFailed(f"dropping {self._where([guest], label)}: {e.message}",
                                   hint="Check that nothing holds it open (mount, lsof), then "
                                        "drop it again.") from None
        return True

    # ---- lvm -----------------------------------------------------------------------------------

    def _inside(self, path: Path) -> Path:
        try:
            return Path(path).relative_to(self.snap.mountpoint)
        except ValueError:
            raise CheckpointFailed(
                f"node {self.node}: {path} is not on the LVM volume {self.snap.volume} "
                f"mounted at {self.snap.mountpoint}",
                hint=f"Set nodes.{self.node}.lvm_volume and lvm_mountpoint to the volume "
                     "that holds the guests.") from None

    def _lvs(self, target: str, fields: str = lvmtools.REPORT_FIELDS) -> list[lvmtools.LvRow]:
        try:
            return lvmtools.report(target, fields)
        except VzError as e:
            raise CheckpointFailed(f"node {self.node}: {e.message}", hint=e.hint) from None

    def _vgs(self) -> lvmtools.VgRow:
        try:
            return lvmtools.vg_report(self.vg)
        except VzError as e:
            raise CheckpointFailed(f"node {self.node}: {e.message}", hint=e.hint) from None


def _tree_bytes(folder: Path) -> int:
    total = 0
    for where, _dirs, files in os.walk(folder):
        for f in files:
            try:
                total += os.lstat(os.path.join(where, f)).st_blocks * 512
            except OSError:
                pass
    return total
