"""``pct``/``qm`` subcommands shared by both kinds of guest: config, list, start, stop,
snapshot, rollback, delsnapshot, listsnapshot, unlock, destroy (pve.md 8, 9, 10)."""

from __future__ import annotations

import re
import shutil
import time

from . import state
from .cli import Command, Die, Opt, parse
from .tasks import Task, TaskError, run_task

VMID = {"vmid": Opt("vmid")}
SNAPNAME = re.compile(r"^[a-z][a-z0-9_-]+$", re.I)
TASK_TYPES = {("lxc", "snapshot"): "vzsnapshot", ("lxc", "delsnapshot"): "vzdelsnapshot",
              ("lxc", "rollback"): "vzrollback", ("qemu", "snapshot"): "qmsnapshot",
              ("qemu", "delsnapshot"): "qmdelsnapshot", ("qemu", "rollback"): "qmrollback",
              ("lxc", "destroy"): "vzdestroy", ("qemu", "destroy"): "qmdestroy",
              ("lxc", "start"): "vzstart", ("qemu", "start"): "qmstart",
              ("lxc", "stop"): "vzstop", ("qemu", "stop"): "qmstop"}


def word(type_: str) -> str:
    return "CT" if type_ == "lxc" else "VM"


def tool(type_: str) -> str:
    return "pct" if type_ == "lxc" else "qm"


def check_lock(conf: state.GuestConf) -> None:
    if "lock" in conf.values:
        raise TaskError(f"{word(conf.type)} is locked ({conf.values['lock']})")


def volumes(conf: state.GuestConf) -> list[str]:
    keys = r"(rootfs|mp\d+|unused\d+)" if conf.type == "lxc" else \
        r"(scsi|virtio|sata|ide|efidisk|tpmstate|unused)\d+"
    return [state.volid_of(v) for k, v in sorted(conf.values.items())
            if re.fullmatch(keys, k) and "media=cdrom" not in v and ":" in state.volid_of(v)]


def run(type_: str, sub: str, argv: list[str]) -> int:
    handler = HANDLERS.get(sub)
    if handler is None:
        raise Die(f"unknown command '{tool(type_)} {sub}'")
    return handler(type_, sub, argv)


# ---- config and list ---------------------------------------------------------------------------


def show_config(type_: str, sub: str, argv: list[str]) -> int:
    cmd = Command(f"{tool(type_)} config <vmid> [OPTIONS]", ("vmid",),
                  {"current": Opt("bool"), "snapshot": Opt("str")}, VMID)
    pos, opts = parse(cmd, argv)
    conf = state.load_local(pos["vmid"], type_)
    values = conf.values
    if "snapshot" in opts:
        if opts["snapshot"] not in conf.sections:
            raise Die(f"snapshot '{opts['snapshot']}' does not exist")
        values = conf.sections[opts["snapshot"]]
    shown = {k: v for k, v in values.items() if k != "digest"}
    if conf.description and "snapshot" not in opts:
        shown["description"] = _percent("\n".join(conf.description))
    print("\n".join([f"{k}: {shown[k]}" for k in sorted(shown)] + conf.raw))
    return 0


def _percent(text: str) -> str:
    """Control characters, non-ASCII bytes, ':' and '%' as %XX (pve.md 10.3)."""
    out = []
    for byte in text.encode("utf-8"):
        ch = chr(byte)
        out.append(f"%{byte:02X}" if byte < 32 or byte > 126 or ch in ":%" else ch)
    return "".join(out)


def show_list(type_: str, sub: str, argv: list[str]) -> int:
    parse(Command(f"{tool(type_)} list [OPTIONS]", (), {"full": Opt("bool")}), argv)
    me = state.node_name()
    rows = []
    for vmid, (node, t) in sorted(state.cluster_guests().items()):
        if node != me or t != type_:
            continue
        conf = state.load_local(vmid, type_)
        st = state.status(vmid)
        if type_ == "lxc":
            rows.append(f"{vmid:<10} {st:<10} {conf.values.get('lock', ''):<12} "
                        f"{conf.values.get('hostname', f'CT{vmid}'):<20}")
        else:
            mem = conf.values.get("memory", "2048")
            rows.append(f"{vmid:>10} {conf.values.get('name', f'VM{vmid}'):<20} {st:<10} "
                        f"{mem:<10} {0.0:>12.2f} {0:<10}")
    if rows:
        header = (f"{'VMID':<10} {'Status':<10} {'Lock':<12} {'Name':<20}" if type_ == "lxc" else
                  f"{'VMID':>10} {'NAME':<20} {'STATUS':<10} {'MEM(MB)':<10} {'BOOTDISK(GB)':>12} "
                  f"{'PID':<10}")
        print("\n".join([header, *rows]))
    return 0


