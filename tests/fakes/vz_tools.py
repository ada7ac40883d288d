"""The emulated OpenVZ tools ``vzlist`` and ``vzctl`` (vzctl 4.x; shared/reference/pve.md
section 12). State under ``FAKE_VZ_ROOT``, mirroring the real paths:

    <root>/etc/vz/conf/<ctid>.conf   the container's config (VE_PRIVATE, HOSTNAME, ...)
    <root>/run/<ctid>.status         running | stopped | mounted | suspended (default stopped)
    <root>/run/<ctid>.lck            the container's lock (vzctl exits 9 while it exists)

Simplifications: ``vzlist -j`` prints the fields the adapters read and a few more, not all
of vzctl's; resource counters are left out. ``FAKE_VZCTL_VERSION=3.0.30`` emulates a
vzctl 3.x host, whose vzlist has no ``-j``. vzctl only does status, start and stop.
"""

from __future__ import annotations

import getopt
import json
import os
import re
import sys
from pathlib import Path

ROOT_ENV = "FAKE_VZ_ROOT"
VERSION_ENV = "FAKE_VZCTL_VERSION"
_LINE = re.compile(r'^\s*([A-Z_][A-Z0-9_]*)=(?:"([^"]*)"|(\S*))\s*$')


def root() -> Path:
    return Path(os.environ[ROOT_ENV])


def conf_dir(base: Path) -> Path:
    return base / "etc" / "vz" / "conf"


