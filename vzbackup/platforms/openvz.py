"""The ``openvz`` platform: legacy OpenVZ nodes, driven by ``vzlist`` and ``vzctl``.

    <root>/private/<ctid>/        a container's private area (its files), VE_PRIVATE
    <conf_dir>/<ctid>.conf        its config, /etc/vz/conf by default

Containers only (``ct<ctid>``). A dump is what vzdump's OpenVZ snapshot mode made
(shared/reference/pve.md section 12.1): a snapshot of the volume holding the private areas
(the ``lvm`` snapshotter, mounted read-only), then a GNU tar of ``./etc/vzdump/vps.conf``
followed by the private area; leaving the dump unmounts and removes the snapshot. Such a
stream is a ``vzdump-openvz-*.tar`` archive, which ``pct restore`` converts to LXC.

A checkpoint (snapshotter ``lvm``) is a persistent snapshot of that volume
(``snapshots/lvmcheckpoints.py``); rollback copies the container's private area out of it
and swaps it in, with the container stopped for the swap if it ran (``volcheckpoints.py``).

A restore extracts into ``<root>/private/.restore-ct<ctid>-<random>/``, takes the config
back out of it, renames the folder into place, then writes ``<ctid>.conf`` (a crash before
that leaves a private area without config: invisible to vzlist, removed on the next restore).
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from ..domain.guests import GuestRef
from ..errors import (
    BranchFailed, CheckpointFailed, DumpFailed, EnvironmentBroken, GuestCommandFailed, GuestExists,
    GuestNotFound, RestoreFailed,
)
from ..ports import Dump, GuestInfo, Snapshotter, VolumeCheckpoints
from .directory import STAGING_PREFIX, remove_tree
from .install import install_folder
from .tarproc import TAR_FLAGS, tar_stream
from .tarsafe import extract_stream
from .volcheckpoints import rollback_folder
from ..domain.vzconf import parse_vzconf, update_vzconf

log = logging.getLogger(__name__)

VPS_CONF = "etc/vzdump/vps.conf"  # where vzdump put the config inside the archive
_STATUS = re.compile(r"^CTID (\d+) (exist|deleted) (mounted|unmounted) (running|down)( suspended)?$")


class OpenVzPlatform:
    name = "openvz"

    def __init__(self, root: Path, node_name: str, *, conf_dir: Path = Path("/etc/vz/conf"),
                 tar: str = "tar", as_root: bool | None = None):
        self.root = Path(root)
        self.node_name = node_name
        self.conf_dir = Path(conf_dir)
        self.tar, self.as_root = tar, as_root

    @property
    def guests_dir(self) -> Path:
        return self.root / "private"

    def _where(self, ref: GuestRef) -> str:
        return f"{ref} on node {self.node_name}"

    # ---- discovery ------------------------------------------------------------------------

    def list_guests(self) -> list[GuestInfo]:
        return [self._info(c) for c in self._vzlist()]

    def find_guest(self, ref: GuestRef) -> GuestInfo | None:
        if ref.kind != "ct":
            return None
        found = [c for c in self._vzlist() if c["ctid"] == ref.vmid]
        return self._info(found[0]) if found else None

    def _vzlist(self) -> list[dict[str, Any]]:
        """Every container, from ``vzlist -a -j`` (vzctl 4.x) or its columns (3.x)."""
        done = _run(["vzlist", "-a", "-j"], self.node_name)
        if done.returncode == 0:
            return [{**c, "ctid": int(c["ctid"])} for c in json.loads(done.stdout or "[]")]
        if "option" not in done.stderr:  # not "unrecognized option"/"invalid option -- 'j'"
            raise _failed("vzlist -a -j", done, self.node_name)
        done = _run(["vzlist", "-a", "-H", "-o", "ctid,hostname,status,private"], self.node_name)
        if done.returncode != 0:
            raise _failed("vzlist -a", done, self.node_name)
        rows = [line.split() for line in done.stdout.splitlines() if line.strip()]
        return [{"ctid": int(r[0]), "hostname": None if r[1] == "-" else r[1], "status": r[2],
                 "private": r[3]} for r in rows if len(r) >= 4 and r[0].isdigit()]

    def _info(self, c: dict[str, Any]) -> GuestInfo:
        ref = GuestRef("ct", c["ctid"])
        status = "running" if c.get("status") in ("running", "suspended") else "stopped"
        config = self._config(c["ctid"])
        config["private"] = c.get("private") or ""
        return GuestInfo(ref, c.get("hostname") or str(ref), self.node_name, status, config)

    def _config(self, ctid: int) -> dict[str, Any]:
        try:
            return dict(parse_vzconf(self._conf_path(ctid).read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError):
            return {}

    def _conf_path(self, ctid: int) -> Path:
        return self.conf_dir / f"{ctid}.conf"

    def status(self, ref: GuestRef) -> tuple[bool, bool]:
        """(exists, running) from ``vzctl status``."""
        done = _run(["vzctl", "status", str(ref.vmid)], self.node_name)
        m = _STATUS.match(done.stdout.strip())
        if done.returncode != 0 or m is None:
            raise _failed(f"vzctl status {ref.vmid}", done, self.node_name)
        return m.group(2) == "exist", m.group(4) == "running"

    # ---- dump -----------------------------------------------------------------------------

    @contextmanager
    def dump(self, guest: GuestInfo, snapshotter: Snapshotter) -> Iterator[Dump]:
        ref = guest.ref
        current = self.find_guest(ref)
        if current is None:
            raise GuestNotFound(f"{self._where(ref)}: vzlist does not list it")
        private = Path(current.config.get("private") or self.guests_dir / str(ref.vmid))
        conf_text = self._conf_text(ref)
        tag = f"{ref}-{secrets.token_hex(4)}"
        with tempfile.TemporaryDirectory(prefix="vzbackup-vpsconf-") as tmp:
            (Path(tmp) / VPS_CONF).parent.mkdir(parents=True)
            (Path(tmp) / VPS_CONF).write_text(conf_text, encoding="utf-8")
            with snapshotter.snapshot(private, tag) as view:
                if not view.is_dir():
                    raise DumpFailed(f"{self._where(ref)}: its private area {private} is missing")
                argv = [self.tar, *TAR_FLAGS, "--directory", tmp, f"./{VPS_CONF}",
                        "--directory", str(view), "."]
                warnings: list[str] = []
                with tar_stream(argv, self._where(ref), warnings) as stream:
                    yield Dump(current, stream, dict(parse_vzconf(conf_text)), warnings)

    def _conf_text(self, ref: GuestRef) -> str:
        try:
            return self._conf_path(ref.vmid).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise DumpFailed(f"{self._where(ref)}: cannot read its config "
                             f"{self._conf_path(ref.vmid)}: {e}") from None

    # ---- restore --------------------------------------------------------------------------

    def restore(self, target: GuestRef, stream: BinaryIO, *, name: str, config: dict[str, Any],
                force: bool = False) -> GuestInfo:
        """See ``ports.Platform.restore``; the caller holds the guest's lock."""
        if target.kind != "ct":
            raise RestoreFailed(f"{self._where(target)}: an OpenVZ node runs containers only",
                                hint="Restore VMs onto a Proxmox or directory node.")
        exists, running = self.status(target)
        if exists and not force:
            raise GuestExists(f"{self._where(target)} already exists ({self._conf_path(target.vmid)})")
        if exists and running:
            raise RestoreFailed(f"{self._where(target)} is running: it cannot be replaced",
                                hint=f"Stop it first (vzctl stop {target.vmid}), then restore "
                                     "with --force.")
        dest = self.guests_dir / str(target.vmid)
        for old in self.guests_dir.glob(f"{STAGING_PREFIX}{target}-*"):
            remove_tree(old)
        staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{target}-", dir=self.guests_dir))
        try:
            os.chmod(staging, 0o755)
            extract_stream(stream, staging, target=self._where(target), as_root=self.as_root)
            conf_text = self._take_conf(staging, config)
            old = install_folder(staging, dest, replace=exists or dest.exists())
        except BaseException:
            remove_tree(staging)
            raise
        if old is not None:
            remove_tree(old)
        self._write_conf(target, conf_text, name, dest)
        log.info("restored %s into %s", self._where(target), dest)
        info = self.find_guest(target)
        assert info is not None
        return info

    def _take_conf(self, staging: Path, config: dict[str, Any]) -> str:
        """The config the archive carries (removed from the private area), else the one
        recorded with the restore point."""
        inside = staging / VPS_CONF
        if inside.is_file() and not inside.is_symlink():
            text = inside.read_text(encoding="utf-8", errors="replace")
            inside.unlink()
            for folder in (inside.parent, inside.parent.parent):
                try:
                    folder.rmdir()  # only if the container had nothing else there
                except OSError:
                    break
            return text
        return "".join(f'{k}="{v}"\n' for k, v in config.items()
                       if re.fullmatch(r"[A-Z_][A-Z0-9_]*", k) and isinstance(v, str))

    # ---- checkpoints: LVM snapshots of the volume (snapshots/lvmcheckpoints.py) -------------

    def _volume(self, ref: GuestRef, label: str, snapshotter: Snapshotter) -> VolumeCheckpoints:
        vol = snapshotter.volume_checkpoints
        if vol is None:
            raise CheckpointFailed(f"checkpoint {label} of {self._where(ref)}: OpenVZ "
                                   f"checkpoints need snapshotter = \"lvm\" (this node's is "
                                   f"'{snapshotter.name}')",
                                   hint="Take a restore point instead ('vzbackup backup').")
        return vol

    def _private(self, ref: GuestRef) -> Path:
        current = self.find_guest(ref)
        if current is None:
            raise GuestNotFound(f"{self._where(ref)}: vzlist does not list it")
        return Path(current.config.get("private") or self.guests_dir / str(ref.vmid))

    def checkpoint_space(self, refs: list[GuestRef], label: str, snapshotter: Snapshotter) -> None:
        self._volume(refs[0], label, snapshotter).guard([str(r) for r in refs], label)

    def take_checkpoint(self, ref: GuestRef, label: str, snapshotter: Snapshotter) -> None:
        vol = self._volume(ref, label, snapshotter)
        self._private(ref)
        vol.guard([str(ref)], label)
        vol.take(str(ref), label)

    def rollback_checkpoint(self, ref: GuestRef, label: str, snapshotter: Snapshotter) -> None:
        """The private area as at the checkpoint; a running container is stopped for the
        swap and started again. Its config (``CTID.conf``, not on the volume) stays."""
        vol = self._volume(ref, label, snapshotter)
        private = self._private(ref)
        rollback_folder(vol, str(ref), label, private,
                        f"{ref} on node {self.node_name} to checkpoint {label}", self._stopped(ref))

    def drop_checkpoint(self, ref: GuestRef, label: str, snapshotter: Snapshotter) -> None:
        self._volume(ref, label, snapshotter).drop(str(ref), label)

    @contextmanager
    def _stopped(self, ref: GuestRef) -> Iterator[None]:
        _exists, running = self.status(ref)
        if running:
            self._vzctl(ref, "stop")
        try:
            yield
        finally:
            if running:
                self._vzctl(ref, "start")

    def _vzctl(self, ref: GuestRef, verb: str) -> None:
        done = _run(["vzctl", verb, str(ref.vmid)], self.node_name)
        if done.returncode != 0:
            said = (done.stderr or done.stdout).strip().splitlines()
            raise GuestCommandFailed(f"{self._where(ref)}: vzctl {verb} failed (exit "
                                     f"{done.returncode}): {said[-1] if said else 'no message'}")

    def start_guest(self, ref: GuestRef) -> GuestInfo:
        """``vzctl start CTID`` (pve.md 12.3), then the container as vzlist shows it."""
        self._vzctl(ref, "start")
        info = self.find_guest(ref)
        if info is None:
            raise GuestNotFound(f"{self._where(ref)}: vzlist does not list it")
        return info

    def destroy(self, target: GuestRef) -> None:
        raise BranchFailed(f"{self._where(target)}: branches on OpenVZ nodes are not "
                           "supported (vzbackup does not remove OpenVZ containers)",
                           hint="Put the branch on a Proxmox VE or directory node.")

    def sanitize(self, target: GuestRef, script: str, env: dict[str, str]) -> None:
        self.destroy(target)

    def reconfigure(self, target: GuestRef, changes: dict[str, str]) -> GuestInfo:
        """Update the container's vps.conf: ``hostname`` is ``HOSTNAME``, upper-case keys
        (``IP_ADDRESS``) are written as given; ``netN`` (Proxmox keys) do not apply."""
        path = self._conf_path(target.vmid)
        if not path.is_file():
            raise GuestNotFound(f"{self._where(target)}: no config {path}")
        vz = {("HOSTNAME" if k in ("hostname", "name") else k): v for k, v in changes.items()
              if k in ("hostname", "name") or re.fullmatch(r"[A-Z_][A-Z0-9_]*", k)}
        try:
            write_atomically(path, update_vzconf(path.read_text(encoding="utf-8"), vz))
        except (OSError, ValueError) as e:
            raise RestoreFailed(f"{self._where(target)}: cannot update {path}: {e}") from e
        info = self.find_guest(target)
        if info is None:
            raise GuestNotFound(f"{self._where(target)}: vzlist does not list it")
        return info

    def _write_conf(self, target: GuestRef, text: str, name: str, private: Path) -> None:
        changes = {"VE_PRIVATE": str(private), "HOSTNAME": name}
        changes["VE_ROOT"] = str(self.root / "root" / str(target.vmid))
        try:
            self.conf_dir.mkdir(parents=True, exist_ok=True)
            write_atomically(self._conf_path(target.vmid), update_vzconf(text, changes))
        except (OSError, ValueError) as e:
            raise RestoreFailed(f"{self._where(target)}: its files are in {private} but its "
                                f"config cannot be written: {e}",
                                hint="Fix the cause, then restore again with --force.") from e


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _run(argv: list[str], node: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              env={**os.environ, "LC_ALL": "C"}, timeout=120)
    except FileNotFoundError:
        raise EnvironmentBroken(f"node {node}: {argv[0]} is not installed",
                                hint="This node is not an OpenVZ node: check nodes.NAME.platform.") from None
    except subprocess.TimeoutExpired:
        raise DumpFailed(f"node {node}: '{' '.join(argv)}' did not answer within 120 s") from None


def _failed(what: str, done: subprocess.CompletedProcess[str], node: str) -> DumpFailed:
    said = (done.stderr or done.stdout).strip().splitlines()
    return DumpFailed(f"node {node}: '{what}' failed (exit {done.returncode}): "
                      f"{said[-1] if said else 'no message'}")
