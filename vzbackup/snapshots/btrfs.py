"""The ``btrfs`` snapshotter: a read-only snapshot of the guest's subvolume.

The snapshot is ``<parent>/.vzbackup-snap-<tag>`` next to the guest's folder and is deleted
when the context exits: on success, on an exception and on KeyboardInterrupt. SIGTERM
does not unwind Python by itself: the entry point installs a handler that raises (for
example ``SystemExit``), so this context's ``finally`` runs then too. A crash (SIGKILL,
power loss) can still leave one: ``sweep`` deletes every snapshot with the prefix.
Call ``sweep`` only while no dump runs on that node (under the node's lock).
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import DumpFailed
from ..ports import Leftover

log = logging.getLogger(__name__)

PREFIX = ".vzbackup-snap-"
_TAG = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")
_GUEST = re.compile(r"^((?:ct|vm)\d+)-")
_SUBVOLUME_INODE = 256  # every btrfs subvolume's root directory has this inode number


SWEEP_HINT = ("Check the btrfs file system and 'btrfs subvolume list'; a sweep removes "
              f"leftover {PREFIX}* snapshots.")


class BtrfsSnapshotter:
    name = "btrfs"
    volume_checkpoints = None  # checkpoints: persistent subvolumes (below)

    def __init__(self, btrfs: str = "btrfs"):
        self.btrfs = btrfs
        self.persistent = self  # checkpoints: keep, writable, delete

    def keep(self, path: Path, dest: Path) -> None:
        if not self.is_subvolume(path):
            raise DumpFailed(f"{path} is not a btrfs subvolume, so no checkpoint can be taken",
                             hint="Make the guest folder a subvolume ('btrfs subvolume create').")
        self._run("subvolume", "snapshot", "-r", str(path), str(dest))

    def writable(self, snap: Path, dest: Path) -> None:
        self._run("subvolume", "snapshot", str(snap), str(dest))

    @contextmanager
    def snapshot(self, path: Path, tag: str) -> Iterator[Path]:
        if not _TAG.match(tag):
            raise ValueError(f"snapshot tag {tag!r}: use letters, digits, '_', '.', '-'")
        if not self.is_subvolume(path):
            raise DumpFailed(
                f"{path} is not a btrfs subvolume, so no snapshot can be taken",
                hint="Make the guest folder a subvolume ('btrfs subvolume create') "
                     "or configure the node with snapshotter 'none'.")
        snap = path.parent / f"{PREFIX}{tag}"
        if os.path.lexists(snap):  # btrfs would snapshot *into* an existing folder
            raise DumpFailed(f"cannot snapshot {path}: {snap} already exists", hint=SWEEP_HINT)
        try:
            self._run("subvolume", "snapshot", "-r", str(path), str(snap))
            yield snap
        except BaseException:  # also an interrupt while the snapshot was being taken
            self._delete_quietly(snap)
            raise
        self.delete(snap)

    def _delete_quietly(self, snap: Path) -> None:
        """Delete ``snap`` if it exists; log a failure: the first error is the one to report."""
        try:
            if os.path.lexists(snap):
                self.delete(snap)
        except DumpFailed as e:
            log.error("%s", e)

    def is_subvolume(self, path: Path) -> bool:
        try:
            st = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if st.st_ino != _SUBVOLUME_INODE:
            return False
        return self._run("subvolume", "show", str(path), check=False) == 0

    def delete(self, snap: Path) -> None:
        self._run("subvolume", "delete", str(snap))
        log.debug("deleted snapshot %s", snap)

    def sweep(self, root: Path) -> list[Path]:
        """Delete leftover snapshots (``.vzbackup-snap-*`` subvolumes) directly in ``root``."""
        removed = []
        for snap in sorted(Path(root).glob(f"{PREFIX}*")):
            if self.is_subvolume(snap):
                log.warning("deleting leftover snapshot %s", snap)
                self.delete(snap)
                removed.append(snap)
        return removed

    def leftovers(self, guests_dir: Path) -> list[Leftover]:
        """``.vzbackup-snap-*`` subvolumes directly in ``guests_dir`` (where snapshots of
        the guests' folders are made); nothing else is ever listed."""
        found = []
        for snap in sorted(Path(guests_dir).glob(f"{PREFIX}*")):
            m = _GUEST.match(snap.name[len(PREFIX):])
            if self.is_subvolume(snap):
                found.append(Leftover(str(snap), m.group(1) if m else "", "btrfs",
                                      "read-only btrfs snapshot"))
        return found

    def remove(self, leftover: Leftover) -> None:
        snap = Path(leftover.id)
        if not snap.name.startswith(PREFIX) or not self.is_subvolume(snap):
            raise DumpFailed(f"{snap} is not a vzbackup btrfs snapshot: not removed")
        log.warning("deleting leftover snapshot %s", snap)
        self.delete(snap)

    def _run(self, *args: str, check: bool = True) -> int:
        argv = [self.btrfs, *args]
        try:
            done = subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL,
                                  env={"PATH": os.environ.get("PATH", os.defpath)})  # no secrets
        except OSError as e:
            raise DumpFailed(f"cannot run {self.btrfs}: {e}",
                             hint="Install btrfs-progs on the node.") from e
        if check and done.returncode != 0:
            err = done.stderr.decode("utf-8", "replace").strip() or "no message"
            raise DumpFailed(f"'{' '.join(argv)}' failed (exit {done.returncode}): {err}",
                             hint=SWEEP_HINT)
        return done.returncode
