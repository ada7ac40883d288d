"""The ``proxmox`` platform: guests of a Proxmox VE node, through pvesh, vzdump, pct, qm and
qmrestore run on that node (shared/reference/pve.md is the source of every fact used here).

Guests: ``pvesh get /cluster/resources --type vm`` (the whole cluster; this node's guests
are those whose ``node`` is this node's name, which must be the vzbackup node name).
Dump: ``vzdump VMID --stdout 1 --compress 0 --mode M`` plus the node's pass-through options;
vzdump's stdout (a tar for a CT, a VMA for a VM) is the stream the repository reads, its
task log arrives on stderr. The guest config (``pct config``/``qm config``) goes into the
manifest. vzdump takes its own snapshot, so the node's snapshotter must be ``none``.

Restore: ``pct restore VMID - --rootfs STORAGE:GiB ...`` / ``qmrestore - VMID ...``, fed from
the repository stream. These tools create the guest *while* they read, so the platform
contract (nothing is put in place before the stream is verified to its end) is kept thus:

- the last ``TAIL`` bytes of the stream are held back until the reader has reached its
  verified EOF, so the tool can never see a complete archive from a stream that fails;
- when the stream fails (a chunk or the whole-stream checksum, a cut connection), the tool
  gets SIGTERM while its archive is still incomplete. pct then fails its task and removes the
  volumes and config it created; qmrestore documents that it leaves the VM "NOT cleaned up".
  Either way, if a guest that did not exist before is left behind, it is removed here with
  ``pct|qm unlock`` and ``pct|qm destroy``: never a guest that existed before the restore;
- the trade-off of ``--force`` onto an existing guest: pct removes the old CT's volumes
  before it extracts, and qmrestore replaces the disks named in the backup as it writes them.
  There is no way through these tools to keep the old guest until the new one is complete
  (short of a full second copy), so a stream that fails mid-way leaves that guest without
  usable disks. The error says so; restore again from another copy. Without ``--force``
  nothing that existed is ever touched.

A VMID that the cluster holds on another node is refused (``GuestExists``). With ``--force``
the documented dead-node procedure (pve.md 9) is followed: only if the cluster reports the
guest not running and not HA-managed, its config file is moved from
``/etc/pve/nodes/<dead>/...`` into this node's directory, then the restore replaces it here.
The operator's ``--force`` is the statement that the other node is really off or fenced.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from ..config.model import ProxmoxConfig
from ..domain.guests import GuestRef
from ..errors import CheckpointFailed, DumpFailed, GuestCommandFailed, GuestExists, GuestNotFound, RestoreFailed
from ..ports import Dump, GuestInfo, Snapshotter
from .guestconf import parse_config
from .vzdumplog import parse_vzdump_log
from .pvetools import Running, ToolFailed, ToolResult, Tools
from .sanitize import run_sanitize

log = logging.getLogger(__name__)

TYPES = {"lxc": "ct", "openvz": "ct", "qemu": "vm"}
CONF_DIRS = {"ct": "lxc", "vm": "qemu-server"}
TAIL = 1 << 20  # bytes held back from the restore tool until the stream is verified
BLOCK = 1 << 20
DEFAULT_ROOTFS_GIB = "8"


class ProxmoxPlatform:
    name = "proxmox"

    def __init__(self, node_name: str, etc_pve: Path, options: ProxmoxConfig | None = None,
                 hook_script: str = ""):
        self.node_name = node_name
        self.hook_script = hook_script  # handed to vzdump --script
        self.etc_pve = Path(etc_pve)  # the cluster file system, mounted on every node
        self.options = options or ProxmoxConfig()
        self.tools = Tools(self.options.bin_dir)

    def _where(self, ref: GuestRef) -> str:
        return f"{ref} on node {self.node_name}"

    # ---- guests -----------------------------------------------------------------------------

    def resources(self) -> list[GuestInfo]:
        """Every guest of the cluster, with its node (pve.md 10.1; vmid as number or string,
        no name or status before monitoring data exists, type openvz from old schemas)."""
        try:
            entries = self.tools.pvesh_json("/cluster/resources", "--type", "vm")
        except ToolFailed as e:
            raise GuestCommandFailed(f"node {self.node_name}: cannot list the cluster's guests: {e}",
                                     hint="Check that pve-cluster runs on the node "
                                          "('pvesh get /cluster/resources' as root).") from None
        return [g for e in entries if (g := _guest(e)) is not None]

    def list_guests(self) -> list[GuestInfo]:
        return sorted((g for g in self.resources() if g.node == self.node_name), key=lambda g: g.ref)

    def find_guest(self, ref: GuestRef) -> GuestInfo | None:
        return next((g for g in self.list_guests() if g.ref == ref), None)

    def holder(self, vmid: int) -> GuestInfo | None:
        """The guest that holds ``vmid`` anywhere in the cluster (VMIDs are cluster-wide)."""
        return next((g for g in self.resources() if g.ref.vmid == vmid), None)

    def guest_config(self, ref: GuestRef) -> dict[str, str]:
        r = self.tools.run(_tool(ref), "config", str(ref.vmid))
        if r.code != 0:
            raise GuestNotFound(f"{self._where(ref)}: {_tool(ref)} config failed: {r.message()}")
        return parse_config(r.out)

    # ---- dump -------------------------------------------------------------------------------

    @contextmanager
    def dump(self, guest: GuestInfo, snapshotter: Snapshotter) -> Iterator[Dump]:
        ref = guest.ref
        here = self.find_guest(ref)
        if here is None:
            raise GuestNotFound(self._not_here(ref))
        config = self.guest_config(ref)
        running = self.tools.start("vzdump", *self.vzdump_args(ref))
        warnings: list[str] = []
        try:
            yield Dump(here, running.stdout, config, warnings)
            running.stdout.close()  # a reader that stopped early makes vzdump fail, not hang
            result = running.finish()
        except BaseException:
            running.stop()
            raise
        warnings += self._judge_dump(ref, result, running.marks)

    def vzdump_args(self, ref: GuestRef) -> list[str]:
        o = self.options
        args = [str(ref.vmid), "--stdout", "1", "--compress", "0", "--mode", o.dump_mode,
                "--ionice", str(o.ionice), "--lockwait", str(o.lockwait),
                "--stopwait", str(o.stopwait), "--stdexcludes", "1" if o.stdexcludes else "0"]
        if o.bwlimit:
            args += ["--bwlimit", str(o.bwlimit)]
        if o.tmpdir:
            args += ["--tmpdir", o.tmpdir]
        if self.hook_script:
            args += ["--script", self.hook_script]
        if ref.kind == "ct":  # exclude-path is for containers only
            for pattern in o.exclude_path:
                args += ["--exclude-path", pattern]
        return args

    def _judge_dump(self, ref: GuestRef, result: ToolResult, marks: list[str]) -> list[str]:
        log = parse_vzdump_log(marks)  # the task log's lines that decide (vzdumplog.py)
        guest = log.guest(ref.vmid)
        if result.code != 0 or (guest is not None and guest.failure) or log.job == "failed":
            cause = (guest.failure if guest else "") or log.job_error or result.message()
            raise DumpFailed(f"{self._where(ref)}: vzdump failed (exit {result.code}): {cause}",
                             hint=_dump_hint(result.message(), ref))
        if guest is None or not guest.ok:
            raise DumpFailed(f"{self._where(ref)}: vzdump exited 0 without backing up VMID "
                             f"{ref.vmid} (it skips guests that live on another node)",
                             hint="Run 'vzbackup backup' again: guests are looked up anew.")
        return guest.warnings + log.warnings

    def _not_here(self, ref: GuestRef) -> str:
        other = self.holder(ref.vmid)
        if other is None:
            return f"{self._where(ref)}: the cluster has no guest with VMID {ref.vmid}"
        return f"{self._where(ref)}: VMID {ref.vmid} is {other.ref} on node {other.node}"

    # ---- restore ----------------------------------------------------------------------------

    def restore(self, target: GuestRef, stream: BinaryIO, *, name: str,
                config: dict[str, Any], force: bool = False) -> GuestInfo:
        """See the module docstring and ``ports.Platform.restore``."""
        existed = self._claim(target, force)
        args = self._restore_args(target, name, config, force=existed)
        running = self.tools.start(*args, stdin=True)
        try:
            fed = _feed(running, stream)
        except BaseException as e:
            result = running.stop()
            self._after_failure(target, existed, result)
            if isinstance(e, OSError):
                raise RestoreFailed(self._failed(target, existed, result)) from None
            if existed:  # the stream's own error goes on (the next copy may be tried)
                log.error("%s", self._failed(target, existed, result))
            raise
        result = running.finish()
        if result.code != 0 or not fed:
            self._after_failure(target, existed, result)
            if "already exists on node" in result.message():
                raise GuestExists(f"{self._where(target)}: {result.message()}")
            raise RestoreFailed(self._failed(target, existed, result))
        found = self.find_guest(target)
        if found is None:
            raise RestoreFailed(f"{self._where(target)}: {args[0]} reported success but the "
                                "cluster does not list the guest")
        log.info("restored %s", self._where(target))
        return found

    def _claim(self, target: GuestRef, force: bool) -> bool:
        """Whether ``target`` exists on this node (to be replaced); refuse a VMID held
        elsewhere unless ``force`` (then move it here: the dead-node procedure)."""
        holder = self.holder(target.vmid)
        if holder is None:
            return False
        if holder.ref.kind != target.kind:
            raise GuestExists(f"{self._where(target)}: VMID {target.vmid} is {holder.ref} on "
                              f"node {holder.node}", hint="Restore under another ID with --as ID.")
        if not force:
            where = "" if holder.node == self.node_name else f" (it lives on node {holder.node})"
            raise GuestExists(f"{self._where(target)}: VMID {target.vmid} already exists in the "
                              f"cluster{where}", hint=_exists_hint(holder, self.node_name))
        if holder.node != self.node_name:
            self.adopt_from_dead_node(holder)
        return True

    def adopt_from_dead_node(self, guest: GuestInfo) -> None:
        """pve.md 9: move the guest's config from the dead node's directory to this node's."""
        what = f"{guest.ref} (held by node {guest.node})"
        if guest.status == "running":
            raise GuestExists(f"{what}: the cluster reports it running, so node {guest.node} "
                              f"is alive: --force will not take it to node {self.node_name}",
                              hint=f"Migrate it or stop it on {guest.node}, or restore under "
                                   "another ID with --as ID.")
        if guest.config.get("hastate"):
            raise GuestExists(f"{what}: it is HA-managed (state {guest.config['hastate']}); "
                              "the HA stack recovers it",
                              hint="Remove it from HA ('ha-manager remove') first, or restore "
                                   "under another ID with --as ID.")
        sub = CONF_DIRS[guest.ref.kind]
        src = self.etc_pve / "nodes" / guest.node / sub / f"{guest.ref.vmid}.conf"
        dst = self.etc_pve / "nodes" / self.node_name / sub / f"{guest.ref.vmid}.conf"
        try:
            os.rename(src, dst)
        except OSError as e:
            raise RestoreFailed(f"{what}: cannot move {src} to {dst}: {e}",
                                hint="Is /etc/pve mounted and the cluster quorate ('pvecm "
                                     "status')?") from None
        log.warning("moved %s from node %s to node %s (dead-node procedure, pve-docs "
                    "pmxcfs.adoc)", src, guest.node, self.node_name)

    def _restore_args(self, target: GuestRef, name: str, config: dict[str, Any], *,
                      force: bool) -> list[str]:
        o = self.options
        flags = (["--force", "1"] if force else []) + (["--unique", "1"] if o.restore_unique else [])
        flags += ["--start", "1"] if o.restore_start else []
        if target.kind == "vm":
            storage = ["--storage", o.restore_storage] if o.restore_storage else []
            return ["qmrestore", "-", str(target.vmid), *storage, *flags]
        args = ["pct", "restore", str(target.vmid), "-", "--rootfs",
                _volume_spec(str(config.get("rootfs", "")), o.restore_storage, "local")]
        for key in sorted(k for k in config if re.fullmatch(r"mp\d+", k)):
            if re.search(r"(^|,)backup=1", str(config[key])):  # only what vzdump included
                args += [f"--{key}", _volume_spec(str(config[key]), o.restore_storage, "local",
                                                  keep_props=True)]
        if name and name != config.get("hostname"):
            args += ["--hostname", name]
        return args + flags

    def _after_failure(self, target: GuestRef, existed: bool, result: ToolResult) -> None:
        """Remove a guest the failed restore created; never one that existed before."""
        if existed:
            return
        left = self.find_guest(target)
        if left is None:
            return
        tool = _tool(target)
        self.tools.run(tool, "unlock", str(target.vmid))
        gone = self.tools.run(tool, "destroy", str(target.vmid))
        if gone.code != 0:
            log.error("%s: could not remove the half-restored guest: %s", self._where(target),
                      gone.message())
        else:
            log.warning("%s: removed the half-restored guest (%s left it)", self._where(target),
                        tool if target.kind == "ct" else "qmrestore")

    def _failed(self, target: GuestRef, existed: bool, result: ToolResult) -> str:
        tool = "pct restore" if target.kind == "ct" else "qmrestore"
        said = result.message()
        if existed and not result.out.strip():  # refused before its task: nothing touched
            return f"{self._where(target)}: {tool} --force refused: {said}; the guest is unchanged"
        if existed:
            return (f"{self._where(target)}: {tool} --force failed ({said}); the old guest's "
                    "disks were already being replaced, so it is not usable: restore again")
        return f"{self._where(target)}: {tool} failed ({said}); nothing was left behind"

    def reconfigure(self, target: GuestRef, changes: dict[str, str]) -> GuestInfo:
        """``pct set``/``qm set VMID --key value ...`` (a CT's name is ``hostname``, a VM's
        ``name``: the other one is translated)."""
        name_key = "hostname" if target.kind == "ct" else "name"
        args: list[str] = []
        for key, value in sorted(changes.items()):
            key = name_key if key in ("hostname", "name") else key
            args += [f"--{key}", value]
        if args:
            self._guest_cmd(target, "set", *args)
        found = self.find_guest(target)
        if found is None:
            raise GuestNotFound(self._not_here(target))
        return found

    # ---- branches: destroy a clone, sanitize it -----------------------------------------

    def destroy(self, target: GuestRef) -> None:
        """``pct|qm stop`` if it runs (``pct unmount`` if a killed sanitize left it mounted),
        then ``pct|qm destroy VMID --purge 1`` (its volumes and its entries in jobs and HA go
        with it)."""
        guest = self.find_guest(target)
        if guest is None:
            raise GuestNotFound(self._not_here(target))
        if guest.status == "running":
            self._guest_cmd(target, "stop")
        if target.kind == "ct" and guest.config.get("lock") == "mounted":  # a killed sanitize
            self._guest_cmd(target, "unmount")
        self._guest_cmd(target, "destroy", "--purge", "1")
        log.info("destroyed %s", self._where(target))

    def sanitize(self, target: GuestRef, script: str, env: dict[str, str]) -> None:
        """A container: ``pct mount VMID`` (its root file system on the node, the CT locked
        ``mounted``), the script with the folder pct names (``mounted CT VMID in 'DIR'``),
        then ``pct unmount VMID`` whatever happened. A VM: the script without a folder (see ``sanitize.py``)."""
        if self.find_guest(target) is None:
            raise GuestNotFound(self._not_here(target))
        if target.kind == "vm":
            run_sanitize(script, None, env, self._where(target))
            return
        r = self.tools.run("pct", "mount", str(target.vmid))
        m = re.search(r"mounted CT \d+ in '([^']+)'", r.out)
        if r.code != 0 or m is None:
            raise GuestCommandFailed(f"{self._where(target)}: pct mount failed: {r.message()}",
                                     hint=_lock_hint(r.message(), target))
        try:
            run_sanitize(script, Path(m.group(1)), env, self._where(target))
        finally:
            self._guest_cmd(target, "unmount")

    # ---- checkpoints: pct/qm snapshot, rollback, delsnapshot (pve.md 8.1) ----

    def start_guest(self, ref: GuestRef) -> GuestInfo:
        """``pct start``/``qm start VMID`` (pve.md 8.1's verbs), then the guest as listed."""
        self.start(ref)
        found = self.find_guest(ref)
        if found is None:
            raise GuestNotFound(self._not_here(ref))
        return found

    def checkpoint_space(self, refs: list[GuestRef], label: str, snapshotter: Snapshotter) -> None:
        """No guard of vzbackup's own: the storage decides, and pct/qm snapshot refuse."""

    def take_checkpoint(self, ref: GuestRef, label: str, snapshotter: Snapshotter) -> None:
        try:
            self.snapshot(ref, label, "vzbackup checkpoint")
        except GuestCommandFailed as e:
            raise CheckpointFailed(f"checkpoint {label}: {e.message}", hint=e.hint) from None

    def rollback_checkpoint(self, ref: GuestRef, label: str, snapshotter: Snapshotter) -> None:
        try:
            self.rollback(ref, label)
        except GuestCommandFailed as e:
            raise CheckpointFailed(f"rollback to checkpoint {label}: {e.message}",
                                   hint=e.hint) from None

    def drop_checkpoint(self, ref: GuestRef, label: str, snapshotter: Snapshotter) -> None:
        try:
            self.delete_snapshot(ref, label)
        except GuestCommandFailed as e:
            if "does not exist" in e.message:
                return
            raise CheckpointFailed(f"dropping checkpoint {label}: {e.message}",
                                   hint=e.hint) from None

    # ---- snapshots, start, stop, status (pve.md 8.1) ----------------------------------------

    def snapshot(self, ref: GuestRef, snapname: str, description: str = "") -> None:
        extra = ["--description", description] if description else []
        self._guest_cmd(ref, "snapshot", snapname, *extra)

    def rollback(self, ref: GuestRef, snapname: str, start: bool = False) -> None:
        self._guest_cmd(ref, "rollback", snapname, *(["--start", "1"] if start else []))

    def delete_snapshot(self, ref: GuestRef, snapname: str, force: bool = False) -> None:
        self._guest_cmd(ref, "delsnapshot", snapname, *(["--force", "1"] if force else []))

    def start(self, ref: GuestRef) -> None:
        self._guest_cmd(ref, "start")

    def stop(self, ref: GuestRef) -> None:
        self._guest_cmd(ref, "stop")

    def status(self, ref: GuestRef) -> str:
        guest = self.find_guest(ref)
        if guest is None:
            raise GuestNotFound(self._not_here(ref))
        return guest.status

    def _guest_cmd(self, ref: GuestRef, verb: str, *args: str) -> None:
        r = self.tools.run(_tool(ref), verb, str(ref.vmid), *args)
        if r.code != 0:
            if "does not exist" in r.message() and "snapshot" not in r.message():
                raise GuestNotFound(f"{self._where(ref)}: {r.message()}")
            raise GuestCommandFailed(f"{self._where(ref)}: {_tool(ref)} {verb} failed: "
                                     f"{r.message()}", hint=_lock_hint(r.message(), ref))


