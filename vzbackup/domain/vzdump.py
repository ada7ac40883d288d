"""vzdump archive names and sidecars (shared/reference/pve.md sections 4.3, 4.4, 12.1).

``vzdump-<type>-<vmid>-<YYYY>_<MM>_<DD>-<hh>_<mm>_<ss>.<ext>``: type ``lxc``, ``qemu`` or
``openvz`` (PVE <= 3.x); ext ``tar``/``vma`` plus ``.gz``, ``.lzo``, ``.zst`` or ``.bz2``, or
``tgz``. The time is the node's local time, without a zone. Sidecars: ``<name>.notes``,
``<name>.protected`` (full name plus a suffix) and ``<basename>.log`` (no archive extension).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from .guests import GuestRef

# The pattern PVE treats as a standard backup name (pve-storage Storage.pm::archive_info).
ARCHIVE_NAME = re.compile(
    r"^vzdump-(?P<type>lxc|qemu|openvz)-(?P<vmid>[1-9][0-9]{2,8})-"
    r"(?P<Y>\d{4})_(?P<m>\d{2})_(?P<d>\d{2})-(?P<H>\d{2})_(?P<M>\d{2})_(?P<S>\d{2})"
    r"\.(?P<ext>tgz|(?:tar|vma)(?:\.(?:gz|lzo|zst|bz2))?)$")
_LOOKS_LIKE = re.compile(r"^vzdump-(lxc|qemu|openvz)-.*\.(tgz|(tar|vma)(\.(gz|lzo|zst|bz2))?)$")
COMPRESSIONS = {"gz": "gzip", "tgz": "gzip", "lzo": "lzo", "zst": "zstd", "bz2": "bzip2"}
EXTENSIONS = {"gzip": ".gz", "lzo": ".lzo", "zstd": ".zst"}  # what vzdump writes
GUEST_KIND = {"lxc": "ct", "openvz": "ct", "qemu": "vm"}
SIDECARS = (".log", ".notes", ".protected")


class NotAnArchiveName(ValueError):
    """A file name vzdump never writes (or one PVE cannot take apart)."""


@dataclass(frozen=True)
class ArchiveName:
    name: str
    type: str  # lxc | qemu | openvz
    vmid: int
    when: datetime  # naive: the node's local time
    format: str  # tar | vma
    compression: str | None  # gzip | lzo | zstd | bzip2

    @property
    def guest(self) -> GuestRef:
        return GuestRef(GUEST_KIND[self.type], self.vmid)  # type: ignore[arg-type]

    @property
    def basename(self) -> str:
        """The name without any archive extension: the ``.log`` sidecar's stem."""
        return self.name.split(".", 1)[0]

    @property
    def log_name(self) -> str:
        return self.basename + ".log"

    @property
    def notes_name(self) -> str:
        return self.name + ".notes"

    @property
    def protected_name(self) -> str:
        return self.name + ".protected"

    @property
    def partial_name(self) -> str:
        """What vzdump writes while the archive is in progress: last extension -> ``.dat``."""
        return self.name.rsplit(".", 1)[0] + ".dat"


def parse_archive_name(name: str) -> ArchiveName:
    m = ARCHIVE_NAME.match(name)
    if m is None:
        why = ("a renamed vzdump archive: its type, VMID or time cannot be read from the name"
               if _LOOKS_LIKE.match(name) else
               "vzdump archives are named vzdump-<lxc|qemu|openvz>-<VMID>-<YYYY_MM_DD-hh_mm_ss>"
               ".<tar|vma>[.gz|.lzo|.zst|.bz2] or .tgz")
        raise NotAnArchiveName(f"couldn't determine archive info from '{name}': {why}")
    try:
        when = datetime(int(m["Y"]), int(m["m"]), int(m["d"]), int(m["H"]), int(m["M"]), int(m["S"]))
    except ValueError as e:
        raise NotAnArchiveName(f"couldn't determine archive info from '{name}': {e}") from None
    ext = m["ext"]
    fmt = "tar" if ext == "tgz" else ext.split(".")[0]
    compression = COMPRESSIONS.get(ext.rsplit(".", 1)[-1]) if ext != fmt else None
    return ArchiveName(name, m["type"], int(m["vmid"]), when, fmt, compression)


def archive_name(type_: str, vmid: int, when: datetime, fmt: str, compression: str | None) -> str:
    """The name vzdump would give: local time ``when``, compression ``gzip|lzo|zstd|None``."""
    stamp = when.strftime("%Y_%m_%d-%H_%M_%S")
    return f"vzdump-{type_}-{vmid}-{stamp}.{fmt}{EXTENSIONS[compression] if compression else ''}"


def parse_key_values(text: str) -> dict[str, str]:
    """pct.conf / qemu-server.conf: ``key: value`` lines up to the first ``[section]``
    (the ``#`` description lines stay in the archive's own copy of the file)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("["):
            break
        key, sep, value = line.partition(":")
        if sep and key.strip() and not line.startswith("#"):
            out[key.strip()] = value.strip()
    return out
