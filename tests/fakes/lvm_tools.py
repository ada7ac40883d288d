"""The emulated LVM2 and mount commands; ``tests/fakes/bin/<tool>`` calls ``main``.

Options, messages, streams and exit codes as in shared/reference/pve.md section 11.7:
0 success, 3 bad command line, 5 runtime failure; informational lines on stdout, errors on
stderr, every LVM message with a two-space indent. State: ``lvm_state``.

``vgs`` is not in pve.md; what it does here was observed on lvm2 2.03.16 (Debian bookworm,
the PVE 8 version) with a VG on a loop device (2026-11): the default columns ``VG #PV #LV
#SN Attr VSize VFree``; JSON as ``lvs`` makes it, under the key ``"vg"``; with ``--units b
--nosuffix`` every size a string of bytes (``"vg_free":"264241152"``), counts as strings
(``"vg_free_count":"63"``); a missing VG: ``  Volume group "x" not found`` then ``  Cannot
process volume group x``, exit 5; an unknown option exit 3 as for ``lvs``; an unknown field:
LVM's list of fields (left out here), then ``  Unrecognised field: x``, exit 5.
"""

from __future__ import annotations

import getopt
import json
import os
import re
import sys
from pathlib import Path

import lvm_state as st
from lvm_state import LV, LvmError

_UNITS = {"b": 1, "s": 512, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40,
          "p": 1 << 50, "e": 1 << 60}
_NAME = re.compile(r"^[A-Za-z0-9+_.][A-Za-z0-9+_.-]*$")


class BadCommandLine(Exception):
    """Exit 3 after ``message`` (already formatted) and 'Error during parsing...'."""


def out(line: str) -> None:
    print(line, flush=True)


def err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(tool: str, argv: list[str]) -> int:
    try:
        return {"lvcreate": lvcreate, "lvs": lvs, "vgs": vgs, "lvremove": lvremove,
                "mount": mount, "umount": umount}[tool](argv)
    except BadCommandLine as e:
        err(str(e))
        err("  Error during parsing of command line.")
        return 3
    except LvmError as e:
        err(e.message if tool in ("mount", "umount") else f"  {e.message}")
        return e.code


def _parse(tool: str, argv: list[str], short: str, long: list[str]):
    try:
        return getopt.gnu_getopt(argv, short, long)
    except getopt.GetoptError as e:  # worded as getopt_long, which LVM uses
        dashes = "--" if e.msg.startswith("option --") else "-"
        if "requires argument" in e.msg:
            raise BadCommandLine(f"{tool}: option '{dashes}{e.opt}' requires an argument") from None
        if dashes == "--":
            raise BadCommandLine(f"{tool}: unrecognized option '--{e.opt}'") from None
        raise BadCommandLine(f"{tool}: invalid option -- '{e.opt}'") from None


def parse_size(text: str, option: str) -> int:
    m = re.fullmatch(r"\+?(\d+(?:\.\d+)?)([bBsSkKmMgGtTpPeE]?)", text)
    if not m:
        raise BadCommandLine(f"  Invalid argument for {option}: {text}")
    return int(float(m.group(1)) * _UNITS[(m.group(2) or "m").lower()])


def display_size(n: int) -> str:
    """LVM's message form: ``4.00 MiB``."""
    for unit in ("EiB", "PiB", "TiB", "GiB", "MiB", "KiB"):
        scale = _UNITS[unit[0].lower()]
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


def report_size(n: int, units: str, suffix: bool) -> str:
    """``lvs`` form: ``10.00g`` (``--units h``), ``<24.50g`` when rounded, or bytes."""
    if units == "b":
        return f"{n}B" if suffix else str(n)
    if units == "h":
        for u in "eptgmk":
            if n >= _UNITS[u]:
                break
        else:
            u = "k"
    else:
        u = units.lower()
    value = n / _UNITS[u]
    shown = f"{value:.2f}"
    rounded = "<" if float(shown) != value and float(shown) > value else ""
    return f"{rounded}{shown}{u if suffix else ''}"