# ---- set (pve.md 10.3: property strings; not a task: nothing printed on success) ---------------


SET_KEYS = {"lxc": ("hostname", "description", "memory", "swap", "cores", "tags", "onboot"),
            "qemu": ("name", "description", "memory", "cores", "tags", "onboot", "smbios1")}


def set_config(type_: str, sub: str, argv: list[str]) -> int:
    options = {k: Opt("str") for k in SET_KEYS[type_]}
    options.update({f"net{i}": Opt("str") for i in range(32)})
    options.update({"skiplock": Opt("bool"), "delete": Opt("str")})
    pos, opts = parse(Command(f"{tool(type_)} set <vmid> [OPTIONS]", ("vmid",), options, VMID),
                      argv)
    conf = state.load_local(pos["vmid"], type_)
    if "lock" in conf.values and not opts.get("skiplock"):
        raise Die(f"{word(type_)} is locked ({conf.values['lock']})")
    for key, value in opts.items():
        if key in ("skiplock", "delete"):
            continue
        if key.startswith("net") and type_ == "lxc" and "name=" not in str(value):
            raise Die("400 Parameter verification failed.",
                      f"{key}: missing property - 'name' is required", cmd_usage(type_, sub))
        conf.values[key] = str(value)
    for key in str(opts.get("delete") or "").replace(";", ",").split(","):
        if key:
            conf.values.pop(key.strip(), None)
    conf.save()
    return 0


# ---- start, stop, unlock, destroy ---------------------------------------------------------------


def start_stop(type_: str, sub: str, argv: list[str]) -> int:
    extra = {"skiplock": Opt("bool")} if sub == "start" else {
        "skiplock": Opt("bool"), "timeout": Opt("int", minimum=0)}
    pos, opts = parse(Command(f"{tool(type_)} {sub} <vmid> [OPTIONS]", ("vmid",), extra, VMID), argv)
    conf = state.load_local(pos["vmid"], type_)
    if "lock" in conf.values and not opts.get("skiplock"):
        raise Die(f"{word(type_)} is locked ({conf.values['lock']})")
    running = state.status(conf.vmid) == "running"
    if sub == "start" and running:
        raise Die(f"{word(type_)} {conf.vmid} already running")
    if sub == "stop" and not running:
        raise Die(f"{word(type_)} {conf.vmid} not running")

    def body(t: Task) -> None:
        state.set_status(conf.vmid, "running" if sub == "start" else "stopped")

    return run_task(TASK_TYPES[(type_, sub)], str(conf.vmid), body)


def unlock(type_: str, sub: str, argv: list[str]) -> int:
    pos, _ = parse(Command(f"{tool(type_)} unlock <vmid>", ("vmid",), {}, VMID), argv)
    conf = state.load_local(pos["vmid"], type_)
    conf.values.pop("lock", None)
    conf.save()
    return 0


def destroy(type_: str, sub: str, argv: list[str]) -> int:
    cmd = Command(f"{tool(type_)} destroy <vmid> [OPTIONS]", ("vmid",),
                  {"purge": Opt("bool"), "force": Opt("bool"), "skiplock": Opt("bool"),
                   "destroy-unreferenced-disks": Opt("bool")}, VMID)
    pos, opts = parse(cmd, argv)
    conf = state.load_local(pos["vmid"], type_)
    if "lock" in conf.values and not opts.get("skiplock"):
        raise Die(f"{word(type_)} is locked ({conf.values['lock']})")
    if state.status(conf.vmid) == "running":
        raise Die(f"{word(type_)} {conf.vmid} is running - destroy failed")
    if conf.values.get("protection") == "1":
        raise Die(f"can't remove {word(type_)} {conf.vmid} - protection mode enabled")

    def body(t: Task) -> None:
        for snap in conf.sections:
            for volid in volumes(conf):
                state.free_volume(snap_volid(volid, snap))
        for volid in volumes(conf):
            state.free_volume(volid)
        conf.path.unlink()
        state.set_status(conf.vmid, None)

    return run_task(TASK_TYPES[(type_, "destroy")], str(conf.vmid), body)


