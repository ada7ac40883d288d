"""Checkpoints of the ``directory`` platform's guests: persistent btrfs snapshots.

A checkpoint of ``<root>/ct101`` labelled ``pre-upgrade`` is the read-only subvolume
``<root>/.checkpoints/ct101@pre-upgrade``. Rollback makes a writable snapshot of it beside
the guest, swaps it into place (``install``) and deletes the replaced subvolume: the guest's
folder is then exactly the checkpoint. The snapshotter must keep snapshots
(``Snapshotter.persistent``): ``btrfs`` does, ``none`` cannot, ``lvm`` not yet.

Before a checkpoint, a free-space guard asks for ``RESERVE`` of the guest's size to be free
on the file system (room for the copy-on-write of the changes to come), and refuses with
the numbers otherwise.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..domain.guests import GuestRef
from ..errors import CheckpointFailed, GuestNotFound, NoSpace
from ..ports import PersistentSnapshots, Snapshotter
from .install import install_folder

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
                     "subvolumes), LVM-thin or Proxmox VE snapshots; take a restore point "
                     "instead ('vzbackup backup').")
        return store

    def _guest(self, ref: GuestRef, label: str) -> Path:
        folder = self.root / str(ref)
        if not folder.is_dir() or folder.is_symlink():
            raise GuestNotFound(f"{self._where(ref, label)}: no guest folder {folder}")
        return folder

    def space(self, ref: GuestRef) -> tuple[int, int]:
        """(bytes needed, bytes available) for a checkpoint of ``ref``."""
        size = 0
        for folder, _dirs, files in os.walk(self.root / str(ref)):
            for f in files:
                try:
                    size += os.lstat(os.path.join(folder, f)).st_blocks * 512
                except OSError:
                    pass
        st = os.statvfs(self.root)
        return int(size * RESERVE), st.f_bavail * st.f_frsize

    def guard(self, ref: GuestRef, label: str) -> None:
        needed, available = self.space(ref)
        if needed > available:
            raise NoSpace(
                f"{self._where(ref, label)} refused: it needs {_human(needed)} free for "
                f"changes ({RESERVE:.0%} of the guest's size) and {self.root} has "
                f"{_human(available)} available",
                hint="Free space on the file system or drop old checkpoints ('vzbackup "
                     "checkpoints', 'vzbackup checkpoint drop LABEL').")

    def take(self, ref: GuestRef, label: str, snapshotter: Snapshotter) -> None:
        store = self._store(snapshotter, ref, label)
        folder = self._guest(ref, label)
        dest = self.path(ref, label)
        if os.path.lexists(dest):
            raise CheckpointFailed(f"{self._where(ref, label)} already exists ({dest})",
                                   hint="Pick another --label, or drop the old checkpoint.")
        self.guard(ref, label)
        dest.parent.mkdir(mode=0o700, exist_ok=True)
        store.keep(folder, dest)
        log.info("took %s: %s", self._where(ref, label), dest)

    def rollback(self, ref: GuestRef, label: str, snapshotter: Snapshotter) -> None:
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
        snap = self.path(ref, label)
        if not os.path.lexists(snap):
            return False
        self._store(snapshotter, ref, label).delete(snap)
        return True