# ---- helpers -----------------------------------------------------------------------------------


def _tool(ref: GuestRef) -> str:
    return "pct" if ref.kind == "ct" else "qm"


def _guest(entry: dict[str, Any]) -> GuestInfo | None:
    kind = TYPES.get(str(entry.get("type", "")))
    try:
        vmid = int(entry.get("vmid") or str(entry.get("id", "")).rpartition("/")[2])
    except ValueError:
        return None
    if kind is None or vmid < 100:
        return None
    ref = GuestRef(kind, vmid)  # type: ignore[arg-type]
    name = str(entry.get("name") or f"{'CT' if kind == 'ct' else 'VM'}{vmid}")
    config = {k: str(entry[k]) for k in ("pool", "tags", "lock", "hastate", "template")
              if entry.get(k) not in (None, "", 0)}
    if "tags" in config:  # ';' since PVE 7.3; ',' and ' ' in older configs
        config["tags"] = ";".join(t for t in re.split(r"[;, ]+", config["tags"]) if t)
    return GuestInfo(ref, name, str(entry.get("node", "")), str(entry.get("status") or "unknown"),
                     config)


def _volume_spec(prop: str, storage: str, fallback: str, keep_props: bool = False) -> str:
    """``STORAGE:GiB`` (plus ``,mp=...`` for a mount point) for a new volume like ``prop``."""
    volid = prop.split(",")[0].removeprefix("volume=")
    sid = storage or (volid.split(":")[0] if ":" in volid else fallback)
    m = re.search(r"(?:^|,)size=([0-9.]+)([KMGT]?)", prop)
    gib = DEFAULT_ROOTFS_GIB
    if m:
        scale = {"K": 1 / 2**20, "M": 1 / 1024, "G": 1, "T": 1024, "": 1 / 2**30}[m.group(2)]
        value = float(m.group(1)) * scale
        gib = str(int(value)) if value == int(value) else f"{value:.3f}".rstrip("0")
    props = [p for p in prop.split(",")[1:] if keep_props and re.match(r"(mp|backup|acl|ro)=", p)]
    return ",".join([f"{sid}:{gib}", *props])


