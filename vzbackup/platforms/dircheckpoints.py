"""Checkpoints of the ``directory`` platform's guests: persistent btrfs or LVM snapshots.

btrfs (``Snapshotter.persistent``): a checkpoint of ``<root>/ct101`` labelled
``pre-upgrade`` is the read-only subvolume ``<root>/.checkpoints/ct101@pre-upgrade``.
Rollback makes a writable snapshot of it beside the guest, swaps it into place
(``install``) and deletes the replaced subvolume: the guest's folder is then exactly the
checkpoint. Before a checkpoint, a free-space guard asks for ``RESERVE`` of the guests'
size to be free on the file system (room for the copy-on-write of the changes to come),
and refuses with the numbers otherwise.

LVM (``Snapshotter.volume_checkpoints``): a snapshot of the volume holding the guests
(``snapshots/lvmcheckpoints.py``, with its own guard); rollback copies the guest's folder
out of it and swaps it in (``volcheckpoints.py``). ``none`` cannot keep snapshots.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..domain.guests import GuestRef
from ..errors import CheckpointFailed, GuestNotFound, NoSpace
from ..ports import PersistentSnapshots, Snapshotter
from .install import install_folder
from .volcheckpoints import rollback_folder

log = logging.getLogger(__name__)

FOLDER = ".checkpoints"
RESERVE = 0.20  # of the guest's size, free for copy-on-write (lvcreate(8) suggests ~20%)


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


class DirectoryCheckpoints:
    def __init__(self, root: Path, node: str):
        self.root, self.node = root, node

    def path(self, ref: GuestRef, label: str) -> Path:
        return self.root / FOLDER / f"{ref}@{label}"

    def _where(self, ref: GuestRef, label: str) -> str:
        return f"checkpoint {label} of {ref} on node {self.node}"

    def _store(self, snapshotter: Snapshotter, ref: GuestRef, label: str) -> PersistentSnapshots:
        store = getattr(snapshotter, "persistent", None)
        if store is None:
            raise CheckpointFailed(
                f"{self._where(ref, label)}: the node's snapshotter '{snapshotter.name}' "
                "cannot keep snapshots",
                hint="Checkpoints need btrfs (snapshotter = \"btrfs\", guests as "
                     "subvolumes), LVM (snapshotter = \"lvm\") or Proxmox VE snapshots; "
                     "take a restore point instead ('vzbackup backup').")
        return store

    def _guest(self, ref: GuestRef, label: str) -> Path:
        folder = self.root / str(ref)
        if not folder.is_dir() or folder.is_symlink():
            raise GuestNotFound(f"{self._where(ref, label)}: no guest folder {folder}")
        return folder

    def space(self, refs: list[GuestRef]) -> tuple[int, int]:
        """(bytes needed, bytes available) for checkpoints of ``refs``."""
        size = 0
        for ref in refs:
            for folder, _dirs, files in os.walk(self.root / str(ref)):
                for f in files:
                    try:
                        size += os.lstat(os.path.join(folder, f)).st_blocks * 512
                    except OSError:
                        pass
        st = os.statvfs(self.root)
        return int(size * RESERVE), st.f_bavail * st.f_frsize

    def guard(self, refs: list[GuestRef], label: str, snapshotter: Snapshotter) -> None:
        """Refuse, with the numbers, checkpoints of ``refs`` (a group) that would not fit."""
        vol = snapshotter.volume_checkpoints
        if vol is not None:
            vol.guard([str(r) for r in refs], label)
            return
        self._store(snapshotter, refs[0], label)
        needed, available = self.space(refs)
        if needed > available:
            guests = ", ".join(map(str, refs))
            raise NoSpace(
                f"checkpoint {label} of {guests} on node {self.node} refused: it needs "
                f"{_human(needed)} free for changes ({RESERVE:.0%} of the guests' size) and "
                f"{self.root} has {_human(available)} available",
                hint="Free space on the file system or drop old checkpoints ('vzbackup "
                     "checkpoints', 'vzbackup checkpoint drop LABEL').")

    def take(self, ref: GuestRef, label: str, snapshotter: Snapshotter) -> None:
        vol = snapshotter.volume_checkpoints
        if vol is not None:
            self._guest(ref, label)
            vol.guard([str(ref)], label)
            vol.take(str(ref), label)
            return
        store = self._store(snapshotter, ref, label)
        folder = self._guest(ref, label)
        dest = self.path(ref, label)
        if os.path.lexists(dest):
            raise CheckpointFailed(f"{self._where(ref, label)} already exists ({dest})",
                                   hint="Pick another --label, or drop the old checkpoint.")
        self.guard([ref], label, snapshotter)
        dest.parent.mkdir(mode=0o700, exist_ok=True)
        store.keep(folder, dest)
        log.info("took %s: %s", self._where(ref, label), dest)

    def rollback(self, ref: GuestRef, label: str, snapshotter: Snapshotter) -> None:
        vol = snapshotter.volume_checkpoints
        if vol is not None:
            rollback_folder(vol, str(ref), label, self.root / str(ref), self._where(ref, label))
            return
        store = self._store(snapshotter, ref, label)
        snap = self.path(ref, label)
        if not os.path.isdir(snap):
            raise CheckpointFailed(f"{self._where(ref, label)} does not exist on the node "
                                   f"({snap})",
                                   hint="List checkpoints with 'vzbackup checkpoints'.")
        staging = self.root / f".rollback-{ref}-{label}"
        if os.path.lexists(staging):
            store.delete(staging)
        store.writable(snap, staging)
        try:
            old = install_folder(staging, self.root / str(ref), replace=True)
        except BaseException:
            store.delete(staging)
            raise
        if old is not None:
            store.delete(old)
        log.info("rolled %s back to %s", ref, self._where(ref, label))

    def drop(self, ref: GuestRef, label: str, snapshotter: Snapshotter) -> bool:
        """Delete the snapshot; False when it is not there (already gone)."""
        vol = snapshotter.volume_checkpoints
        if vol is not None:
            return vol.drop(str(ref), label)
        snap = self.path(ref, label)
        if not os.path.lexists(snap):
            return False
        self._store(snapshotter, ref, label).delete(snap)
        return True
