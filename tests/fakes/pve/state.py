"""The fake node's state on disk: guest configs (pve.md 9), storages, volumes, run state,
tasks and UPIDs (3.3)."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from .cli import VMID, Die  # noqa: F401  (VMID: the pve-vmid format)

TYPE_DIR = {"lxc": "lxc", "qemu": "qemu-server"}


def root() -> Path:
    value = os.environ.get("PVE_FAKE_ROOT")
    if not value:
        raise Die("fake PVE tool: PVE_FAKE_ROOT is not set (the emulator's state directory)")
    return Path(value)


def version() -> tuple[int, int]:
    """The emulated PVE version, from ``etc/pve/.fake/version`` (default 8.3)."""
    try:
        text = (root() / "etc/pve/.fake/version").read_text().strip()
    except FileNotFoundError:
        text = "8.3"
    major, _, minor = text.partition(".")
    return int(major), int(minor or 0)


def node_name() -> str:
    return (root() / "etc/hostname").read_text().strip()


def pve() -> Path:
    return root() / "etc/pve"


# ---- guest configs ------------------------------------------------------------------------


@dataclass
class GuestConf:
    """A guest config file: description comments, ``key: value`` lines, raw ``lxc.*`` lines
    and ``[snapshot]`` sections."""

    vmid: int
    type: str  # lxc | qemu
    node: str
    description: list[str] = field(default_factory=list)
    values: dict[str, str] = field(default_factory=dict)
    raw: list[str] = field(default_factory=list)
    sections: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return conf_path(self.node, self.type, self.vmid)

    def text(self) -> str:
        out = [f"#{d}\n" for d in self.description]
        out += [f"{k}: {self.values[k]}\n" for k in sorted(self.values)]
        out += [f"{r}\n" for r in self.raw]
        for name, sec in self.sections.items():
            out.append(f"\n[{name}]\n")
            out += [f"{k}: {sec[k]}\n" for k in sorted(sec)]
        return "".join(out)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(self.text())
        os.replace(tmp, self.path)


def conf_path(node: str, type_: str, vmid: int) -> Path:
    return pve() / "nodes" / node / TYPE_DIR[type_] / f"{vmid}.conf"


def parse_conf(text: str, vmid: int, type_: str, node: str) -> GuestConf:
    conf = GuestConf(vmid, type_, node)
    current = conf.values
    for line in text.splitlines():
        if not line.strip():
            continue
        m = re.match(r"^\[([^\]]+)\]$", line.strip())
        if m:
            current = conf.sections.setdefault(m.group(1), {})
        elif line.startswith("#") and current is conf.values:
            conf.description.append(line[1:])
        elif line.startswith("lxc.") and current is conf.values:
            conf.raw.append(line)
        elif ":" in line:
            key, _, value = line.partition(":")
            current[key.strip()] = value.strip()
    return conf


def cluster_guests() -> dict[int, tuple[str, str]]:
    """vmid -> (node, type), from the directory each config is in (pve.md 9)."""
    found: dict[int, tuple[str, str]] = {}
    nodes = pve() / "nodes"
    if not nodes.is_dir():
        return found
    for node_dir in sorted(nodes.iterdir()):
        for type_, sub in TYPE_DIR.items():
            for f in sorted((node_dir / sub).glob("*.conf")):
                if re.fullmatch(r"[1-9][0-9]{2,8}", f.stem):
                    found[int(f.stem)] = (node_dir.name, type_)
    return found


def load(vmid: int) -> GuestConf | None:
    where = cluster_guests().get(vmid)
    if where is None:
        return None
    node, type_ = where
    return parse_conf(conf_path(node, type_, vmid).read_text(), vmid, type_, node)


def load_local(vmid: int, type_: str) -> GuestConf:
    """The local guest's config, or the documented 'does not exist' error (pve.md 8.1)."""
    path = conf_path(node_name(), type_, vmid)
    if not path.is_file():
        raise Die(f"Configuration file 'nodes/{node_name()}/{TYPE_DIR[type_]}/{vmid}.conf' "
                  "does not exist")
    return parse_conf(path.read_text(), vmid, type_, node_name())


def exists_error(vmid: int, type_: str) -> str | None:
    """pve-cluster's message when ``vmid`` is taken anywhere in the cluster."""
    where = cluster_guests().get(vmid)
    if where is None:
        return None
    node, other = where
    word = "CT" if other == "lxc" else "VM"
    return f"{word} {vmid} already exists on node '{node}'"


# ---- run state, pools, HA -----------------------------------------------------------------


def _fake_json(name: str) -> dict:
    try:
        return json.loads((pve() / ".fake" / name).read_text())
    except FileNotFoundError:
        return {}


def _save_fake_json(name: str, data: dict) -> None:
    path = pve() / ".fake" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{name}.{os.getpid()}")
    tmp.write_text(json.dumps(data, sort_keys=True))
    os.replace(tmp, path)