# ---- mount, unmount (CTs only; pve-container src/PVE/CLI/pct.pm) -------------------------------
# ``pct mount <vmid>``: locks the CT ``mounted`` (refused when it holds another lock), mounts
# its volumes under /var/lib/lxc/<vmid>/rootfs and prints ``mounted CT <vmid> in '<dir>'``;
# ``pct unmount <vmid>`` unmounts them and removes the lock. Not a task. The emulator's
# "mount" is a symlink to the rootfs volume's folder, under its root: the directory it prints
# is that one ($PVE_FAKE_ROOT/var/lib/lxc/<vmid>/rootfs), a real path a caller can use.


def mount(type_: str, sub: str, argv: list[str]) -> int:
    if type_ != "lxc":
        raise Die(f"unknown command '{tool(type_)} {sub}'")
    pos, _ = parse(Command("pct mount <vmid>", ("vmid",), {}, VMID), argv)
    conf = state.load_local(pos["vmid"], type_)
    if "lock" in conf.values:
        raise Die(f"CT is locked ({conf.values['lock']})")
    link = state.root() / f"var/lib/lxc/{conf.vmid}/rootfs"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(state.volume_path(state.volid_of(conf.values["rootfs"])))
    conf.values["lock"] = "mounted"
    conf.save()
    print(f"mounted CT {conf.vmid} in '{link}'")
    return 0


def unmount(type_: str, sub: str, argv: list[str]) -> int:
    if type_ != "lxc":
        raise Die(f"unknown command '{tool(type_)} {sub}'")
    pos, _ = parse(Command("pct unmount <vmid>", ("vmid",), {}, VMID), argv)
    conf = state.load_local(pos["vmid"], type_)
    link = state.root() / f"var/lib/lxc/{conf.vmid}/rootfs"
    if link.is_symlink():
        link.unlink()
    if conf.values.get("lock") == "mounted":
        conf.values.pop("lock")
        conf.save()
    return 0


# ---- snapshots (pve.md 8.1) --------------------------------------------------------------------


def snap_volid(volid: str, snap: str) -> str:
    sid, _, name = volid.partition(":")
    base = name.rsplit("/", 1)[-1].removesuffix(".raw")
    return f"{sid}:snap_{base}_{snap}"


def _snapshot_capable(conf: state.GuestConf) -> bool:
    stores = state.storages()
    return all(stores.get(v.split(":")[0]) is not None
               and stores[v.split(":")[0]].type in ("lvmthin", "zfspool", "rbd", "btrfs")
               for v in volumes(conf))


def snapshot(type_: str, sub: str, argv: list[str]) -> int:
    options = {"description": Opt("str")}
    if type_ == "qemu":
        options["vmstate"] = Opt("bool")
    pos, opts = parse(Command(f"{tool(type_)} snapshot <vmid> <snapname> [OPTIONS]",
                              ("vmid", "snapname"), options, VMID), argv)
    name = pos["snapname"]
    if not SNAPNAME.match(name) or len(name) > 40:
        raise Die("400 Parameter verification failed.",
                  "snapname: invalid format - invalid configuration ID", cmd_usage(type_, sub))
    conf = state.load_local(pos["vmid"], type_)

    def body(t: Task) -> None:
        if name.lower() in ("current", "vzdump"):
            raise TaskError(f"unable to use snapshot name '{name}' (reserved name)")
        check_lock(conf)
        if conf.values.get("template") == "1":
            raise TaskError("you can't take a snapshot if it's a template")
        if name in conf.sections:
            raise TaskError(f"snapshot name '{name}' already used")
        if not _snapshot_capable(conf):
            raise TaskError("snapshot feature is not available")
        for volid in volumes(conf):
            _copy(state.volume_path(volid), state.volume_path(snap_volid(volid, name)))
        section = {k: v for k, v in conf.values.items() if k not in ("parent", "lock")}
        if "parent" in conf.values:
            section["parent"] = conf.values["parent"]
        section["snaptime"] = str(int(time.time()))
        if "description" in opts:
            section["description"] = opts["description"]
        conf.sections[name] = section
        conf.values["parent"] = name
        conf.save()

    return run_task(TASK_TYPES[(type_, "snapshot")], str(conf.vmid), body)