def _vg_lv(text: str) -> tuple[str, str]:
    text = text.removeprefix("/dev/")
    vg, sep, name = text.partition("/")
    if not sep or not vg or not name:
        raise LvmError("Please specify a logical volume path.", code=3)
    return vg, name


def _need_vg(base: Path, vg: str) -> None:
    if not st.vg_exists(base, vg):
        err(f'  Volume group "{vg}" not found')
        raise LvmError(f"Cannot process volume group {vg}")


# ---- lvcreate ---------------------------------------------------------------------------------


def lvcreate(argv: list[str]) -> int:
    opts, args = _parse("lvcreate", argv, "sL:l:n:p:k:KyZ:qvT",
                        ["snapshot", "size=", "extents=", "name=", "permission=", "addtag=",
                         "setactivationskip=", "ignoreactivationskip", "yes", "zero=", "quiet",
                         "verbose", "thin"])
    o: dict[str, str | bool] = {}
    tags = []
    for k, v in opts:
        key = {"-s": "snapshot", "-L": "size", "-l": "extents", "-n": "name", "-p": "permission",
               "-k": "setactivationskip", "-K": "ignoreactivationskip", "-y": "yes",
               "-Z": "zero", "-q": "quiet", "-v": "verbose", "-T": "thin"}.get(k, k[2:])
        if key == "addtag":
            tags.append(v)
        o[key] = v if v else True
    size = parse_size(str(o["size"]), "--size") if "size" in o else None
    if "extents" in o:
        if not str(o["extents"]).isdigit():
            raise BadCommandLine(f"  Invalid argument for --extents: {o['extents']}")
        size = int(str(o["extents"])) * st.EXTENT
    for key, allowed in (("permission", ("r", "rw")), ("setactivationskip", ("y", "n")),
                         ("zero", ("y", "n"))):
        if key in o and o[key] not in allowed:
            raise BadCommandLine(f"  Invalid argument for --{key}: {o[key]}")
    for tag in tags:
        if not re.fullmatch(r"[A-Za-z0-9_+.\-/=!:&#]{1,1024}", tag):
            raise BadCommandLine(f"  Invalid argument for --addtag: {tag}")
    name = str(o.get("name", ""))
    if name and (not _NAME.match(name) or name in (".", "..") or name.startswith("snapshot")):
        raise LvmError(f'Logical volume name "{name}" is invalid.', code=3)
    if len(args) != 1:
        raise LvmError("Please specify a logical volume to act as the snapshot origin."
                       if o.get("snapshot") else "Please provide a volume group name", code=3)
    with st.locked() as base:
        if o.get("snapshot"):
            return _snapshot(base, args[0], name, size, o, tags)
        return _plain(base, args[0], name, size, tags)


def _plain(base: Path, vg: str, name: str, size: int | None, tags: list[str]) -> int:
    _need_vg(base, vg)
    if size is None:
        raise LvmError("Please specify either size or extents.", code=3)
    if not name:
        name = f"lvol{len(st.all_lvs(base, vg))}"
    _check_free(base, vg, name, size)
    data = base / vg / "data" / name
    data.mkdir(parents=True)
    lv = st.create_lv(base, vg, name, size, data, mounted=False)
    lv.tags = tags
    st.save(base, vg, lv)
    out(f'  Logical volume "{name}" created.')
    return 0


def _check_free(base: Path, vg: str, name: str, size: int) -> None:
    if size % st.EXTENT:
        out(f"  Rounding up size to full physical extent {display_size(st._round(size))}")
    if st.load(base, vg, name) is not None:
        raise LvmError(f'Logical Volume "{name}" already exists in volume group "{vg}"')
    need, free = st._round(size) // st.EXTENT, st.free_extents(base, vg)
    if need > free:
        raise LvmError(f'Volume group "{vg}" has insufficient free space ({free} extents): '
                       f"{need} required.")


