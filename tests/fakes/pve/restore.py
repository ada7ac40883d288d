"""Fake ``pct restore`` and ``qmrestore`` (pve.md 7.1, 7.2): the pre-task checks, volumes,
extraction from a file or stdin (GNU tar for CTs, the ``vma`` reader for VMs), config merge,
and each tool's own clean-up after a failure: pct removes its new volumes (and the config of
a CT that did not exist); qmrestore leaves the VM state NOT cleaned up."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys

from . import state
from .cli import Command, Die, Opt, parse
from .guests import volumes
from .tasks import Task, TaskError, run_task
from .vma import read_extents, read_header

CT_KEYS = ("arch", "cores", "cpulimit", "cpuunits", "memory", "swap", "nameserver",
           "searchdomain", "onboot", "description", "tags", "ostype", "features", "protection",
           "timezone", "cmode", "console", "tty")
NEVER_FROM_BACKUP = re.compile(r"^(rootfs|mp\d+|unused\d+|snapshots|parent|digest|template|lock)$")
TAR_FLAGS = ["--totals", "--one-file-system", "-p", "--sparse", "--numeric-owner", "--acls",
             "--xattrs", "--skip-old-files", "--anchored", "--exclude", "./dev/*"]


def _mac() -> str:
    prefix = "BC:24:11" if state.version() >= (8, 1) else "%02X:%02X:%02X" % (
        random.randrange(256) & 0xFE | 0x02, random.randrange(256), random.randrange(256))
    return prefix + "".join(f":{random.randrange(256):02X}" for _ in range(3))


def _unique_nets(values: dict[str, str], vm: bool) -> None:
    for key in [k for k in values if re.fullmatch(r"net\d+", k)]:
        if vm:
            values[key] = re.sub(r"^(\w+)=[0-9A-Fa-f:]{17}", lambda m: f"{m.group(1)}={_mac()}",
                                 values[key])
        else:
            values[key] = re.sub(r"hwaddr=[0-9A-Fa-f:]{17}", f"hwaddr={_mac()}", values[key])


def _exists_check(vmid: int, type_: str, force: bool, what: str) -> state.GuestConf | None:
    """None for a free VMID; the local guest to overwrite with ``force``; else ``Die``."""
    message = state.exists_error(vmid, type_)
    if message is None:
        return None
    old = state.load(vmid)
    assert old is not None
    local = old.node == state.node_name()
    if type_ == "qemu" and (not force or not local):
        raise Die(f"unable to restore VM {vmid} - {message}")
    if not force or not local or old.type != type_:
        raise Die(message)
    if state.status(vmid) == "running":
        raise Die("can't overwrite running container" if type_ == "lxc"
                  else f"unable to restore VM {vmid} - vm is running")
    if old.values.get("protection") == "1":
        raise Die(f"unable to restore {what} {vmid} - protection mode enabled")
    return old


# ---- pct restore ---------------------------------------------------------------------------------


def pct_restore(argv: list[str]) -> int:
    options = {"storage": Opt("str"), "rootfs": Opt("str"), "force": Opt("bool"),
               "unique": Opt("bool"), "unprivileged": Opt("bool"), "start": Opt("bool"),
               "hostname": Opt("str"), "pool": Opt("str"), "bwlimit": Opt("int", minimum=0),
               "ignore-unpack-errors": Opt("bool"), "ha-managed": Opt("bool"),
               **{f"mp{i}": Opt("str") for i in range(256)},
               **{f"net{i}": Opt("str") for i in range(32)}, **{k: Opt("str") for k in CT_KEYS}}
    pos, opts = parse(Command("pct restore <vmid> <ostemplate> [OPTIONS]", ("vmid", "ostemplate"),
                              options, {"vmid": Opt("vmid")}), argv)
    vmid, archive = pos["vmid"], pos["ostemplate"]
    if archive == "-" and "rootfs" not in opts:
        raise Die("restore from pipe requires rootfs parameter")
    old = _exists_check(vmid, "lxc", bool(opts.get("force")), "CT")
    return run_task("vzrestore", str(vmid), lambda t: _pct_body(t, vmid, archive, opts, old))


def _pct_body(t: Task, vmid: int, archive: str, opts: dict, old: state.GuestConf | None) -> None:
    me = state.node_name()
    conf = state.GuestConf(vmid, "lxc", me, values={"lock": "create"}) if old is None else old
    if old is None:
        conf.save()
    new_vols: list[str] = []
    try:
        mounts = {"rootfs": opts.get("rootfs") or f"{opts.get('storage', 'local')}:8"}
        mounts.update({k: v for k, v in opts.items() if re.fullmatch(r"mp\d+", k)})
        given: dict[str, str] = {}
        for key, spec in mounts.items():
            sid, _, rest = spec.partition(":")
            size, _, props = rest.partition(",")
            if not re.fullmatch(r"\d+(\.\d+)?", size):
                raise TaskError(f"unable to parse volume definition '{spec}'")
            volid = state.alloc_volume(sid, vmid, "rootdir")
            state.volume_path(volid).mkdir(parents=True)
            new_vols.append(volid)
            if state.storages()[sid].type == "lvmthin":
                t.log(f'  Logical volume "{volid.split(":")[1]}" created.')
            given[key] = f"{volid},size={_gib(size)}" + (f",{props}" if props else "")
        if old is not None:  # the old CT's volumes go before the extraction (pve.md 7.1)
            for volid in volumes(old):
                if volid not in new_vols:
                    state.free_volume(volid)
        rootfs = state.volume_path(state.volid_of(given["rootfs"]))
        if archive == "-":
            t.log("extracting archive from STDIN")
            _untar(t, rootfs, sys.stdin.buffer)
        else:
            path = state.root() / archive.lstrip("/")
            t.log(f"restoring '{archive}' now..")
            t.log(f"extracting archive '{archive}'")
            with open(path, "rb") as f:
                _untar(t, rootfs, f)
        saved = rootfs / "etc/vzdump/pct.conf"
        if not saved.is_file():
            raise TaskError("Backup archive does not contain any configuration")
        backed = state.parse_conf(saved.read_text(), vmid, "lxc", me)
        saved.unlink()
        (rootfs / "etc/vzdump/pct.fw").unlink(missing_ok=True)
        try:
            (rootfs / "etc/vzdump").rmdir()
        except OSError:
            pass
        t.log("merging backed-up and given configuration..")
        values = {k: v for k, v in backed.values.items() if not NEVER_FROM_BACKUP.match(k)}
        values.update(given)
        values.update({k: str(v) for k, v in opts.items() if k in CT_KEYS or k == "hostname"
                       or re.fullmatch(r"net\d+", k)})
        if opts.get("unique"):
            _unique_nets(values, vm=False)
        final = state.GuestConf(vmid, "lxc", me, backed.description, values, backed.raw)
        final.save()
        if opts.get("start"):
            state.set_status(vmid, "running")
    except BaseException as e:
        for volid in new_vols:
            state.free_volume(volid)
        if old is None:
            conf.path.unlink(missing_ok=True)
        raise TaskError(f"unable to restore CT {vmid} - {e}") from None


def _gib(size: str) -> str:
    n = float(size)
    return f"{int(n)}G" if n == int(n) else f"{int(n * 1024)}M"


def _untar(t: Task, rootfs, stream) -> None:  # noqa: ANN001
    proc = subprocess.Popen(["tar", "xpf", "-", *TAR_FLAGS, "-C", str(rootfs)], stdin=stream,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out = proc.stdout.read().decode("utf-8", "replace")
        code = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    for line in out.splitlines():
        t.log(line)
    if code != 0:
        raise TaskError(f"command 'tar xpf - {' '.join(TAR_FLAGS)} -C {rootfs}' failed: "
                        f"exit code {code}")


# ---- qmrestore -------------------------------------------------------------------------------------


def qmrestore(argv: list[str]) -> int:
    options = {"storage": Opt("str"), "force": Opt("bool"), "unique": Opt("bool"),
               "pool": Opt("str"), "bwlimit": Opt("int", minimum=0), "live-restore": Opt("bool"),
               "start": Opt("bool"), "ha-managed": Opt("bool")}
    pos, opts = parse(Command("qmrestore <archive> <vmid> [OPTIONS]", ("archive", "vmid"), options,
                              {"vmid": Opt("vmid")}), argv)
    vmid, archive = pos["vmid"], pos["archive"]
    old = _exists_check(vmid, "qemu", bool(opts.get("force")), "VM")
    return run_task("qmrestore", str(vmid), lambda t: _qm_body(t, vmid, archive, opts, old))


def _qm_body(t: Task, vmid: int, archive: str, opts: dict, old: state.GuestConf | None) -> None:
    me = state.node_name()
    conf = state.GuestConf(vmid, "qemu", me, values={"lock": "create"}) if old is None else old
    conf.values["lock"] = "create"
    conf.save()
    data_done = False
    try:
        stream = sys.stdin.buffer if archive == "-" else open(state.root() / archive.lstrip("/"), "rb")
        t.log(f"restore vma archive: vma extract -v -r /var/tmp/vzdumptmp{os.getpid()}.fifo "
              f"{archive} /var/tmp/vzdumptmp{os.getpid()}")
        uid, meta = read_header(stream)
        text = meta["configs"].get("qemu-server.conf")
        if text is None:
            raise TaskError("backup does not contain a configuration file")
        t.log(f"CFG: size: {len(text)} name: qemu-server.conf")
        maps = dict(re.findall(r"^#qmdump#map:(\w+):drive-\w+:([^:]*):", text, re.M))
        kept = "".join(line + "\n" for line in text.splitlines()
                       if not line.startswith(("#qmdump#", "#vzdump#")))
        backed = state.parse_conf(kept, vmid, "qemu", me)
        targets: dict[int, tuple[str, str, int]] = {}
        for dev_id, dev in enumerate(meta["devices"], start=1):
            key = dev["name"].removeprefix("drive-")
            t.log(f"DEV: dev_id={dev_id} size: {dev['size']} devname: {dev['name']}")
            sid = opts.get("storage") or maps.get(key) or "local-lvm"
            volid = state.alloc_volume(sid, vmid, "images")
            t.log(f"new volume ID is '{volid}'")
            path = state.volume_path(volid)
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as f:
                f.truncate(dev["size"])
            t.log(f"map '{dev['name']}' to '{path}' (write zeros = 0)")
            targets[dev_id] = (key, volid, dev["size"])
        new = {v for _, v, _ in targets.values()}
        replaced = [state.volid_of(old.values[k]) for k, _, _ in targets.values()
                    if old is not None and k in old.values and state.volid_of(old.values[k]) not in new]
        for volid in replaced:
            state.free_volume(volid)
        files = {d: open(state.volume_path(v), "r+b") for d, (_, v, _) in targets.items()}
        read = 0
        try:
            for dev, n, data in read_extents(stream, uid):
                key, volid, size = targets[dev]
                files[dev].seek(n * 65536)
                files[dev].write(data[:max(0, size - n * 65536)])
                read += len(data)
        finally:
            for f in files.values():
                f.close()
        data_done = True
        t.log(f"progress 100% (read {read} bytes, duration 0 sec)")
        t.log(f"total bytes read {read}, sparse bytes 0 (0%)")
        values = {k: v for k, v in backed.values.items()
                  if not re.fullmatch(r"(lock|unused\d+|parent)", k)}
        old_vols = [v for v in volumes(old) if v not in replaced] if old is not None else []
        for key, volid, size in targets.values():
            prop = backed.values.get(key, volid)
            rest = prop.split(",", 1)[1] if "," in prop else f"size={size}"
            values[key] = f"{volid},{rest}"
        if old is not None:
            n = 0
            for volid in old_vols:
                if volid not in {v for _, v, _ in targets.values()}:
                    while f"unused{n}" in values:
                        n += 1
                    values[f"unused{n}"] = volid
        if opts.get("unique"):
            _unique_nets(values, vm=True)
        if values.get("vmgenid", "") != "0":
            values["vmgenid"] = _uuid()
        final = state.GuestConf(vmid, "qemu", me, backed.description, values)
        final.save()
        if opts.get("start"):
            state.set_status(vmid, "running")
    except Exception as e:  # VmaError, OSError, TaskError, Interrupted...
        when = "after data was restored" if data_done else "before or during data restore"
        t.warn(f"error {when}, some or all disks were not completely restored. "
               f"VM {vmid} state is NOT cleaned up.")
        raise TaskError(f"{e}") from None


def _uuid() -> str:
    import uuid

    return str(uuid.uuid4())