def parse_conf(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if m:
            out[m.group(1)] = m.group(2) if m.group(2) is not None else m.group(3)
    return out


def ctids(base: Path) -> list[int]:
    return sorted(int(p.stem) for p in conf_dir(base).glob("*.conf") if p.stem.isdigit())


def status(base: Path, ctid: int) -> str:
    path = base / "run" / f"{ctid}.status"
    return path.read_text().strip() if path.is_file() else "stopped"


def set_status(base: Path, ctid: int, value: str) -> None:
    (base / "run").mkdir(parents=True, exist_ok=True)
    (base / "run" / f"{ctid}.status").write_text(value + "\n")


def make_ct(base: Path, ctid: int, hostname: str, private: Path, state: str = "running",
            **extra: str) -> Path:
    """Test set-up: a container whose private area is ``private``."""
    conf_dir(base).mkdir(parents=True, exist_ok=True)
    lines = {"ONBOOT": "yes", "DISKSPACE": "2G:2.2G", "OSTEMPLATE": "debian-7.0-x86_64",
             "VE_ROOT": str(private.parent.parent / "root" / "$VEID"),
             "VE_PRIVATE": str(private.parent / "$VEID"), "HOSTNAME": hostname,
             "IP_ADDRESS": "10.0.0.%d" % (ctid % 250), "NAMESERVER": "10.0.0.1", **extra}
    path = conf_dir(base) / f"{ctid}.conf"
    path.write_text("".join(f'{k}="{v}"\n' for k, v in lines.items()))
    set_status(base, ctid, state)
    return path


def _info(base: Path, ctid: int) -> dict:
    conf = parse_conf((conf_dir(base) / f"{ctid}.conf").read_text())

    def s(key: str) -> str | None:
        value = conf.get(key)
        return value.replace("$VEID", str(ctid)) if value is not None else None

    st = status(base, ctid)
    soft, _, hard = (conf.get("DISKSPACE") or "").partition(":")
    return {
        "ctid": ctid, "private": s("VE_PRIVATE"), "root": s("VE_ROOT"),
        "hostname": s("HOSTNAME"), "name": s("NAME"), "description": s("DESCRIPTION"),
        "ostemplate": s("OSTEMPLATE"), "ip": (s("IP_ADDRESS") or "").split(),
        "nameserver": (s("NAMESERVER") or "").split(), "searchdomain": (s("SEARCHDOMAIN") or "").split(),
        "status": st, "onboot": {"yes": True, "no": False}.get(conf.get("ONBOOT", "")),
        "vswap": False, "disabled": conf.get("DISABLED") == "yes",
        "diskspace": {"usage": 0, "softlimit": _kib(soft), "hardlimit": _kib(hard or soft)}
        if soft else None,
        "laverage": [0.0, 0.0, 0.0] if st == "running" else None,
        "uptime": 1234.5 if st == "running" else 0.0,
    }


FIELDS = ("ctid", "private", "root", "hostname", "name", "description", "ostemplate", "ip",
          "nameserver", "searchdomain", "status", "onboot", "vswap", "disabled", "diskspace",
          "laverage", "uptime", "numproc")


def _kib(text: str) -> int:
    """``2G`` (or a bare number of KiB, as in DISKSPACE) in KiB."""
    scale = {"K": 1, "M": 1 << 10, "G": 1 << 20, "T": 1 << 30}.get(text[-1:].upper(), 0)
    return int(float(text[:-1]) * scale) if scale else int(text)


def _json_doc(objects: list[dict]) -> str:
    if not objects:
        return "[]\n"
    blocks = []
    for obj in objects:
        fields = [f"    {json.dumps(k)}: {json.dumps(v)}" for k, v in obj.items()]
        blocks.append("  {\n" + ",\n".join(fields) + "\n  }")
    return "[\n" + ",\n".join(blocks) + "\n]\n"


def vzlist(argv: list[str]) -> int:
    json_ok = not os.environ.get(VERSION_ENV, "4.0").startswith("3.")
    try:
        opts, args = getopt.gnu_getopt(argv, "aSnHt" + ("j" if json_ok else "") + "o:1s:",
                                       ["all", "stopped", "name", "no-header", "json", "output=",
                                        "sort="] if json_ok else ["all", "stopped", "name",
                                                                  "no-header", "output=", "sort="])
    except getopt.GetoptError as e:
        shown = f"--{e.opt}" if len(e.opt) > 1 else f"-{e.opt}"
        print(f"vzlist: unrecognized option '{shown}'" if len(e.opt) > 1
              else f"vzlist: invalid option -- '{e.opt}'", file=sys.stderr)
        print("Usage: vzlist [-a|-S] [-n] [-H] [-o field[,field...]|-1] [-s [-]field]", file=sys.stderr)
        return 1
    o = {k: v for k, v in opts}
    base = root()
    wanted = ctids(base)
    if args:
        wanted = [int(a) for a in args if a.isdigit() and int(a) in wanted]
        if not wanted:
            print("Container(s) not found", file=sys.stderr)
            return 1
    infos = [_info(base, c) for c in wanted]
    if "-a" not in o and "--all" not in o:
        infos = [i for i in infos if i["status"] == "running"]
    if "-S" in o or "--stopped" in o:
        infos = [i for i in infos if i["status"] != "running"]
    fields = (o.get("-o") or o.get("--output") or "ctid,numproc,status,ip,hostname").split(",")
    for f in fields:
        if f not in FIELDS:
            print(f"Unknown field: {f}", file=sys.stderr)
            return 1
    if "-j" in o or "--json" in o:
        chosen = infos if ("-o" not in o and "--output" not in o) else [
            {f: i.get(f) for f in fields} for i in infos]  # numproc: null (no counters)
        sys.stdout.write(_json_doc(chosen))
        return 0
    return _columns(infos, fields, "-H" not in o and "--no-header" not in o)


def _columns(infos: list[dict], fields: list[str], header: bool) -> int:
    heads = {"ctid": "CTID", "numproc": "NPROC", "status": "STATUS", "ip": "IP_ADDR",
             "hostname": "HOSTNAME", "private": "PRIVATE", "root": "ROOT", "name": "NAME",
             "description": "DESCRIPTION", "ostemplate": "OSTEMPLATE"}
    rows = []
    for i in infos:
        row = []
        for f in fields:
            v = i.get(f, "-")
            v = " ".join(v) if isinstance(v, list) else ("-" if v in (None, "") else str(v))
            row.append("-" if f == "numproc" and i["status"] != "running" else v)
        rows.append(row)
    if header:
        print("      " + " ".join(heads[f].ljust(10) for f in fields).rstrip())
    for row in rows:
        print(" ".join([row[0].rjust(10)] + [v.ljust(10) for v in row[1:]]).rstrip())
    return 0


def vzctl(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in ("status", "start", "stop"):
        print("Invalid action" if argv else "Usage: vzctl [options] <command> <ctid> [parameters]",
              file=sys.stderr)
        return 1 if not argv else 2  # vzerror.h: VZ_INVALID_PARAMETER_SYNTAX 2
    action, ctid_text = argv[0], argv[1]
    if not ctid_text.isdigit():
        print(f"Bad CT ID {ctid_text}", file=sys.stderr)
        return 2
    base, ctid = root(), int(ctid_text)
    exists = (conf_dir(base) / f"{ctid}.conf").is_file()
    st = status(base, ctid) if exists else "down"
    if action == "status":
        mounted = "mounted" if st in ("running", "mounted", "suspended") else "unmounted"
        running = "running" if st in ("running", "suspended") else "down"
        suffix = " suspended" if st == "suspended" else ""
        print(f"CTID {ctid} {'exist' if exists else 'deleted'} {mounted} {running}{suffix}")
        return 0
    if not exists:
        print("Container config file does not exist", file=sys.stderr)
        return 11  # VZ_NOCONFIG
    if (base / "run" / f"{ctid}.lck").exists():
        print("Container already locked", file=sys.stderr)
        return 9
    if action == "start":
        if st == "running":
            print("Container is already running", file=sys.stderr)
            return 32
        print("Starting container...\nContainer is mounted\nContainer start in progress...")
        set_status(base, ctid, "running")
        return 0
    if st != "running":
        print("Unable to stop: container is not running", file=sys.stderr)
        return 31
    print("Stopping container ...\nContainer was stopped\nContainer is unmounted")
    set_status(base, ctid, "stopped")
    return 0


def main(tool: str, argv: list[str]) -> int:
    return {"vzlist": vzlist, "vzctl": vzctl}[tool](argv)
