"""Writing vzdump archives for ``vzbackup export`` (``ports.Archives.write``).

The file is written as vzdump writes it: ``<name minus its last extension>.dat`` while in
progress, renamed to its final name only once the whole point was read and verified, then
the ``.notes``/``.protected``/``.log`` sidecars. Compression goes through the compressors
vzdump uses (``gzip --rsyncable``, ``lzop``, ``zstd``), so PVE reads the result by its
extension. A failure removes the ``.dat``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path
from typing import BinaryIO

from ..domain.vzdump import parse_archive_name
from ..errors import BadArchive, EnvironmentBroken

COMPRESSORS = {"gzip": ["gzip", "--rsyncable", "-c"], "lzo": ["lzop", "-c"],
               "zstd": ["zstd", "-q", "-c", "--threads=1"]}
BUF = 1 << 20


def write_archive(stream: BinaryIO, directory: Path, name: str, *, prefix: bytes = b"",
                  sidecars: dict[str, bytes] | None = None) -> Path:
    """Write ``prefix`` then ``stream`` (read to EOF, which verifies it) as ``name``."""
    parsed = parse_archive_name(name)
    directory.mkdir(parents=True, exist_ok=True)
    final, partial = directory / name, directory / parsed.partial_name
    if final.exists():
        raise BadArchive(f"{final} already exists", hint="Export into another folder, or move it.")
    try:
        with open(partial, "wb") as out:
            if parsed.compression is None:
                _copy(stream, out, prefix)
            else:
                _compressed(stream, out, prefix, parsed.compression, final)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, final)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    for suffix, data in (sidecars or {}).items():
        path = directory / suffix
        path.write_bytes(data)
        os.chmod(path, 0o644)
    return final


def _copy(stream: BinaryIO, out: BinaryIO, prefix: bytes) -> None:
    out.write(prefix)
    shutil.copyfileobj(stream, out, BUF)


def _compressed(stream: BinaryIO, out: BinaryIO, prefix: bytes, compression: str, final: Path) -> None:
    try:
        proc = subprocess.Popen(COMPRESSORS[compression], stdin=subprocess.PIPE, stdout=out,
                                stderr=subprocess.PIPE)
    except FileNotFoundError:
        raise EnvironmentBroken(f"{COMPRESSORS[compression][0]} is needed for {final.name}",
                                hint=f"Install {COMPRESSORS[compression][0]}, or choose another "
                                     "--compress.") from None
    assert proc.stdin is not None and proc.stderr is not None
    try:
        _copy(stream, proc.stdin, prefix)  # type: ignore[arg-type]
        proc.stdin.close()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    code = proc.wait()
    if code != 0:
        said = proc.stderr.read().decode("utf-8", "replace").strip()
        raise BadArchive(f"{final}: {COMPRESSORS[compression][0]} failed (exit {code}): {said}")


def config_member(path: str, text: str) -> bytes:
    """A tar member ``path`` holding ``text``, without an end-of-archive marker: put before
    a tar stream, it makes one archive whose first member is the config."""
    data = text.encode("utf-8")
    info = tarfile.TarInfo(path)
    info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
    info.uid = info.gid = 0
    header = info.tobuf(format=tarfile.GNU_FORMAT)
    padding = (-len(data)) % tarfile.BLOCKSIZE
    return header + data + bytes(padding)

