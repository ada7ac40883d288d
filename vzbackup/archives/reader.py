"""Reading vzdump archives for ``vzbackup import`` (``ports.Archives``).

An archive is decompressed while it is read (gzip, bzip2 and zstd in-process; lzo through
``lzop -dc``), so the repository stores the plain tar or VMA stream and deduplicates it
against every other point. The first MiB is read ahead for the guest's config (the tar's
first member ``./etc/vzdump/pct.conf`` or ``vps.conf``; the VMA header's
``qemu-server.conf``). While the stream is stored, a second thread reads the same bytes as
tar and refuses the archive (``UnsafeArchive``) if any member would land outside the guest:
an absolute name, a ``..`` component, a hardlink to such a name. A damaged archive raises
``BadArchive``. Both are raised when the stream ends, before anything is committed.
"""

from __future__ import annotations

import bz2
import gzip
import io
import os
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import zstandard

from ..domain.points import ARCHIVE, LOG, NOTES, PROTECTED
from ..domain.vzconf import parse_vzconf
from ..domain.vzdump import (SIDECARS, ArchiveName, NotAnArchiveName, parse_archive_name,
                             parse_key_values)
from ..errors import BadArchive, EnvironmentBroken, UnsafeArchive
from ..ports import ImportedArchive
from .vma import NotVma, vma_configs
from .writer import config_member, write_archive

HEAD = 1 << 20
CONFIG_MEMBER = {"lxc": "etc/vzdump/pct.conf", "openvz": "etc/vzdump/vps.conf"}
MAX_SIDECAR = 1 << 20
MAX_LOG = 64 << 10  # a guest's vzdump log is a few KiB; a longer one is cut