def _snapshot(base: Path, target: str, name: str, size: int | None, o: dict, tags: list[str]) -> int:
    vg, origin_name = _vg_lv(target)
    _need_vg(base, vg)
    origin = st.load(base, vg, origin_name)
    if origin is None:
        raise LvmError(f"Snapshot origin LV {origin_name} not found in Volume group {vg}.")
    if os.environ.get(st.NO_DM_ENV) == "1":
        raise LvmError("Can't create snapshot without using device-mapper kernel driver.")
    if origin.kind == "cow":
        raise LvmError("Snapshots of snapshots are not supported.")
    if size is None and origin.kind != "thin":
        raise LvmError("Please specify either size or extents with snapshots.")
    if not name:
        name = f"lvol{len(st.all_lvs(base, vg))}"
    if size is not None:
        _check_free(base, vg, name, size)
        if st._round(size) > origin.size:
            out(f"  Reducing COW size {display_size(st._round(size))} down to maximum usable size "
                f"{display_size(origin.size)}.")
            size = origin.size
        lv = LV(name, "cow", st._round(size), origin=origin_name, created=st.time.time())
        lv.skip_activation = o.get("setactivationskip") == "y"
    else:  # thin snapshot: same pool, activation skipped unless -kn
        if st.load(base, vg, name) is not None:
            raise LvmError(f'Logical Volume "{name}" already exists in volume group "{vg}"')
        lv = LV(name, "thin", origin.size, origin=origin_name, pool=origin.pool,
                created=st.time.time())
        lv.skip_activation = o.get("setactivationskip", "y") == "y"
        lv.active = not lv.skip_activation or bool(o.get("ignoreactivationskip"))
    lv.writable = o.get("permission", "rw") == "rw"
    lv.tags = tags
    lv.data_dir = str(st.snapshot_content(base, vg, origin, name))
    st.save(base, vg, lv)
    out(f'  Logical volume "{name}" created.')
    return 0


# ---- lvs --------------------------------------------------------------------------------------

_DEFAULT_FIELDS = ["lv_name", "vg_name", "lv_attr", "lv_size", "pool_lv", "origin",
                   "data_percent", "metadata_percent", "move_pv", "mirror_log", "copy_percent",
                   "convert_lv"]
_HEADINGS = {"lv_name": "LV", "vg_name": "VG", "lv_attr": "Attr", "lv_size": "LSize",
             "pool_lv": "Pool", "origin": "Origin", "data_percent": "Data%",
             "snap_percent": "Snap%", "metadata_percent": "Meta%", "move_pv": "Move",
             "mirror_log": "Log", "copy_percent": "Cpy%Sync", "convert_lv": "Convert",
             "lv_tags": "LV Tags", "lv_path": "Path", "lv_dm_path": "DMPath", "uuid": "LV UUID",
             "lv_time": "CTime", "time": "CTime", "metadata_size": "MSize", "tags": "LV Tags"}
_ALIASES = {"name": "lv_name", "attr": "lv_attr", "size": "lv_size", "tags": "lv_tags",
            "path": "lv_path", "time": "lv_time", "lv_uuid": "uuid"}
_NUMERIC = {"lv_size", "data_percent", "snap_percent", "metadata_percent", "copy_percent",
            "metadata_size"}


def lvs(argv: list[str]) -> int:
    opts, args = _parse("lvs", argv, "o:aqS:",
                        ["options=", "reportformat=", "units=", "nosuffix", "noheadings",
                         "separator=", "unbuffered", "config=", "all", "quiet", "select=",
                         "nameprefixes", "readonly"])
    fields, r = list(_DEFAULT_FIELDS), _Report()
    for k, v in opts:
        if k in ("-o", "--options"):
            fields = _fields(v)
        elif k in ("-S", "--select"):
            raise LvmError("emulator: --select is not emulated", code=5)
        else:
            r.take(k, v)
    with st.locked() as base:
        rows = _rows(base, args)
    table = [[_value(vg, lv, lvs_of_vg, f, r.units, r.suffix) for f in fields]
             for vg, lv, lvs_of_vg in rows]
    if r.fmt == "basic":
        _print_basic(fields, table, r.headings, r.sep)
    else:
        _print_json(fields, table, r.fmt)
    return 0


