"""Running LVM2 commands and reading their reports (shared/reference/pve.md section 11;
``vgs`` as lvm2 2.03.16 prints it: the ``"vg"`` rows of the same JSON document).

Reports are read as JSON (lvm2 >= 2.02.158) by keyword, tolerating what versions differ
in: a ``"log"`` block (>= 2.03.26), informational lines printed inside the document, and
the two-space message indent. Any non-zero exit is a failure; LVM's own last line is kept
for the message.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass

from ..errors import DumpFailed, EnvironmentBroken

REPORT_FIELDS = "lv_name,vg_name,lv_attr,lv_size,origin,data_percent,lv_tags"
POOL_FIELDS = REPORT_FIELDS + ",pool_lv,metadata_percent"
VG_FIELDS = "vg_name,vg_size,vg_free,vg_extent_size,vg_extent_count,vg_free_count"


@dataclass(frozen=True)
class LvRow:
    vg: str
    name: str
    attr: str
    size: int  # bytes
    origin: str
    data_percent: float | None  # None: inactive, or not a snapshot or thin volume
    tags: tuple[str, ...]
    pool: str = ""  # a thin volume's pool (asked for with POOL_FIELDS)
    metadata_percent: float | None = None  # a thin pool's

    @property
    def thin(self) -> bool:
        return self.attr[:1] == "V"

    @property
    def invalid(self) -> bool:
        """An overflowed COW snapshot: 'I' in attr position 5 (not 'S' in position 1)."""
        return len(self.attr) >= 5 and self.attr[4] == "I"

    @property
    def is_snapshot(self) -> bool:
        return bool(self.origin) and self.attr[:1] in ("s", "V")


@dataclass(frozen=True)
class VgRow:
    name: str
    size: int  # bytes
    free: int  # bytes
    extent_size: int  # bytes
    extents: int
    free_extents: int


@dataclass(frozen=True)
class Done:
    code: int
    out: str
    err: str

    def last_error(self) -> str:
        lines = [ln.strip() for ln in self.err.splitlines() if ln.strip()]
        return lines[-1] if lines else f"exit status {self.code}"


def run(argv: list[str], stdin: str | None = None) -> Done:
    env = {**os.environ, "LC_ALL": "C", "LVM_SUPPRESS_FD_WARNINGS": "1"}
    try:
        p = subprocess.run(argv, input=stdin if stdin is not None else "", capture_output=True,
                           text=True, env=env, timeout=300)
    except FileNotFoundError:
        raise EnvironmentBroken(f"{argv[0]} is not installed on this node",
                                hint="Install lvm2 on the node, or use another snapshotter.") from None
    except subprocess.TimeoutExpired:
        raise DumpFailed(f"'{' '.join(argv)}' did not finish within 300 s") from None
    return Done(p.returncode, p.stdout, p.stderr)


def report(target: str, fields: str = REPORT_FIELDS) -> list[LvRow]:
    """``lvs`` of a VG or an LV, in bytes. Raises ``DumpFailed`` when lvs fails."""
    done = run(["lvs", "--reportformat", "json", "--units", "b", "--nosuffix",
                "-o", fields, target])
    if done.code != 0:
        raise DumpFailed(f"'lvs {target}' failed: {done.last_error()}")
    return parse_report(done.out)


def vg_report(vg: str) -> VgRow:
    """``vgs`` of one VG, in bytes and extents. Raises ``DumpFailed`` when vgs fails."""
    done = run(["vgs", "--reportformat", "json", "--units", "b", "--nosuffix",
                "-o", VG_FIELDS, vg])
    if done.code != 0:
        raise DumpFailed(f"'vgs {vg}' failed: {done.last_error()}")
    rows = [r for r in _lv_rows(done.out, "vg") if r.get("vg_name") == vg]
    if not rows:
        raise DumpFailed(f"'vgs {vg}' did not report the volume group: {done.out[:300]!r}")
    r = rows[0]

    def num(key: str) -> int:
        return int(float(str(r.get(key) or "0").lstrip("<").rstrip("B") or 0))

    return VgRow(vg, num("vg_size"), num("vg_free"), num("vg_extent_size"),
                 num("vg_extent_count"), num("vg_free_count"))


def parse_report(text: str) -> list[LvRow]:
    return [_row(r) for r in _lv_rows(text)]


def _lv_rows(text: str, key: str = "lv") -> list[dict]:
    try:
        doc = json.loads(text)
    except ValueError:  # informational lines inside the document: keep only JSON-looking lines
        kept = [ln for ln in text.splitlines() if ln.strip()[:1] in ('{', '}', '[', ']', '"')]
        try:
            doc = json.loads("\n".join(kept))
        except ValueError:
            raise DumpFailed(f"cannot read the lvs report: {text[:300]!r}") from None
    return [row for part in doc.get("report", []) for row in part.get(key, [])]


def _row(r: dict) -> LvRow:
    def num(value: object) -> float | None:
        text = str(value if value is not None else "").lstrip("<").rstrip("B")
        return float(text) if text else None

    tags = r.get("lv_tags") or ""
    return LvRow(vg=str(r.get("vg_name", "")), name=str(r.get("lv_name", "")),
                 attr=str(r.get("lv_attr", "")), size=int(num(r.get("lv_size")) or 0),
                 origin=str(r.get("origin") or ""), data_percent=num(r.get("data_percent")),
                 tags=tuple(tags) if isinstance(tags, list) else tuple(t for t in tags.split(",") if t),
                 pool=str(r.get("pool_lv") or ""),
                 metadata_percent=num(r.get("metadata_percent")))
