"""The ``directory`` platform: guests are folders under a node root.

    <root>/ct<VMID>/rootfs/      a container's root file system
    <root>/ct<VMID>/guest.conf   ``hostname: ...`` and any other ``key: value`` lines
    <root>/vm<VMID>/disk-0.raw   a VM's disk images (possibly sparse)
    <root>/vm<VMID>/guest.conf   ``name: ...`` and ``disk0: disk-0.raw``, ``disk1: ...``

A dump is a GNU tar stream of a snapshot of the guest's folder: ``./...`` for a container's
rootfs, the image files for a VM. A restore extracts the stream with ``tarsafe`` into
``<root>/.restore-<guest>-<random>/``, reads it to EOF, writes ``guest.conf``, then renames
the result into place (``install``). Dot-folders are never guests.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from ..domain.guests import GuestRef
from ..errors import DumpFailed, GuestExists, GuestNotFound, RestoreFailed, UsageError
from ..ports import Dump, GuestInfo, Snapshotter
from .dircheckpoints import DirectoryCheckpoints
from .guestconf import CONFIG_NAME, read_config, write_config
from .hooks import HookScript, hooked
from .install import install_folder, recover_replaced, remove_tree
from .sanitize import run_sanitize
from .tarproc import tar_argv, tar_stream
from .tarsafe import extract_stream

log = logging.getLogger(__name__)

ROOTFS = "rootfs"
STAGING_PREFIX = ".restore-"
_FOLDER = re.compile(r"^(ct|vm)(\d+)$")
_DISK_KEY = re.compile(r"^disk(\d+)$")
_NAME_KEY = {"ct": "hostname", "vm": "name"}


class DirectoryPlatform:
    """Guests as folders under ``root`` on the node ``node_name``."""

    name = "directory"

    def __init__(self, root: Path, node_name: str, *, tar: str = "tar",
                 as_root: bool | None = None, hook_script: str = ""):
        self.root = Path(root)
        self.hook = HookScript(hook_script) if hook_script else None  # hooks.py
        self.node_name = node_name
        self.tar = tar  # GNU tar's command name ("gtar" on some systems)
        self.as_root = as_root  # None: whether the process runs as root

    # ---- guests -----------------------------------------------------------------------

    def list_guests(self) -> list[GuestInfo]:
        with os.scandir(self.root) as entries:
            refs = [GuestRef(m.group(1), int(m.group(2)))  # type: ignore[arg-type]
                    for e in entries
                    if (m := _FOLDER.match(e.name)) and e.is_dir(follow_symlinks=False)]
        return [self._info(ref) for ref in sorted(refs)]

    def find_guest(self, ref: GuestRef) -> GuestInfo | None:
        folder = self.folder(ref)
        return self._info(ref) if folder.is_dir() and not folder.is_symlink() else None

    @property
    def guests_dir(self) -> Path:
        return self.root

    def folder(self, ref: GuestRef) -> Path:
        return self.root / str(ref)

    def _info(self, ref: GuestRef) -> GuestInfo:
        config = read_config(self.folder(ref))
        name = config.get(_NAME_KEY[ref.kind]) or str(ref)
        return GuestInfo(ref, name, self.node_name, "stopped", config)

    def _where(self, ref: GuestRef) -> str:
        return f"{ref} on node {self.node_name}"

    # ---- dump -------------------------------------------------------------------------

    @contextmanager
    def dump(self, guest: GuestInfo, snapshotter: Snapshotter) -> Iterator[Dump]:
        ref = guest.ref
        folder = self.folder(ref)
        if not folder.is_dir() or folder.is_symlink():
            raise GuestNotFound(f"{self._where(ref)}: no guest folder {folder}")
        tag = f"{ref}-{secrets.token_hex(4)}"
        warnings: list[str] = []
        with hooked(self.hook, ref, guest.name, self._where(ref), warnings) as phase:
            phase("pre-stop")
            with snapshotter.snapshot(folder, tag) as view:
                phase("pre-restart")
                phase("post-restart")
                config = read_config(view)
                argv = self._dump_argv(ref, view, config)
                with tar_stream(argv, self._where(ref), warnings) as stream:
                    yield Dump(guest, stream, config, warnings)

    def _dump_argv(self, ref: GuestRef, view: Path, config: Mapping[str, str]) -> list[str]:
        if ref.kind == "ct":
            rootfs = view / ROOTFS
            if not rootfs.is_dir() or rootfs.is_symlink():
                raise DumpFailed(f"{self._where(ref)}: no {ROOTFS}/ folder in {self.folder(ref)}")
            return tar_argv(self.tar, rootfs, ["."])
        return tar_argv(self.tar, view, self._disks(ref, view, config))

    def _disks(self, ref: GuestRef, view: Path, config: Mapping[str, str]) -> list[str]:
        """The ``diskN`` entries in order, or else every regular file but the config."""
        keyed = sorted((int(m.group(1)), v) for k, v in config.items() if (m := _DISK_KEY.match(k)))
        disks = [v for _, v in keyed] or sorted(
            e.name for e in os.scandir(view)
            if e.is_file(follow_symlinks=False) and e.name != CONFIG_NAME)
        bad = [d for d in disks if "/" in d or d in ("", ".", "..")]
        if bad or not disks:
            raise DumpFailed(f"{self._where(ref)}: bad or no disk images in {CONFIG_NAME}: {bad}")
        return disks

    # ---- restore ----------------------------------------------------------------------

    def restore(self, target: GuestRef, stream: BinaryIO, *, name: str,
                config: dict[str, Any], force: bool = False) -> GuestInfo:
        """See ``ports.Platform.restore``. The caller holds the guest's lock: leftovers of
        an earlier restore of ``target`` are removed first."""
        dest = self.folder(target)
        self.cleanup_staging(target)
        if not force and os.path.lexists(dest):
            raise GuestExists(f"{self._where(target)} already exists ({dest})")
        try:
            staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{target}-", dir=self.root))
        except OSError as e:
            raise RestoreFailed(f"{self._where(target)}: cannot create a folder in {self.root}: {e}") from e
        try:
            self._fill(staging, target, stream, name, config)
            old = install_folder(staging, dest, replace=force)
        except FileExistsError as e:
            remove_tree(staging)
            raise GuestExists(f"{self._where(target)} appeared during the restore ({dest})") from e
        except OSError as e:
            remove_tree(staging)
            raise RestoreFailed(f"{self._where(target)}: restore into {self.root} failed: {e}") from e
        except BaseException:
            remove_tree(staging)
            raise
        if old is not None:
            remove_tree(old)
        log.info("restored %s into %s", self._where(target), dest)
        return self._info(target)

    def _fill(self, staging: Path, target: GuestRef, stream: BinaryIO, name: str,
              config: Mapping[str, Any]) -> None:
        os.chmod(staging, 0o755)
        content = staging
        if target.kind == "ct":
            content = staging / ROOTFS
            content.mkdir(0o755)
        extract_stream(stream, content, target=self._where(target), as_root=self.as_root)
        try:
            write_config(staging, self._restored_config(target, name, config))
        except (OSError, ValueError) as e:
            raise RestoreFailed(f"{self._where(target)}: cannot write {CONFIG_NAME}: {e}") from e

    @staticmethod
    def _restored_config(target: GuestRef, name: str, config: Mapping[str, Any]) -> dict[str, Any]:
        restored = dict(config)
        restored[_NAME_KEY[target.kind]] = name
        if "vmid" in restored:
            restored["vmid"] = str(target.vmid)
        return restored

    # ---- checkpoints (dircheckpoints.py) ------------------------------------------------

    def checkpoint_space(self, refs: list[GuestRef], label: str, snapshotter: Snapshotter) -> None:
        self._checkpoints.guard(refs, label, snapshotter)

    def take_checkpoint(self, ref: GuestRef, label: str, snapshotter: Snapshotter) -> None:
        self._checkpoints.take(ref, label, snapshotter)

    def rollback_checkpoint(self, ref: GuestRef, label: str, snapshotter: Snapshotter) -> None:
        self._checkpoints.rollback(ref, label, snapshotter)

    def drop_checkpoint(self, ref: GuestRef, label: str, snapshotter: Snapshotter) -> None:
        self._checkpoints.drop(ref, label, snapshotter)

    @property
    def _checkpoints(self) -> DirectoryCheckpoints:
        return DirectoryCheckpoints(self.root, self.node_name)

    def start_guest(self, ref: GuestRef) -> GuestInfo:
        raise UsageError(f"{self._where(ref)}: the directory platform keeps guests as folders; "
                         "nothing runs them, so there is nothing to start",
                         hint="Start it with whatever uses the folder, or use a Proxmox VE or "
                              "OpenVZ node.")

    def reconfigure(self, target: GuestRef, changes: dict[str, str]) -> GuestInfo:
        """Merge ``changes`` into the guest's ``guest.conf`` (written atomically)."""
        folder = self.folder(target)
        if not folder.is_dir() or folder.is_symlink():
            raise GuestNotFound(f"{self._where(target)}: no guest folder {folder}")
        try:
            write_config(folder, {**read_config(folder), **changes})
        except (OSError, ValueError) as e:
            raise RestoreFailed(f"{self._where(target)}: cannot write {CONFIG_NAME}: {e}") from e
        return self._info(target)

    # ---- branches: destroy a clone, sanitize it ----------------------------------------

    def destroy(self, target: GuestRef) -> None:
        """Remove the guest's folder: renamed to a dot-folder first (no longer a guest, even
        if the removal is cut short), then deleted."""
        folder = self.folder(target)
        if not folder.is_dir() or folder.is_symlink():
            raise GuestNotFound(f"{self._where(target)}: no guest folder {folder}")
        doomed = self.root / f".destroy-{target}-{secrets.token_hex(4)}"
        try:
            os.rename(folder, doomed)
            remove_tree(doomed)
        except OSError as e:
            raise RestoreFailed(f"{self._where(target)}: cannot remove {folder}: {e}") from e
        log.info("destroyed %s", self._where(target))

    def sanitize(self, target: GuestRef, script: str, env: dict[str, str]) -> None:
        """Run ``script`` with the guest's root (a container's ``rootfs/``, a VM's folder)."""
        folder = self.folder(target)
        if not folder.is_dir() or folder.is_symlink():
            raise GuestNotFound(f"{self._where(target)}: no guest folder {folder}")
        root = folder / ROOTFS if target.kind == "ct" else folder
        run_sanitize(script, root, env, self._where(target))

    def cleanup_staging(self, target: GuestRef | None = None) -> list[Path]:
        """Remove restore leftovers of ``target`` (or of every guest) from a crash. Without
        ``target``, call it only while no restore runs on this node (e.g. at start-up)."""
        pattern = f"{target}-*" if target else "*"
        removed = []
        for path in sorted(self.root.glob(f"{STAGING_PREFIX}{pattern}")):
            remove_tree(path)
            removed.append(path)
        dests = [self.folder(target)] if target else self._replaced_dests()
        for dest in dests:
            for path in recover_replaced(dest):
                remove_tree(path)
                removed.append(path)
        if removed:
            log.warning("removed restore leftovers on node %s: %s", self.node_name,
                        ", ".join(p.name for p in removed))
        return removed

    def _replaced_dests(self) -> list[Path]:
        names = {p.name.split("-")[1] for p in self.root.glob(".replaced-*-*")}
        return [self.root / n for n in sorted(names) if _FOLDER.match(n)]
