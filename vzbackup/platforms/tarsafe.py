"""Safe streaming extraction of a tar stream under one root directory (promise 5).

The stream is read once, member by member (``tarfile`` mode ``r|``), then read on to EOF
so the reader can verify the whole-stream checksum. Every file system call goes through a
directory file descriptor opened with ``O_NOFOLLOW``: no existing symlink is ever followed.

Rules. A member is refused with ``UnsafeArchive`` (naming the member, the reason and the
target) before anything is written for it when:

1. its name is absolute, holds a ``..`` component or a NUL byte, or is the root itself
   (``.``) without being a directory; or its link target holds a NUL byte;
2. a parent component of its path is a symlink or any other non-directory (found with
   ``O_NOFOLLOW|O_DIRECTORY`` on each component; ``lstat`` says which);
3. it would replace a directory with a non-directory (existing non-directories are
   replaced, as ``tar -x`` does: unlinked, never followed or opened);
4. it is a hardlink whose target is absolute, holds ``..``, or is not a non-directory
   member extracted earlier from this same stream;
5. it is a character or block device and the process is not root.

Kept: regular files (sparse members re-created sparse: data written at its offsets, holes
left as holes, then truncated to size), directories, symlinks (created verbatim, absolute
or not: they are data, interpreted later relative to the guest root), hardlinks, fifos,
device nodes (root only), modes with setuid/setgid/sticky, numeric owners (root only),
mtimes to the nanosecond (directories' xattrs, modes and mtimes last, deepest first, so
no default ACL is inherited by their members; symlinks not followed) and
``SCHILY.xattr.*`` extended attributes (skipped with a warning where the file system
refuses them); POSIX ACLs through their raw ``system.posix_acl_*`` xattrs (the text form
``SCHILY.acl.*`` alone is not restored: a warning says so). Missing
parent directories are created with mode 0700 until their own member sets theirs. Members
of unknown types are skipped with a warning.

The caller extracts into an empty staging directory and discards it when this raises.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import tarfile
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NoReturn

from ..errors import NoSpace, RestoreFailed, UnsafeArchive

log = logging.getLogger(__name__)

BUF = 1 << 20  # file data is copied in pieces of this size
STREAM_BUF = 64 << 10  # tarfile's read size: it copies its buffer on every header read
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_CACHE_SIZE = 64  # open directory descriptors kept (tar streams are grouped by directory)
_XATTR = "SCHILY.xattr."
_ACL = "SCHILY.acl."

Parts = tuple[str, ...]


@dataclass
class ExtractStats:
    members: int = 0
    file_bytes: int = 0  # regular-file data written
    trailing_bytes: int = 0  # read after the end-of-archive marker
    xattrs_skipped: int = 0


def extract_stream(stream: BinaryIO, root: Path, *, target: str,
                   as_root: bool | None = None) -> ExtractStats:
    """Extract the tar ``stream`` under the existing directory ``root``, then read the stream
    to EOF. ``target`` names the guest and node for messages; ``as_root`` defaults to
    whether the process runs as root (owners and device nodes need it)."""
    as_root = os.geteuid() == 0 if as_root is None else as_root
    ex = _Extractor(root, target, as_root)
    try:
        with tarfile.open(fileobj=stream, mode="r|", bufsize=STREAM_BUF, encoding="utf-8",
                          errors="surrogateescape") as tf:
            for member in tf:
                ex.extract(member, tf.fileobj)
                tf.members.clear()  # r| keeps every TarInfo otherwise
        ex.finish()
    except tarfile.TarError as e:
        raise RestoreFailed(f"{target}: the stream is not a valid tar archive: {e}") from e
    finally:
        ex.close()
    ex.stats.trailing_bytes = _drain(stream)
    return ex.stats


def _drain(stream: BinaryIO) -> int:
    n = 0
    while chunk := stream.read(BUF):
        n += len(chunk)
    return n


def split_name(name: str) -> Parts | None:
    """A member name as path components under the root; None if it may not be extracted."""
    if name.startswith("/") or "\0" in name:
        return None
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    return None if ".." in parts else parts


def _ns(member: tarfile.TarInfo, key: str = "mtime") -> int:
    """A pax time to the nanosecond (tarfile's float loses precision)."""
    text = member.pax_headers.get(key)
    if not text:
        return int(member.mtime) * 1_000_000_000
    sign = -1 if text.startswith("-") else 1
    sec, _, frac = text.lstrip("-").partition(".")
    try:
        return sign * (int(sec) * 1_000_000_000 + int((frac + "000000000")[:9]))
    except ValueError:
        return int(member.mtime * 1_000_000_000)


class _Extractor:
    def __init__(self, root: Path, target: str, as_root: bool):
        self.target = target
        self.as_root = as_root
        self.stats = ExtractStats()
        self._root_fd = os.open(root, _DIR_FLAGS)
        self._dirs: OrderedDict[Parts, int] = OrderedDict()
        self._extracted: set[Parts] = set()  # non-directories, for hardlink targets
        self._deferred: list[tuple[Parts, tarfile.TarInfo]] = []  # directory mode and mtime
        self._acl_warned = False

    # ---- entry points ---------------------------------------------------------------

    def extract(self, m: tarfile.TarInfo, data: BinaryIO) -> None:
        parts = split_name(m.name)
        if parts is None:
            self._refuse(m, "an absolute name, a '..' component or a NUL byte")
        if "\0" in m.linkname:
            self._refuse(m, "a link target with a NUL byte")
        with self._os_errors(m.name):
            self._extract(m, parts, data)
        self.stats.members += 1

    def finish(self) -> None:
        """Apply directories' xattrs, modes and mtimes, deepest first."""
        for parts, m in sorted(self._deferred, key=lambda d: len(d[0]), reverse=True):
            with self._os_errors(m.name):
                fd = self._dir_fd(parts, m)
                self._xattrs(m, fd)
                os.fchmod(fd, m.mode & 0o7777)
                os.utime(fd, ns=self._times(m))
        if self.stats.xattrs_skipped:
            log.warning("%s: %d extended attributes could not be restored (see above)",
                        self.target, self.stats.xattrs_skipped)

    def close(self) -> None:
        for fd in self._dirs.values():
            os.close(fd)
        self._dirs.clear()
        os.close(self._root_fd)

    # ---- one member -------------------------------------------------------------------

    def _extract(self, m: tarfile.TarInfo, parts: Parts, data: BinaryIO) -> None:
        if m.isdir():
            return self._directory(parts, m)
        if not parts:
            self._refuse(m, "only a directory may stand for the root")
        if m.ischr() or m.isblk():
            if not self.as_root:
                raise UnsafeArchive(
                    f"{self.target}: archive member {m.name!r} is a device node, which only "
                    "root can create", hint="Run the restore as root.")
        elif m.islnk():
            return self._hardlink(parts, m)
        elif not (m.isreg() or m.issym() or m.isfifo()):
            log.warning("%s: skipping %r of unsupported type %r", self.target, m.name, m.type)
            return
        parent = self._dir_fd(parts[:-1], m)
        self._make_room(parent, parts, m)
        if m.isreg():
            self._file(parent, parts[-1], m, data)
        else:
            self._special(parent, parts[-1], m)
        self._extracted.add(parts)

    def _directory(self, parts: Parts, m: tarfile.TarInfo) -> None:
        if parts:
            parent = self._dir_fd(parts[:-1], m)
            st = _lstat(parent, parts[-1])
            if st is not None and not stat.S_ISDIR(st.st_mode):
                os.unlink(parts[-1], dir_fd=parent)  # a file replaced by a directory
                self._extracted.discard(parts)
        fd = self._dir_fd(parts, m)
        if self.as_root:
            os.fchown(fd, m.uid, m.gid)
        self._deferred.append((parts, m))  # xattrs too: a default ACL must not be inherited

    def _file(self, parent: int, name: str, m: tarfile.TarInfo, data: BinaryIO) -> None:
        fd = os.open(name, _NEW_FILE_FLAGS, 0o600, dir_fd=parent)
        try:
            regions = m.sparse if m.sparse is not None else [(0, m.size)]
            for offset, size in regions:
                self._copy(data, fd, offset, size)
            if m.sparse is not None:
                os.ftruncate(fd, m.size)
            if self.as_root:
                os.fchown(fd, m.uid, m.gid)  # first: chown clears setuid bits and capabilities
            self._xattrs(m, fd)
            os.fchmod(fd, m.mode & 0o7777)
            os.utime(fd, ns=self._times(m))
        finally:
            os.close(fd)

    def _copy(self, data: BinaryIO, fd: int, offset: int, size: int) -> None:
        while size > 0:
            chunk = data.read(min(size, BUF))
            if not chunk:
                raise tarfile.ReadError("unexpected end of data")
            view = memoryview(chunk)
            while view:
                n = os.pwrite(fd, view, offset)
                offset += n
                view = view[n:]
            size -= len(chunk)
            self.stats.file_bytes += len(chunk)

    def _special(self, parent: int, name: str, m: tarfile.TarInfo) -> None:
        if m.issym():
            os.symlink(m.linkname, name, dir_fd=parent)
        elif m.isfifo():
            os.mkfifo(name, 0o600, dir_fd=parent)
        else:
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            os.mknod(name, 0o600 | kind, os.makedev(m.devmajor, m.devminor), dir_fd=parent)
        if self.as_root:
            os.chown(name, m.uid, m.gid, dir_fd=parent, follow_symlinks=False)
        self._xattrs(m, f"/proc/self/fd/{parent}/{name}")
        if not m.issym():  # Linux has no symlink modes; chmod here cannot meet a symlink
            os.chmod(name, m.mode & 0o7777, dir_fd=parent)
        os.utime(name, ns=self._times(m), dir_fd=parent, follow_symlinks=False)

    def _hardlink(self, parts: Parts, m: tarfile.TarInfo) -> None:
        source = split_name(m.linkname)
        if source is None or source not in self._extracted:
            self._refuse(m, f"a hardlink to {m.linkname!r}, which is not a file extracted "
                            "before it inside the target")
        source_dir = os.dup(self._dir_fd(source[:-1], m))
        try:
            parent = self._dir_fd(parts[:-1], m)
            self._make_room(parent, parts, m)
            os.link(source[-1], parts[-1], src_dir_fd=source_dir, dst_dir_fd=parent,
                    follow_symlinks=False)
        finally:
            os.close(source_dir)
        self._extracted.add(parts)

    # ---- helpers ----------------------------------------------------------------------

    def _make_room(self, parent: int, parts: Parts, m: tarfile.TarInfo) -> None:
        st = _lstat(parent, parts[-1])
        if st is None:
            return
        if stat.S_ISDIR(st.st_mode):
            self._refuse(m, "it would replace a directory")
        os.unlink(parts[-1], dir_fd=parent)

    def _dir_fd(self, parts: Parts, m: tarfile.TarInfo) -> int:
        """An open descriptor of directory ``parts``, creating missing ones (mode 0700).
        Valid until the next call. Directories are never removed, so cached ones stay true."""
        if not parts:
            return self._root_fd
        if parts in self._dirs:
            self._dirs.move_to_end(parts)
            return self._dirs[parts]
        known = len(parts) - 1
        while known and parts[:known] not in self._dirs:
            known -= 1
        fd = self._dirs[parts[:known]] if known else self._root_fd
        for i in range(known, len(parts)):
            fd = self._open_dir(fd, parts, i, m)
            self._dirs[parts[: i + 1]] = fd
        while len(self._dirs) > _CACHE_SIZE:
            os.close(self._dirs.popitem(last=False)[1])
        return fd

    def _open_dir(self, parent: int, parts: Parts, i: int, m: tarfile.TarInfo) -> int:
        name = parts[i]
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            os.mkdir(name, 0o700, dir_fd=parent)
            return os.open(name, _DIR_FLAGS, dir_fd=parent)
        except OSError as e:
            if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
        st = _lstat(parent, name)
        what = "symlink" if st is not None and stat.S_ISLNK(st.st_mode) else "non-directory"
        self._refuse(m, f"its path passes through the {what} {'/'.join(parts[: i + 1])!r}")

    def _xattrs(self, m: tarfile.TarInfo, where: int | str) -> None:
        """Set ``SCHILY.xattr.*``; POSIX ACLs come back through their raw xattrs
        (``system.posix_acl_*``, numeric ids), which GNU tar stores with
        ``--xattrs-include=*``; its ``SCHILY.acl.*`` text (user names) is not used."""
        headers = m.pax_headers
        for key, value in headers.items():
            if key.startswith(_ACL) and not self._acl_warned and \
                    f"{_XATTR}system.posix_acl_{key[len(_ACL):]}" not in headers:
                self._acl_warned = True
                log.warning("%s: %r has a POSIX ACL only in text form, which is not restored",
                            self.target, m.name)
            if not key.startswith(_XATTR):
                continue
            attr = key[len(_XATTR):]
            try:
                os.setxattr(where, attr, value.encode("utf-8", "surrogateescape"),
                            follow_symlinks=isinstance(where, int))
            except OSError as e:
                if e.errno not in (errno.ENOTSUP, errno.EPERM, errno.EACCES, errno.EINVAL):
                    raise
                self.stats.xattrs_skipped += 1
                log.warning("%s: cannot set xattr %s on %r: %s", self.target, attr, m.name,
                            e.strerror)

    def _times(self, m: tarfile.TarInfo) -> tuple[int, int]:
        mtime = _ns(m)
        return (_ns(m, "atime") if "atime" in m.pax_headers else mtime, mtime)

    @contextmanager
    def _os_errors(self, name: str) -> Iterator[None]:
        try:
            yield
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise NoSpace(f"{self.target}: no space left while extracting {name!r}") from e
            raise RestoreFailed(f"{self.target}: cannot extract {name!r}: {e}") from e
        except (ValueError, OverflowError) as e:  # e.g. a time or id out of range
            raise RestoreFailed(f"{self.target}: bad metadata on {name!r}: {e}") from e

    def _refuse(self, m: tarfile.TarInfo, why: str) -> NoReturn:
        raise UnsafeArchive(f"{self.target}: refusing archive member {m.name!r}: {why}")


def _lstat(parent: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return None
