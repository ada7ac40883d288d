"""``vzbackup export``: a restore point as the vzdump archive ``pct restore`` or
``qmrestore`` accepts (shared/reference/pve.md sections 4.3, 4.7, 7).

- container points of the proxmox and openvz platforms are vzdump tar streams already
  (first member ``./etc/vzdump/pct.conf`` or ``vps.conf``): written as they are, named
  ``vzdump-lxc-...`` or ``vzdump-openvz-...`` (``pct restore`` converts the latter);
- container points of the directory platform are a tar of the root file system: the guest
  config is put in front as ``./etc/vzdump/pct.conf``;
- VM points must be VMA streams (``vzdump-qemu-....vma``); a directory platform VM (a tar
  of image files) cannot be read by qmrestore and is refused.

The name carries the point's time in this host's local time, as vzdump's does. The file
appears under its final name only after the whole point was read and verified.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ..domain.points import LOG, RestorePoint
from ..domain.vzdump import archive_name
from ..errors import BadArchive, IntegrityError, PointNotFound, RepositoryError
from ..ports import Archives, PointReader, Repository

VMA_MAGIC = b"VMA\0"


@dataclass(frozen=True)
class Exported:
    point: str
    path: str
    repository: str
    size: int


def export_point(point: RestorePoint, repositories: dict[str, Repository], archives: Archives,
                 to_dir: Path, compression: str | None) -> Exported:
    """From the first healthy copy; a copy that fails to read or verify makes way for the
    next one (nothing is left behind by the failed attempt)."""
    sources = _sources(point, repositories)
    for i, repo in enumerate(sources):
        try:
            return _export_from(repo, point, archives, to_dir, compression)
        except (IntegrityError, RepositoryError):
            if i == len(sources) - 1:
                raise
    raise AssertionError("unreachable")


def _export_from(repo: Repository, point: RestorePoint, archives: Archives, to_dir: Path,
                 compression: str | None) -> Exported:
    manifest = repo.load_manifest(point.id)
    kind, prefix = _layout(point, manifest.platform, manifest.guest_config, archives)
    fmt = "vma" if kind == "qemu" else "tar"
    name = archive_name(kind, point.guest.vmid, point.created.astimezone().replace(tzinfo=None),
                        fmt, compression)
    reader = repo.open_point(point.id)
    try:
        stream: BinaryIO = _VmaChecked(reader, point) if fmt == "vma" else reader  # type: ignore[assignment]
        path = archives.write(stream, to_dir, name, prefix=prefix,
                              sidecars=_sidecars(name, point))
    finally:
        reader.close()
    return Exported(point.id, str(path), repo.name, path.stat().st_size)


def _sources(point: RestorePoint, repositories: dict[str, Repository]) -> list[Repository]:
    found = [repositories[c.repository] for c in point.copies
             if c.state in ("ok", "unverified") and c.repository in repositories]
    if found:
        return found
    raise PointNotFound(f"restore point {point.id[:12]} of {point.guest}: no healthy copy in a "
                        "repository that opens", hint="Check 'vzbackup points' for its copies.")


def _layout(point: RestorePoint, platform: str, config: dict[str, Any], archives: Archives
            ) -> tuple[str, bytes]:
    if point.guest.kind == "vm":
        if platform == "directory":
            raise BadArchive(f"restore point {point.id[:12]} of {point.guest} holds a tar of disk "
                             "images (directory platform), not a VMA stream: qmrestore cannot "
                             "read it", hint=f"Restore it with 'vzbackup restore {point.guest} "
                                             "--to NODE' instead.")
        return "qemu", b""
    if platform == "openvz":
        return "openvz", b""
    if platform == "directory":
        return "lxc", archives.config_member("./etc/vzdump/pct.conf", _pct_conf(point, config))
    return "lxc", b""


def _pct_conf(point: RestorePoint, config: dict[str, Any]) -> str:
    """The directory platform's guest.conf as pct.conf: ``key: value`` lines sorted by key."""
    conf = {k: str(v) for k, v in config.items() if isinstance(v, (str, int)) and "." not in k}
    conf.setdefault("hostname", point.guest_name)
    return "".join(f"{k}: {conf[k]}\n" for k in sorted(conf))


def _sidecars(name: str, point: RestorePoint) -> dict[str, bytes]:
    out = {}
    if point.notes:
        out[name + ".notes"] = point.notes.encode("utf-8")
    if point.protected:
        out[name + ".protected"] = b""
    log = point.labels.get(LOG)
    if log is not None:
        out[name.split(".", 1)[0] + ".log"] = log.encode("utf-8")
    return out


class _VmaChecked:
    """A point's stream that must start with the VMA magic."""

    def __init__(self, reader: PointReader, point: RestorePoint):
        self.reader, self.point, self.checked = reader, point, False

    def read(self, n: int = -1) -> bytes:
        data = self.reader.read(n)
        if not self.checked:
            self.checked = True
            if not data.startswith(VMA_MAGIC):
                raise BadArchive(f"restore point {self.point.id[:12]} of {self.point.guest} is "
                                 "not a VMA stream: qmrestore would refuse it")
        return data
