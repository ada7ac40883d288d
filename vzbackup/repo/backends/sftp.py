"""A repository on a peer node's disk over SFTP (``sftp://user@host:port/abs/path``).

``put`` writes a temporary dot-file beside the key and renames it over the key with the
posix-rename extension, so readers see the old object or the whole new one. ``flush`` runs
``sync -f`` on the node, which makes everything written so far durable.
"""

from __future__ import annotations

import errno
import logging
import posixpath
import secrets
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import paramiko

from ...errors import NodeUnreachable, NoSpace, ObjectNotFound, RepositoryError
from ...nodes.ssh import SshSession, SshTarget
from ...ports import ObjectInfo
from .capabilities import ATOMIC_PUT, DURABLE_FLUSH, RANGED_GET
from .objectkeys import check_key

log = logging.getLogger(__name__)

TEMP_SUFFIX = ".tmp"


class SftpBackend:
    """``ports.Backend`` over SFTP. One SFTP channel per thread on one SSH connection."""

    capabilities = frozenset({RANGED_GET, ATOMIC_PUT, DURABLE_FLUSH})

    def __init__(self, session: SshSession, root: str):
        self.session = session
        self.root = root.rstrip("/") or "/"
        self.url = f"sftp://{session.target.where}{self.root}"
        self._local = threading.local()
        self._dirs: set[str] = set()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> "SftpBackend":
        parts = urlsplit(url)
        if not parts.hostname or not parts.path.startswith("/"):
            raise RepositoryError(f"{url}: expected sftp://USER@HOST[:PORT]/ABSOLUTE/PATH")
        node = options.pop("node", parts.hostname)
        key_file = options.pop("key_file", None)
        known_hosts = options.pop("known_hosts", None)
        target = SshTarget(parts.hostname, parts.port or 22, unquote(parts.username or "root"),
                           key_file=Path(key_file) if key_file else None,
                           known_hosts=Path(known_hosts) if known_hosts else None, **options)
        return cls(SshSession(target, node), unquote(parts.path))

    def __repr__(self) -> str:
        return f"SftpBackend({self.url!r})"

    # ---- Backend -----------------------------------------------------------------------

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        folder, name = posixpath.split(path)
        tmp = f"{folder}/.{name}.{secrets.token_hex(6)}{TEMP_SUFFIX}"
        with self._errors("write", key):
            self._makedirs(folder)
            sftp = self._sftp()
            try:
                with sftp.open(tmp, "wb") as f:
                    f.set_pipelined(True)
                    f.write(data)
                sftp.posix_rename(tmp, path)
            except BaseException:
                self._remove_quietly(tmp)
                raise

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        with self._errors("read", key):
            with self._sftp().open(self._path(key), "rb") as f:
                size = f.stat().st_size or 0
                end = size if length is None else min(size, offset + length)
                if end <= offset:
                    return b""
                f.seek(offset)
                f.prefetch(end - offset)  # without it paramiko reads at a few MB/s
                return f.read(end - offset)

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            with self._errors("stat", key):
                attrs = self._sftp().stat(self._path(key))
        except ObjectNotFound:
            return None
        if not stat.S_ISREG(attrs.st_mode or 0):
            return None
        return ObjectInfo(key, attrs.st_size or 0, float(attrs.st_mtime or 0))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        start = prefix.rpartition("/")[0]
        with self._errors("list", prefix or "/"):
            for info in self._walk(start):
                if info.key.startswith(prefix):
                    yield info

    def delete(self, key: str) -> None:
        try:
            with self._errors("delete", key):
                self._sftp().remove(self._path(key))
        except ObjectNotFound:
            pass

    def flush(self) -> None:
        result = self.session.run(["sync", "-f", self.root], timeout=600)
        if result.code != 0:
            raise RepositoryError(f"{self.url}: 'sync -f' failed on the node (exit {result.code}): "
                                  f"{result.stderr.decode(errors='replace').strip()[:300]}")

    # ---- helpers -----------------------------------------------------------------------

    def _path(self, key: str) -> str:
        return f"{self.root}/{check_key(self.url, key)}"

    def _sftp(self) -> paramiko.SFTPClient:
        sftp = getattr(self._local, "sftp", None)
        if sftp is None or sftp.sock.closed:
            sftp = self._local.sftp = self.session.sftp()
        return sftp

    def _walk(self, rel: str) -> Iterator[ObjectInfo]:
        folder = f"{self.root}/{rel}" if rel else self.root
        try:
            entries = self._sftp().listdir_attr(folder)
        except FileNotFoundError:
            return
        for e in sorted(entries, key=lambda a: a.filename):
            if e.filename.startswith("."):
                continue  # temporary objects of interrupted puts
            key = f"{rel}/{e.filename}" if rel else e.filename
            if stat.S_ISDIR(e.st_mode or 0):
                yield from self._walk(key)
            elif stat.S_ISREG(e.st_mode or 0):
                yield ObjectInfo(key, e.st_size or 0, float(e.st_mtime or 0))

    def _makedirs(self, folder: str) -> None:
        if folder in self._dirs:
            return
        sftp = self._sftp()
        missing = []
        probe = folder
        while probe not in ("", "/") and probe not in self._dirs:
            try:
                sftp.stat(probe)
                break
            except FileNotFoundError:
                missing.append(probe)
                probe = posixpath.dirname(probe)
        for path in reversed(missing):
            try:
                sftp.mkdir(path, 0o700)
            except OSError:
                if not stat.S_ISDIR(sftp.stat(path).st_mode or 0):
                    raise
        self._dirs.add(folder)

    def _remove_quietly(self, path: str) -> None:
        try:
            self._sftp().remove(path)
        except (OSError, paramiko.SSHException):
            pass

    def _errors(self, action: str, key: str) -> "_ErrorMap":
        return _ErrorMap(self, action, key)


class _ErrorMap:
    def __init__(self, backend: SftpBackend, action: str, key: str):
        self.backend, self.action, self.key = backend, action, key

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> bool:  # noqa: ANN001
        if exc is None or isinstance(exc, (RepositoryError, NodeUnreachable)):
            return False
        where = f"{self.backend.url}: cannot {self.action} {self.key}"
        if isinstance(exc, FileNotFoundError) or getattr(exc, "errno", None) == errno.ENOENT:
            raise ObjectNotFound(f"{self.backend.url}: no object {self.key}") from None
        if isinstance(exc, OSError) and "no space" in str(exc).lower():
            raise NoSpace(f"{where}: no space left on the node") from None
        if isinstance(exc, (OSError, paramiko.SSHException, EOFError)):
            self.backend._local.sftp = None
            raise RepositoryError(f"{where}: {exc or type(exc).__name__}") from None
        return False