def _feed(running: Running, stream: BinaryIO) -> bool:
    """Copy ``stream`` to the tool's stdin, holding the last ``TAIL`` bytes back until the
    stream's verified EOF. False if the tool stopped reading early."""
    stdin = running.proc.stdin
    assert stdin is not None
    held = bytearray()
    try:
        while True:
            data = stream.read(BLOCK)
            if not data:
                break
            held += data
            if len(held) > TAIL:
                stdin.write(held[:-TAIL])
                del held[:-TAIL]
        stdin.write(held)
        stdin.close()
    except BrokenPipeError:
        return False
    return True


def _exists_hint(holder: GuestInfo, here: str) -> str:
    if holder.node == here:
        return "Pass --force to replace it, or restore under another ID with --as ID."
    return (f"If node {holder.node} is dead and fenced, --force moves the guest's config to "
            f"{here} (the documented dead-node procedure) and restores over it; otherwise "
            "restore under another ID with --as ID.")


def _dump_hint(message: str, ref: GuestRef) -> str:
    if "is locked" in message:
        return _lock_hint(message, ref)
    if "vzdump.lock" in message or "global lock" in message or "unexpected control message" in message:
        return "Another vzdump job runs on the node; raise pve_lockwait or run later."
    if "hook script" in message or re.search(r"command '\S+ (job|backup|pre|post|log)-", message):
        return "The node's hook script (hook_script) failed in the phase named above."
    return "Read vzdump's log lines above, fix the guest or node, then back up again."


def _lock_hint(message: str, ref: GuestRef) -> str:
    if "is locked" in message:
        return (f"A crashed backup or snapshot can leave the lock: check that none runs, then "
                f"'{_tool(ref)} unlock {ref.vmid}' on the node.")
    return "Read the tool's message above; the guest is unchanged unless it says otherwise."
