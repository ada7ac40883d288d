"""Compare directory trees in tests: everything a restore must keep, in one dict."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any

IGNORED_XATTRS = ("security.selinux",)


def tree_digest(root: Path, *, mtimes: bool = True) -> dict[str, tuple[Any, ...]]:
    """``relative path -> (type, mode, uid, gid, size, mtime_ns, content, xattrs, link)``.

    ``content`` is the SHA-256 of a file, a symlink's target, or a device's numbers;
    ``link`` is the first path (sorted) of a hardlink group, so groups compare too.
    Symlinks are never followed. The root itself is ``"."``.
    """
    entries: dict[str, tuple[Any, ...]] = {}
    first_by_inode: dict[tuple[int, int], str] = {}
    for rel in sorted(_walk(root)):
        full = root / rel if rel != "." else root
        st = os.lstat(full)
        link = None
        if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
            link = first_by_inode.setdefault((st.st_dev, st.st_ino), rel)
        entries[rel] = (
            stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
            st.st_size if stat.S_ISREG(st.st_mode) else 0,
            st.st_mtime_ns if mtimes else 0, _content(full, st), _xattrs(full), link,
        )
    return entries


def diff_trees(a: dict[str, tuple[Any, ...]], b: dict[str, tuple[Any, ...]]) -> list[str]:
    """Readable differences, for assertion messages."""
    out = [f"only in first: {k}" for k in sorted(a.keys() - b.keys())]
    out += [f"only in second: {k}" for k in sorted(b.keys() - a.keys())]
    out += [f"{k}: {a[k]} != {b[k]}" for k in sorted(a.keys() & b.keys()) if a[k] != b[k]]
    return out


def _walk(root: Path) -> list[str]:
    found = ["."]
    for folder, dirs, files in os.walk(root):
        rel = os.path.relpath(folder, root)
        for name in dirs + files:
            found.append(os.path.normpath(os.path.join(rel, name)))
    return found


def _content(path: Path, st: os.stat_result) -> str | None:
    if stat.S_ISREG(st.st_mode):
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        return h.hexdigest()
    if stat.S_ISLNK(st.st_mode):
        return os.readlink(path)
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        return f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    return None


def _xattrs(path: Path) -> tuple[tuple[str, bytes], ...]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return ()
    return tuple(sorted((n, os.getxattr(path, n, follow_symlinks=False))
                        for n in names if n not in IGNORED_XATTRS))