class _Report:
    """The report options lvs and vgs share, checked as lvm2 checks them."""

    def __init__(self) -> None:
        self.fmt, self.units, self.suffix, self.headings, self.sep = "basic", "h", True, True, None

    def take(self, k: str, v: str) -> None:
        if k == "--reportformat":
            allowed = ("basic", "json") + (("json_std",) if st.version() >= (2, 3, 17) else ())
            if v not in allowed:
                raise BadCommandLine(f"  Invalid argument for --reportformat: {v}")
            self.fmt = v
        elif k == "--units":
            if v.lower() not in ("h", "b", "s", "k", "m", "g", "t", "p", "e"):
                raise BadCommandLine(f"  Invalid argument for --units: {v}")
            self.units = v.lower()
        elif k == "--nosuffix":
            self.suffix = False
        elif k == "--noheadings":
            self.headings = False
        elif k == "--separator":
            self.sep = v


def _fields(text: str) -> list[str]:
    fields = []
    for f in text.replace(" ", "").split(","):
        f = _ALIASES.get(f, f)
        if f not in _HEADINGS:
            raise LvmError(f"Unrecognised field: {f}")
        fields.append(f)
    return fields


def _rows(base: Path, args: list[str]) -> list[tuple[str, LV, list[LV]]]:
    rows = []
    wanted = args or st.vgs(base)
    for arg in wanted:
        text = arg.removeprefix("/dev/")
        vg, _, name = text.partition("/")
        _need_vg(base, vg)
        all_of_vg = st.all_lvs(base, vg)
        chosen = [lv for lv in all_of_vg if not name or lv.name == name]
        if name and not chosen:
            raise LvmError(f'Failed to find logical volume "{vg}/{name}"')
        rows += [(vg, lv, all_of_vg) for lv in chosen]
    return rows


def _value(vg: str, lv: LV, all_of_vg: list[LV], f: str, units: str, suffix: bool) -> str:
    has_snaps = any(o.origin == lv.name and o.kind == "cow" for o in all_of_vg)
    return {
        "lv_name": lv.name, "vg_name": vg, "lv_attr": lv.attr(has_snaps),
        "lv_size": report_size(lv.size, units, suffix), "pool_lv": lv.pool, "origin": lv.origin,
        "data_percent": lv.data_percent(),
        "snap_percent": lv.data_percent() if lv.kind == "cow" else "",
        "metadata_percent": lv.metadata_percent(), "move_pv": "", "mirror_log": "", "copy_percent": "",
        "convert_lv": "", "lv_tags": ",".join(lv.tags), "lv_path": f"/dev/{vg}/{lv.name}",
        "lv_dm_path": f"/dev/mapper/{vg.replace('-', '--')}-{lv.name.replace('-', '--')}",
        "uuid": f"emul-{abs(hash((vg, lv.name))) % 10**12:012d}",
        "lv_time": str(int(lv.created)), "metadata_size": "",
    }[f]


def _print_basic(fields: list[str], table: list[list[str]], headings: bool, sep: str | None) -> None:
    if sep is not None:
        if headings:
            out("  " + sep.join(_HEADINGS[f] for f in fields))
        for row in table:
            out("  " + sep.join(row))
        return
    rows = ([[_HEADINGS[f] for f in fields]] if headings else []) + table
    if not rows:
        return
    widths = [max(len(r[i]) for r in rows) for i in range(len(fields))]
    for row in rows:
        out("  " + " ".join(v.rjust(w) if f in _NUMERIC else v.ljust(w)
                            for v, w, f in zip(row, widths, fields)).rstrip())


