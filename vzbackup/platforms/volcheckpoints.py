"""Rolling a guest's folder back from a checkpoint that is a snapshot of its whole volume
(``ports.VolumeCheckpoints``: LVM), for the directory and OpenVZ platforms.

The guest's folder in the snapshot (mounted read-only) is copied with ``cp -a`` (owners,
modes, times, hard links, xattrs, ACLs, sparse files) to ``.rollback-<guest>-<label>``
beside the guest, while the guest still runs; only then is the guest stopped if it must
be (``around``), the copy swapped into place by renames (``install``), and the replaced
folder deleted. A crash leaves the guest whole: either the old folder or the copy is in
place, and the next rollback deletes a leftover ``.rollback-`` folder first.
"""

from __future__ import annotations

import logging
import os
import subprocess
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from ..errors import CheckpointFailed
from ..ports import VolumeCheckpoints
from .install import install_folder, remove_tree

log = logging.getLogger(__name__)

ROLLBACK_PREFIX = ".rollback-"


def rollback_folder(vol: VolumeCheckpoints, guest: str, label: str, folder: Path, where: str,
                    around: AbstractContextManager[object] | None = None) -> None:
    """Put ``folder`` back as it is in checkpoint ``label``; ``around`` is entered for the
    swap only (stop the guest, start it again)."""
    staging = folder.parent / f"{ROLLBACK_PREFIX}{guest}-{label}"
    remove_tree(staging)
    with vol.view(guest, label, folder) as old:
        if not old.is_dir() or old.is_symlink():
            raise CheckpointFailed(f"{where}: the checkpoint holds no folder {folder.name} "
                                   "(the guest did not exist on the volume then?)")
        _copy(old, staging, where)
    try:
        with around if around is not None else nullcontext():
            replaced = install_folder(staging, folder, replace=True)
    except BaseException:
        remove_tree(staging)
        raise
    if replaced is not None:
        remove_tree(replaced)
    log.info("rolled %s back", where)


def _copy(src: Path, dest: Path, where: str) -> None:
    done = subprocess.run(["cp", "-a", "--sparse=always", "--", str(src), str(dest)],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          env={**os.environ, "LC_ALL": "C"})
    if done.returncode != 0:
        remove_tree(dest)
        said = done.stderr.strip().splitlines()
        raise CheckpointFailed(f"{where}: copying the guest's files out of the checkpoint "
                               f"failed: {said[-1] if said else f'cp exit {done.returncode}'}",
                               hint="Free space beside the guest (the copy needs as much as "
                                    "the guest), then roll back again; the guest is unchanged.")
