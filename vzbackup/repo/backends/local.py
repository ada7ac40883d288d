"""A repository in a local directory (``file:///abs/path``): one file per object.

``put`` writes a temporary dot-file in the object's directory and renames it over the key,
so a reader sees the old object or the whole new one. Nothing is fsynced per object;
``flush`` makes everything put so far durable in one step:

- ``syncfs`` (Linux >= 5.8, where it reports writeback errors): one call writes back every
  dirty page and the directory entries of the repository's filesystem. It is far faster
  than thousands of ``fsync`` calls (each may force a journal commit), and also covers the
  renames and new directories without tracking them. The cost: other dirty data on the
  same filesystem is written too, which is a fair price on a backup target.
- otherwise (or ``durability="fsync"``) each file this process put since the last flush is
  fsynced, then each touched directory. Weaker in one corner: a chunk found already present
  but put by another process that crashed before its flush is not made durable by us.

Large objects in page-aligned memory (the packs a writer fills) are written with
``O_DIRECT``: straight from the buffer to the disk, without copying them into the page cache
first. That copy cost as much CPU as a sixth of a full backup (each new page-cache page is
fresh memory, perf.md trap 3), and packs written by a backup are rarely read again soon,
so caching them only evicted the guests' data. The last partial block goes through the page
cache. Durability is unchanged: the data is on the device when the write returns, and
``flush`` still makes the metadata and the device's cache durable. A filesystem that
refuses ``O_DIRECT`` (tmpfs, some FUSE) gets buffered writes.

Temporary files start with '.', keys may not, so a crash never leaves a listed object;
:meth:`LocalBackend.remove_stale_temp` deletes leftovers.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import itertools
import logging
import os
import platform
import secrets
import stat as stat_module
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ...errors import NoSpace, ObjectNotFound, RepositoryError
from ...ports import ObjectInfo
from .objectkeys import check_key
from .capabilities import ATOMIC_PUT, DURABLE_FLUSH, RANGED_GET

log = logging.getLogger(__name__)

TEMP_SUFFIX = ".tmp"
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
DIRECT_ALIGN = 4096  # O_DIRECT: buffer address, offset and length in whole blocks of this
DIRECT_MIN = 1 << 20  # objects smaller than this are written through the page cache
WRITEBACK_MIN = 8 << 20  # writeback() does nothing for less buffered data than this
DIRECT_FLAG = getattr(os, "O_DIRECT", 0)


def _load_syncfs():
    """libc ``syncfs`` when the kernel reports writeback errors through it (>= 5.8)."""
    try:
        major, minor = (int(x) for x in platform.release().split(".")[:2])
        syncfs = ctypes.CDLL(None, use_errno=True).syncfs
    except (ValueError, OSError, AttributeError):
        return None
    return syncfs if (major, minor) >= (5, 8) else None


_SYNCFS = _load_syncfs()


class LocalBackend:
    capabilities = frozenset({RANGED_GET, ATOMIC_PUT, DURABLE_FLUSH})

    def __init__(self, root: Path, *, durability: str = "auto"):
        if not root.is_absolute():
            raise RepositoryError(f"{root}: a local repository path must be absolute")
        if durability not in ("auto", "syncfs", "fsync"):
            raise ValueError(f"durability must be auto, syncfs or fsync, not {durability!r}")
        self.root = root
        self._root = str(root).rstrip("/")
        self.url = root.as_uri()
        self._use_syncfs = _SYNCFS is not None and durability != "fsync"
        self._dirty: set[str] = set()  # paths put since the last flush (fsync mode)
        self._dirty_lock = threading.Lock()  # puts and a background flush run at once
        # temporary names: a random prefix per backend, then a counter (no getrandom per put)
        self._tmp_prefix = secrets.token_hex(6)
        self._tmp_counter = itertools.count()
        self._direct = bool(DIRECT_FLAG)  # until the filesystem refuses it
        self._buffered = 0  # bytes put through the page cache since the last syncfs (about)

    @classmethod
    def from_url(cls, url: str, **options) -> "LocalBackend":
        parts = urlsplit(url)
        if parts.scheme != "file" or parts.netloc not in ("", "localhost") or not parts.path:
            raise RepositoryError(f"{url}: expected file:///absolute/path")
        return cls(Path(unquote(parts.path)), **options)

    def __repr__(self) -> str:
        return f"LocalBackend({self.url!r})"

    # ---- keys and errors ------------------------------------------------------------

    def _path(self, key: str) -> str:
        return f"{self._root}/{check_key(self.url, key)}"

    def _error(self, exc: OSError, action: str, key: str) -> RepositoryError:
        if exc.errno in _NO_SPACE:
            return NoSpace(f"{exc.filename or self.root}: no space left on device "
                           f"({action} {key} in {self.url})")
        return RepositoryError(f"{self.url}: cannot {action} {key}: {exc.strerror or exc}")

    # ---- Backend -----------------------------------------------------------------------

    def put(self, key: str, data: bytes) -> None:
        self.put_parts(key, (data,))

    def put_parts(self, key: str, parts: Sequence[bytes | bytearray | memoryview]) -> None:
        """``put`` of the concatenation of ``parts``, written without joining them."""
        path = self._path(key)
        folder, _, name = path.rpartition("/")
        tmp = f"{folder}/.{name}.{self._tmp_prefix}{next(self._tmp_counter):x}{TEMP_SUFFIX}"
        try:
            try:
                cached = self._write_file(tmp, parts)
            except FileNotFoundError:
                os.makedirs(folder, mode=0o700, exist_ok=True)
                cached = self._write_file(tmp, parts)
            os.replace(tmp, path)
            self._buffered += cached
        except OSError as exc:
            _remove_quietly(tmp)
            raise self._error(exc, "write", key) from exc
        if not self._use_syncfs:
            with self._dirty_lock:
                self._dirty.add(path)

    def _write_file(self, path: str, parts: Sequence[bytes | bytearray | memoryview]) -> int:
        """Write a new file; the bytes that went through the page cache."""
        if self._direct and len(parts) == 1 and _direct_ok(parts[0]):
            cached = self._write_direct(path, memoryview(parts[0]))
            if cached is not None:
                return cached
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            _write_all(fd, parts)
        finally:
            os.close(fd)
        return sum(len(p) for p in parts)

    def _write_direct(self, path: str, data: memoryview) -> int | None:
        """Write ``data`` to a new file at ``path``, its whole blocks with ``O_DIRECT``; the
        bytes written through the page cache, or None (nothing created) if the filesystem
        refuses ``O_DIRECT``."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | DIRECT_FLAG,
                         0o600)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            self._direct = False
            log.info("%s: the filesystem refuses O_DIRECT; writing through the page cache",
                     self.url)
            return None
        try:
            head = len(data) - len(data) % DIRECT_ALIGN
            done = 0
            try:
                while done < head:
                    done += os.write(fd, data[done:head])
            except OSError as exc:
                if exc.errno != errno.EINVAL:  # EINVAL: larger blocks than DIRECT_ALIGN
                    raise
                self._direct = False
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~DIRECT_FLAG)
            os.lseek(fd, done, os.SEEK_SET)
            _write_all(fd, (data[done:],))
        finally:
            os.close(fd)
        return len(data) - done

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        path = self._path(key)
        try:
            with open(path, "rb", buffering=0) as f:
                if offset:
                    f.seek(offset)
                return f.readall() if length is None else _read_exactly(f, length)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(f"{self.url}: no object {key}") from None
        except OSError as exc:
            raise self._error(exc, "read", key) from exc

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            st = os.stat(self._path(key))
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise self._error(exc, "stat", key) from exc
        return ObjectInfo(key, st.st_size, st.st_mtime) if _is_file(st.st_mode) else None

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        folder = prefix.rpartition("/")[0]
        start = self.root.joinpath(*folder.split("/")) if folder else self.root
        try:
            for info in self._walk(start, folder):
                if info.key.startswith(prefix):
                    yield info
        except OSError as exc:
            raise self._error(exc, "list", prefix or "/") from exc

    def _walk(self, folder: Path, key_prefix: str) -> Iterator[ObjectInfo]:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue  # temporary files of puts in progress or interrupted
            key = f"{key_prefix}/{entry.name}" if key_prefix else entry.name
            if entry.is_dir(follow_symlinks=False):
                yield from self._walk(Path(entry.path), key)
            elif entry.is_file(follow_symlinks=False):
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # deleted while listing
                yield ObjectInfo(key, st.st_size, st.st_mtime)

    def delete(self, key: str) -> None:
        try:
            os.unlink(self._path(key))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise self._error(exc, "delete", key) from exc
        with self._dirty_lock:
            self._dirty.discard(self._path(key))

    def flush(self) -> None:
        """syncfs even when this process put nothing: a chunk this backup found already
        present may have been put by a process that crashed before its own flush."""
        if not self.root.exists():
            return
        try:
            if self._use_syncfs:
                self._syncfs()
            else:
                self._fsync_dirty()
        except OSError as exc:
            raise self._error(exc, "flush", "objects") from exc

    def writeback(self) -> None:
        """A head start for the next :meth:`flush`, called while a backup still writes: with
        ``syncfs``, the data put so far is written back now (overlapping the disk with the
        work still to do) instead of all at once when the manifest waits for it. Not a
        substitute for ``flush``; errors are raised like ``flush``'s (a writeback error
        reported here may not be reported again). Nothing to do in fsync mode, nor when
        little went through the page cache since the last sync (packs written directly)."""
        if not self._use_syncfs or self._buffered < WRITEBACK_MIN or not self.root.exists():
            return
        try:
            self._syncfs()
        except OSError as exc:
            raise self._error(exc, "flush", "objects") from exc

    # ---- durability and housekeeping -----------------------------------------------------

    def _syncfs(self) -> None:
        self._buffered = 0
        fd = os.open(self.root, os.O_RDONLY | os.O_CLOEXEC)
        try:
            if _SYNCFS(fd) != 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err), str(self.root))
        finally:
            os.close(fd)

    def _fsync_dirty(self) -> None:
        with self._dirty_lock:
            dirty, self._dirty = self._dirty, set()
        folders = self._folders_to_sync(dirty)
        try:
            for path in sorted(dirty) + sorted(folders):
                _fsync_path(path)
        except OSError:
            with self._dirty_lock:
                self._dirty |= dirty  # retry them on the next flush
            raise

    def _folders_to_sync(self, paths: set[str]) -> set[str]:
        """Each file's directory and its ancestors up to the root (new directories)."""
        root, folders = str(self.root), set()
        for path in paths:
            folder = os.path.dirname(path)
            while folder not in folders and folder.startswith(root):
                folders.add(folder)
                folder = os.path.dirname(folder)
        return folders

    def remove_stale_temp(self, older_than: float = 24 * 3600) -> int:
        """Delete temporary files left by interrupted puts; returns how many."""
        cutoff, removed = time.time() - older_than, 0
        for folder, _dirs, files in os.walk(self.root):
            for name in files:
                path = os.path.join(folder, name)
                if name.startswith(".") and name.endswith(TEMP_SUFFIX) \
                        and os.lstat(path).st_mtime < cutoff:
                    _remove_quietly(Path(path))
                    removed += 1
        if removed:
            log.info("removed %d stale temporary files under %s", removed, self.url)
        return removed


def _write_all(fd: int, parts: Sequence[bytes | bytearray | memoryview]) -> None:
    written = os.writev(fd, parts)
    if written < sum(len(p) for p in parts):  # short write: finish piece by piece
        view = memoryview(b"".join(parts))[written:]
        while view:
            view = view[os.write(fd, view):]


def _direct_ok(part: bytes | bytearray | memoryview) -> bool:
    """Whether ``part`` is large and starts on a block boundary in memory (anonymous
    ``mmap`` memory does; ``bytes`` and ``bytearray`` usually do not)."""
    if len(part) < DIRECT_MIN:
        return False
    try:
        address = ctypes.addressof(ctypes.c_char.from_buffer(part))
    except (TypeError, ValueError):  # read-only, or not contiguous
        return False
    return address % DIRECT_ALIGN == 0


def _read_exactly(f, length: int) -> bytes:
    """Up to ``length`` bytes (fewer only at the end of the file)."""
    parts, left = [], length
    while left > 0:
        piece = f.read(left)
        if not piece:
            break
        parts.append(piece)
        left -= len(piece)
    return b"".join(parts)


def _fsync_path(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return  # deleted since
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_quietly(path: str | Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _is_file(mode: int) -> bool:
    return stat_module.S_ISREG(mode)