def status(vmid: int) -> str:
    """Run state, kept with the node it runs on: a guest whose config moved to another node
    (the dead-node procedure) is not running there."""
    value, node = _fake_json("status.json").get(str(vmid), ["stopped", None])
    where = cluster_guests().get(vmid)
    return value if where is not None and where[0] == node else "stopped"


def set_status(vmid: int, value: str | None) -> None:
    data = _fake_json("status.json")
    where = cluster_guests().get(vmid)
    if value is None or where is None:
        data.pop(str(vmid), None)
    else:
        data[str(vmid)] = [value, where[0]]
    _save_fake_json("status.json", data)


def node_online(node: str) -> bool:
    return node not in _fake_json("nodes.json").get("offline", [])


def pools() -> dict[int, str]:
    """vmid -> pool, from ``user.cfg`` lines ``pool:<id>:<comment>:<vmids>:<storages>:``."""
    out: dict[int, str] = {}
    try:
        text = (pve() / "user.cfg").read_text()
    except FileNotFoundError:
        return out
    for line in text.splitlines():
        parts = line.split(":")
        if parts[0] == "pool" and len(parts) > 3:
            for v in filter(None, parts[3].split(",")):
                out[int(v)] = parts[1]
    return out


def ha_states() -> dict[int, str]:
    """vmid -> HA state, from ``ha/resources.cfg`` sections ``ct: 101`` / ``vm: 200``."""
    out: dict[int, str] = {}
    try:
        text = (pve() / "ha/resources.cfg").read_text()
    except FileNotFoundError:
        return out
    current = None
    for line in text.splitlines():
        m = re.match(r"^(ct|vm):\s*(\d+)", line)
        if m:
            current = int(m.group(2))
            out[current] = "started"
        elif current is not None and line.strip().startswith("state"):
            out[current] = line.split()[1]
    return out


# ---- storages and volumes ------------------------------------------------------------------


@dataclass(frozen=True)
class Storage:
    id: str
    type: str  # dir | lvmthin | ...
    path: str
    content: frozenset[str]


DEFAULT_STORAGE_CFG = """dir: local
\tpath /var/lib/vz
\tcontent iso,vztmpl,backup

lvmthin: local-lvm
\tthinpool data
\tvgname pve
\tcontent rootdir,images
"""


def storages() -> dict[str, Storage]:
    try:
        text = (pve() / "storage.cfg").read_text()
    except FileNotFoundError:
        text = DEFAULT_STORAGE_CFG
    out: dict[str, Storage] = {}
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = block.splitlines()
        kind, _, sid = lines[0].partition(":")
        props = dict(line.strip().split(None, 1) for line in lines[1:] if line.strip())
        out[sid.strip()] = Storage(sid.strip(), kind.strip(), props.get("path", ""),
                                   frozenset(props.get("content", "").split(",")))
    return out


def storage(sid: str, content: str) -> Storage:
    found = storages().get(sid)
    if found is None:
        raise Die(f"storage '{sid}' does not exist")
    if content not in found.content:
        what = "container directories" if content == "rootdir" else "VM images"
        raise Die(f"storage '{sid}' does not support {what}")
    return found


def volume_path(volid: str) -> Path:
    sid, _, name = volid.partition(":")
    return root() / "var/lib/fakepve/volumes" / sid / name


def alloc_volume(sid: str, vmid: int, content: str) -> str:
    """A new volume id on ``sid``: ``<sid>:vm-<vmid>-disk-<n>`` (``<sid>:<vmid>/...raw`` on
    a directory storage)."""
    st = storage(sid, content)
    n = 0
    while True:
        name = f"vm-{vmid}-disk-{n}"
        volid = f"{sid}:{vmid}/{name}.raw" if st.type == "dir" else f"{sid}:{name}"
        if not os.path.lexists(volume_path(volid)):
            return volid
        n += 1


def free_volume(volid: str) -> None:
    path = volume_path(volid)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


def volid_of(prop: str) -> str:
    """The volume of a property string such as ``local-lvm:vm-101-disk-0,size=8G``."""
    first = prop.split(",")[0]
    return first.split("=", 1)[1] if first.startswith("volume=") else first


def size_of(prop: str) -> str | None:
    m = re.search(r"(?:^|,)size=([0-9.]+[KMGT]?)", prop)
    return m.group(1) if m else None


# ---- tasks ---------------------------------------------------------------------------------


def new_upid(type_: str, id_: str) -> tuple[str, Path]:
    """A UPID and its log file (pve.md 3.3)."""
    start = int(time.time())
    pstart = int(time.monotonic() * 100) & 0xFFFFFFFF
    upid = (f"UPID:{node_name()}:{os.getpid():08X}:{pstart:08X}:{start:08X}:{type_}:{id_}:"
            "root@pam:")
    path = root() / "var/log/pve/tasks" / f"{start:08X}"[-1] / upid
    path.parent.mkdir(parents=True, exist_ok=True)
    return upid, path


def local_time(epoch: float | None = None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))