class VzdumpArchives:
    """``ports.Archives`` for vzdump files on this host."""

    write = staticmethod(write_archive)
    config_member = staticmethod(config_member)

    def find(self, paths: list[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
        """Archives named in ``paths`` or lying in the folders named; and the files that
        look like vzdump's but cannot be imported, with why."""
        found, problems = [], []
        for path in paths:
            if path.is_dir():
                for entry in sorted(path.iterdir()):
                    if entry.name.startswith("vzdump-") and entry.is_file() and not entry.name.endswith(SIDECARS):
                        self._sort(entry, found, problems)
            elif path.is_file():
                self._sort(path, found, problems)
            else:
                problems.append((path, "no such file or folder"))
        return found, problems

    @staticmethod
    def _sort(path: Path, found: list[Path], problems: list[tuple[Path, str]]) -> None:
        if path.name.endswith(".dat"):
            problems.append((path, "an unfinished vzdump archive (.dat): vzdump was killed "
                                   "while writing it"))
            return
        try:
            parse_archive_name(path.name)
            found.append(path)
        except NotAnArchiveName as e:
            problems.append((path, str(e)))

    @contextmanager
    def open(self, path: Path) -> Iterator[ImportedArchive]:
        try:
            name = parse_archive_name(path.name)
        except NotAnArchiveName as e:
            raise BadArchive(f"{path}: {e}", hint="Rename it as vzdump would have named it, "
                                                   "then import it again.") from None
        with _decompressed(path, name) as raw:
            head = _read_up_to(raw, HEAD)
            config, guest_name = _config(path, name, head)
            stream = _Checked(head, raw, path) if name.format == "tar" else _Joined(head, raw)
            archive = ImportedArchive(
                name=name.name, guest=name.guest, guest_name=guest_name,
                platform="openvz" if name.type == "openvz" else "proxmox",
                created=name.when.astimezone(), config=config,
                labels=_labels(path, name), stream=stream)
            log_text = _sidecar(path.with_name(name.log_name), MAX_LOG)
            if log_text is not None:
                archive.labels[LOG] = log_text
                if "ERROR: Backup of VM" in log_text:
                    archive.warnings.append(f"{name.log_name} says the backup failed (a hook "
                                            "script failing after the archive was written?)")
            try:
                yield archive
                if isinstance(stream, _Checked):
                    stream.finish()
            finally:
                stream.close()  # the checker thread sees EOF and ends


def _labels(path: Path, name: ArchiveName) -> dict[str, str]:
    labels = {ARCHIVE: name.name}
    notes = _sidecar(path.with_name(name.notes_name))
    if notes is not None:
        labels[NOTES] = notes
    if path.with_name(name.protected_name).exists():
        labels[PROTECTED] = "1"
    return labels


def _sidecar(path: Path, limit: int = MAX_SIDECAR) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read(limit).decode("utf-8", "replace")
    except FileNotFoundError:
        return None
    except OSError as e:
        raise BadArchive(f"{path}: cannot be read: {e}") from None


def _config(path: Path, name: ArchiveName, head: bytes) -> tuple[dict[str, str], str]:
    fallback = str(name.guest)
    if name.format == "vma":
        try:
            text = vma_configs(head).get("qemu-server.conf", b"").decode("utf-8", "replace")
        except NotVma as e:
            raise BadArchive(f"{path}: not a VMA archive ({e}): qmrestore would refuse it") from None
        config = parse_key_values(text)
        return config, config.get("name") or fallback
    if name.type == "qemu":
        raise BadArchive(f"{path}: a tar VM backup from before PVE 2.3: only VMA archives of "
                         "VMs can be imported", hint="Restore it with qmrestore on a PVE node, "
                                                     "back it up again, then import that.")
    member = CONFIG_MEMBER[name.type]
    try:
        with tarfile.open(fileobj=io.BytesIO(head), mode="r|") as tar:
            first = tar.next()
            data = tar.extractfile(first).read() if first and first.isfile() else None  # type: ignore[union-attr]
    except (tarfile.TarError, EOFError, OSError):
        raise BadArchive(f"{path}: not a tar archive, or damaged at its start") from None
    if first is None or first.name.lstrip("./") != member.lstrip("./") or data is None:
        raise BadArchive(f"{path}: its first member is {first.name if first else 'missing'!r}, "
                         f"not ./{member}: not a vzdump {name.type} archive")
    text = data.decode("utf-8", "replace")
    if name.type == "openvz":
        config = dict(parse_vzconf(text))
        return config, config.get("HOSTNAME") or fallback
    config = parse_key_values(text)
    return config, config.get("hostname") or fallback


def _read_up_to(raw: BinaryIO, n: int) -> bytes:
    parts, got = [], 0
    while got < n:
        chunk = raw.read(n - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


@contextmanager
def _decompressed(path: Path, name: ArchiveName) -> Iterator[BinaryIO]:
    try:
        if name.compression == "lzo":
            with _lzop(path) as f:
                yield f
            return
        with open(path, "rb") as f:
            if name.compression is None:
                yield f  # type: ignore[misc]
            elif name.compression == "gzip":
                yield gzip.GzipFile(fileobj=f)  # type: ignore[misc]
            elif name.compression == "bzip2":
                yield bz2.BZ2File(f)  # type: ignore[misc]
            else:
                yield zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True)  # type: ignore[misc]
    except (OSError, EOFError, zstandard.ZstdError, gzip.BadGzipFile) as e:
        raise BadArchive(f"{path}: cannot be decompressed ({name.compression or 'none'}): {e}") from None


@contextmanager
def _lzop(path: Path) -> Iterator[BinaryIO]:
    try:
        proc = subprocess.Popen(["lzop", "-dc", "--", str(path)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise EnvironmentBroken(f"{path}: lzop is needed to read .lzo archives",
                                hint="Install lzop (apt-get install lzop).") from None
    assert proc.stdout is not None and proc.stderr is not None
    try:
        yield proc.stdout  # type: ignore[misc]
    finally:
        proc.stdout.close()
        code = proc.wait()
        said = proc.stderr.read().decode("utf-8", "replace").strip()
    if code != 0:
        raise OSError(f"lzop exit {code}: {said}")


class _Joined(io.RawIOBase):
    """``head`` then the rest of ``raw``."""

    def __init__(self, head: bytes, raw: BinaryIO):
        self._head, self._raw = memoryview(head), raw

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:  # noqa: ANN001
        if self._head:
            n = min(len(buf), len(self._head))
            buf[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._raw.read(len(buf))
        buf[:len(data)] = data
        return len(data)


class _Checked(_Joined):
    """``_Joined``, with every byte also read as tar by a checker thread (through a pipe)."""

    def __init__(self, head: bytes, raw: BinaryIO, path: Path):
        super().__init__(head, raw)
        self.path = path
        r, w = os.pipe()
        self._pipe = os.fdopen(w, "wb")
        self._problem: Exception | None = None
        self._thread = threading.Thread(target=self._check, args=(os.fdopen(r, "rb"),),
                                        daemon=True, name="vzbackup-tarcheck")
        self._thread.start()

    def readinto(self, buf) -> int:  # noqa: ANN001
        n = super().readinto(buf)
        if n:
            try:
                self._pipe.write(bytes(buf[:n]))
            except BrokenPipeError:
                pass
        return n

    def finish(self) -> None:
        """Raise what the checker found, once the whole stream went through."""
        self._pipe.close()
        self._thread.join()
        if self._problem is not None:
            raise self._problem

    def close(self) -> None:
        if not self._pipe.closed:
            self._pipe.close()
        super().close()

    def _check(self, pipe: BinaryIO) -> None:
        try:
            with tarfile.open(fileobj=pipe, mode="r|") as tar:
                for member in tar:
                    self._check_member(member)
        except UnsafeArchive as e:
            self._problem = e
        except (tarfile.TarError, EOFError, OSError) as e:
            self._problem = BadArchive(f"{self.path}: damaged tar stream: {e}")
        finally:
            while pipe.read(1 << 20):  # drain: the writer must never block on us
                pass
            pipe.close()

    def _check_member(self, member: tarfile.TarInfo) -> None:
        for what, name in (("member", member.name), ("hardlink target", member.linkname)):
            if what == "hardlink target" and not member.islnk():
                continue
            parts = [p for p in name.split("/") if p not in ("", ".")]
            if name.startswith("/") or ".." in parts or "\0" in name:
                raise UnsafeArchive(f"{self.path}: {what} {name!r} would land outside the "
                                    "guest: the archive is refused, nothing was stored")