def _print_json(fields: list[str], table: list[list[str]], fmt: str, key: str = "lv") -> None:
    def cell(f: str, v: str) -> str:
        if fmt == "json_std" and f in _NUMERIC:
            return "null" if v == "" else v.lstrip("<").rstrip("bkmgtpe") or "null"
        return json.dumps(v)

    rows = ['{' + ", ".join(f'"{f}":{cell(f, v)}' for f, v in zip(fields, row)) + '}'
            for row in table]
    lines = ["{", '    "report": [', "        {", f'            "{key}": [']
    lines += [f"                {r}" + ("," if i < len(rows) - 1 else "") for i, r in enumerate(rows)]
    lines += ["            ]", "        }", "    ]" + ("," if st.version() >= (2, 3, 26) else "")]
    if st.version() >= (2, 3, 26):
        lines += ['    "log": [', "    ]"]
    lines.append("}")
    stray = os.environ.get(st.STRAY_ENV)
    for i, line in enumerate(lines):
        if stray and i == 2:
            out(stray)  # LVM's informational lines can land inside the document
        out("  " + line)


# ---- vgs ----------------------------------------------------------------------------------------

_VG_HEADINGS = {"vg_name": "VG", "pv_count": "#PV", "lv_count": "#LV", "snap_count": "#SN",
                "vg_attr": "Attr", "vg_size": "VSize", "vg_free": "VFree",
                "vg_extent_size": "Ext", "vg_extent_count": "#Ext", "vg_free_count": "Free",
                "vg_tags": "VG Tags"}
_VG_NUMERIC = {"pv_count", "lv_count", "snap_count", "vg_size", "vg_free", "vg_extent_size",
               "vg_extent_count", "vg_free_count"}


def vgs(argv: list[str]) -> int:
    opts, args = _parse("vgs", argv, "o:q",
                        ["options=", "reportformat=", "units=", "nosuffix", "noheadings",
                         "separator=", "unbuffered", "quiet", "readonly"])
    fields = ["vg_name", "pv_count", "lv_count", "snap_count", "vg_attr", "vg_size", "vg_free"]
    r = _Report()
    for k, v in opts:
        if k in ("-o", "--options"):
            fields = [f for f in v.replace(" ", "").split(",")]
            for f in fields:
                if f not in _VG_HEADINGS:
                    raise LvmError(f"Unrecognised field: {f}")
        else:
            r.take(k, v)
    fmt, units, suffix, headings, sep = r.fmt, r.units, r.suffix, r.headings, r.sep
    with st.locked() as base:
        names = args or st.vgs(base)
        for vg in names:
            _need_vg(base, vg)
        table = [[_vg_value(base, vg, f, units, suffix) for f in fields] for vg in names]
    if fmt == "basic":
        if sep is not None:
            for row in ([[_VG_HEADINGS[f] for f in fields]] if headings else []) + table:
                out("  " + sep.join(row))
        else:
            rows = ([[_VG_HEADINGS[f] for f in fields]] if headings else []) + table
            widths = [max(len(r[i]) for r in rows) for i in range(len(fields))] if rows else []
            for row in rows:
                out("  " + " ".join(v.rjust(w) if f in _VG_NUMERIC and row is not rows[0] else
                                    v.ljust(w) for v, w, f in zip(row, widths, fields)).rstrip())
    else:
        _print_json(fields, table, fmt, key="vg")
    return 0


def _vg_value(base: Path, vg: str, f: str, units: str, suffix: bool) -> str:
    info, lvs_of_vg = st.vg_info(base, vg), st.all_lvs(base, vg)
    free = st.free_extents(base, vg)
    return {
        "vg_name": vg, "pv_count": "1", "lv_count": str(len(lvs_of_vg)),
        "snap_count": str(sum(1 for lv in lvs_of_vg if lv.kind == "cow")), "vg_attr": "wz--n-",
        "vg_size": report_size(info["extents"] * info["extent_size"], units, suffix),
        "vg_free": report_size(free * info["extent_size"], units, suffix),
        "vg_extent_size": report_size(info["extent_size"], units, suffix),
        "vg_extent_count": str(info["extents"]), "vg_free_count": str(free), "vg_tags": "",
    }[f]


# ---- lvremove ---------------------------------------------------------------------------------