def rollback(type_: str, sub: str, argv: list[str]) -> int:
    pos, opts = parse(Command(f"{tool(type_)} rollback <vmid> <snapname> [OPTIONS]",
                              ("vmid", "snapname"), {"start": Opt("bool")}, VMID), argv)
    name = pos["snapname"]
    conf = state.load_local(pos["vmid"], type_)

    def body(t: Task) -> None:
        if name not in conf.sections:
            raise TaskError(f"snapshot '{name}' does not exist")
        check_lock(conf)
        state.set_status(conf.vmid, "stopped")
        section = dict(conf.sections[name])
        for volid in volumes(conf):
            src = state.volume_path(snap_volid(volid, name))
            if src.exists():
                dst = state.volume_path(volid)
                state.free_volume(volid)
                _copy(src, dst)
        section.pop("snaptime", None)
        section.pop("description", None)
        section["parent"] = name
        conf.values = section
        conf.save()
        if opts.get("start"):
            state.set_status(conf.vmid, "running")

    return run_task(TASK_TYPES[(type_, "rollback")], str(conf.vmid), body)


def delsnapshot(type_: str, sub: str, argv: list[str]) -> int:
    pos, opts = parse(Command(f"{tool(type_)} delsnapshot <vmid> <snapname> [OPTIONS]",
                              ("vmid", "snapname"), {"force": Opt("bool")}, VMID), argv)
    name = pos["snapname"]
    conf = state.load_local(pos["vmid"], type_)

    def body(t: Task) -> None:
        if name not in conf.sections:
            raise TaskError(f"snapshot '{name}' does not exist")
        check_lock(conf)
        gone = conf.sections.pop(name)
        for volid in volumes(conf):
            state.free_volume(snap_volid(volid, name))
        for values in [conf.values, *conf.sections.values()]:
            if values.get("parent") == name:
                if "parent" in gone:
                    values["parent"] = gone["parent"]
                else:
                    values.pop("parent")
        conf.save()

    return run_task(TASK_TYPES[(type_, "delsnapshot")], str(conf.vmid), body)


def listsnapshot(type_: str, sub: str, argv: list[str]) -> int:
    pos, _ = parse(Command(f"{tool(type_)} listsnapshot <vmid>", ("vmid",), {}, VMID), argv)
    conf = state.load_local(pos["vmid"], type_)
    children: dict[str | None, list[tuple[int, str, str]]] = {}
    for name, sec in conf.sections.items():
        children.setdefault(sec.get("parent"), []).append(
            (int(sec.get("snaptime", 0)), name, sec.get("description", "no-description")))
    children.setdefault(conf.values.get("parent"), []).append((1 << 62, "current", "You are here!"))

    def walk(parent: str | None, depth: int) -> None:
        for when, name, desc in sorted(children.get(parent, [])):
            prefix = " " * depth + "`-> "
            stamp = "" if name == "current" else state.local_time(when)
            print(f"{prefix}{name:<{30 - len(prefix)}} {stamp:<23} {desc.splitlines()[0]}")
            if name != "current":
                walk(name, depth + 1)

    walk(None, 0)
    return 0


def cmd_usage(type_: str, sub: str) -> str:
    return f"{tool(type_)} {sub} <vmid> <snapname> [OPTIONS]"


def _copy(src, dst) -> None:  # noqa: ANN001
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dst, symlinks=True)
    else:
        shutil.copy2(src, dst)


HANDLERS = {"config": show_config, "list": show_list, "start": start_stop, "stop": start_stop,
            "unlock": unlock, "destroy": destroy, "snapshot": snapshot, "rollback": rollback,
            "delsnapshot": delsnapshot, "listsnapshot": listsnapshot, "set": set_config,
            "mount": mount, "unmount": unmount}
