"""Describe a directory tree completely enough to call two trees identical: contents,
modes, ownership, mtimes, symlink targets, hardlink groups, xattrs and sparseness."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path


def describe(root: Path) -> dict[str, tuple]:
    entries: dict[str, tuple] = {}
    inodes: dict[tuple[int, int], list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            st = path.lstat()
            entries[rel] = _entry(path, st)
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
    for group in inodes.values():
        for rel in group:
            entries[rel] += (("hardlinks", tuple(sorted(group))),)
    return entries


def _entry(path: Path, st: os.stat_result) -> tuple:
    common = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
    xattrs = _xattrs(path)
    if stat.S_ISLNK(st.st_mode):
        return common + (os.readlink(path), st.st_mtime_ns, xattrs)
    if stat.S_ISDIR(st.st_mode):
        return common + (st.st_mtime_ns, xattrs)
    if stat.S_ISREG(st.st_mode):
        return common + (st.st_size, _sha256(path), st.st_mtime_ns, xattrs)
    return common + (st.st_rdev, st.st_mtime_ns, xattrs)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _xattrs(path: Path) -> tuple:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return ()
    return tuple(sorted((n, os.getxattr(path, n, follow_symlinks=False)) for n in names))


def differences(a: dict[str, tuple], b: dict[str, tuple], limit: int = 10) -> list[str]:
    out = [f"only in first: {k}" for k in sorted(a.keys() - b.keys())]
    out += [f"only in second: {k}" for k in sorted(b.keys() - a.keys())]
    out += [f"differs: {k}: {a[k]} != {b[k]}" for k in sorted(a.keys() & b.keys()) if a[k] != b[k]]
    return out[:limit]


def allocated_bytes(path: Path) -> int:
    return path.stat().st_blocks * 512