def lvremove(argv: list[str]) -> int:
    opts, args = _parse("lvremove", argv, "fyqvS:", ["force", "yes", "quiet", "verbose", "select="])
    force = sum(1 for k, _ in opts if k in ("-f", "--force"))
    yes = any(k in ("-y", "--yes") for k, _ in opts)
    if not args:
        raise LvmError("Please enter one or more logical volume paths.", code=3)
    code = 0
    for arg in args:
        vg, name = _vg_lv(arg)
        with st.locked() as base:
            try:
                _need_vg(base, vg)
                _remove(base, vg, name, force > 0, yes)
            except LvmError as e:
                err(f"  {e.message}")
                code = 5
    return code


def _remove(base: Path, vg: str, name: str, force: bool, yes: bool) -> None:
    lv = st.load(base, vg, name)
    if lv is None:
        raise LvmError(f'Failed to find logical volume "{vg}/{name}"')
    snaps = [s for s in st.snapshots_of(base, vg, name) if s.kind == "cow"]
    victims = snaps + [lv]
    for v in victims:
        if v.mounts:
            raise LvmError(f"Logical volume {vg}/{v.name} contains a filesystem in use.")
    if not force and not yes:
        what = (f"origin logical volume {vg}/{name} with {len(snaps)} snapshots(s)" if snaps
                else f"{'active ' if lv.active else ''}logical volume {vg}/{name}")
        sys.stdout.write(f"Do you really want to remove {what}? [y/n]: ")
        sys.stdout.flush()
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):  # (lvm2: the command then fails)
            raise LvmError(f'Logical volume "{name}" not removed.')
    period = "." if st.version() >= (2, 3, 12) else ""
    for v in victims:
        st.delete(base, vg, v)
        out(f'  Logical volume "{v.name}" successfully removed{period}')


# ---- mount / umount of emulated LVs ------------------------------------------------------------


def mount(argv: list[str]) -> int:
    try:
        opts, args = getopt.gnu_getopt(argv, "t:o:nr", ["types=", "options=", "read-only"])
    except getopt.GetoptError as e:
        raise LvmError(f"mount: {e.msg}", code=1) from None
    if len(args) != 2:
        raise LvmError("mount: bad usage (emulator: mount [-t TYPE] [-o OPTS] DEVICE DIR)", code=1)
    device, target = args
    with st.locked() as base:
        found = st.find_device(base, device)
        if found is None or not found[1].active or found[1].invalid:
            raise LvmError(f"mount: {target}: special device {device} does not exist.", code=32)
        vg, lv = found
        if not os.path.isdir(target) or os.path.islink(target):
            raise LvmError(f"mount: {target}: mount point does not exist.", code=32)
        if os.listdir(target):
            raise LvmError(f"emulator: mount: {target} is not empty (the emulator replaces "
                           "the folder by a symlink)", code=32)
        os.rmdir(target)
        os.symlink(lv.data_dir, target)
        lv.mounts.append(os.path.abspath(target))
        st.save(base, vg, lv)
    writes = os.environ.get(st.WRITES_AFTER_MOUNT_ENV)  # "vg/lv=9M": the origin changes now
    if writes and lv.kind == "cow":
        origin, _, size = writes.partition("=")
        st.write_origin(origin, parse_size(size, "writes"))
    return 0


def umount(argv: list[str]) -> int:
    try:
        _opts, args = getopt.gnu_getopt(argv, "lfn", ["lazy", "force"])
    except getopt.GetoptError as e:
        raise LvmError(f"umount: {e.msg}", code=1) from None
    if len(args) != 1:
        raise LvmError("umount: bad usage", code=1)
    target = os.path.abspath(args[0])
    with st.locked() as base:
        for vg in st.vgs(base):
            for lv in st.all_lvs(base, vg):
                if target in lv.mounts:
                    if os.path.islink(target):  # a snapshot mounted by the emulator
                        os.unlink(target)
                        os.mkdir(target)
                    lv.mounts.remove(target)
                    st.save(base, vg, lv)
                    return 0
    raise LvmError(f"umount: {args[0]}: not mounted.", code=32)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(Path(sys.argv[0]).name, sys.argv[1:]))
