"""vzdump archives as vzdump writes them (shared/reference/pve.md sections 4.3, 4.4, 4.7),
for import tests: container tars with ./etc/vzdump/pct.conf (vps.conf for OpenVZ) first,
VMA streams with their config blobs, every compression, and the sidecars."""

from __future__ import annotations

import bz2
import gzip
import io
import random
import subprocess
import tarfile
from pathlib import Path

from vzbackup.archives.vma import vma_header


def ct_tar(conf_name: str, conf: str, files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name: str, data: bytes | None, mode: int = 0o644) -> None:
            info = tarfile.TarInfo(name)
            info.mtime, info.mode = 1700000000, mode
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        add(f"./etc/vzdump/{conf_name}", conf.encode())
        add(".", None, 0o755)
        for name in sorted({str(Path(n).parent) for n in files} - {"."}):
            add(f"./{name}", None, 0o755)
        for name, data in files.items():
            add(f"./{name}", data)
    return buf.getvalue()


def rootfs(seed: int, n: int = 40) -> dict[str, bytes]:
    rng = random.Random(seed)
    out = {"etc/hostname": b"web\n"}
    out.update({f"srv/www/f{i:03d}.bin": rng.randbytes(4000) for i in range(n)})
    return out


def lxc_tar(hostname: str, seed: int = 1) -> bytes:
    conf = f"arch: amd64\nhostname: {hostname}\nmemory: 512\nostype: debian\nrootfs: local-lvm:vm-101-disk-0,size=8G\n"
    return ct_tar("pct.conf", conf, rootfs(seed))


def openvz_tar(hostname: str, seed: int = 3) -> bytes:
    conf = f'ONBOOT="yes"\nHOSTNAME="{hostname}"\nVE_PRIVATE="/var/lib/vz/private/$VEID"\n'
    return ct_tar("vps.conf", conf, rootfs(seed))


def vma(name: str, seed: int = 2) -> bytes:
    conf = f"memory: 2048\nname: {name}\nscsi0: local-lvm:vm-200-disk-0,size=32G\n".encode()
    head = vma_header({"qemu-server.conf": conf}, ctime=1700000000)
    return head + random.Random(seed).randbytes(200_000)


def compress(data: bytes, ext: str) -> bytes:
    if ext in (".gz", ".tgz"):
        return gzip.compress(data)
    if ext == ".bz2":
        return bz2.compress(data)
    if ext in (".zst", ".lzo"):
        tool = ["zstd", "-q", "-c"] if ext == ".zst" else ["lzop", "-c"]
        return subprocess.run(tool, input=data, capture_output=True, check=True).stdout
    return data


def write(folder: Path, name: str, data: bytes, *, notes: str | None = None,
          protected: bool = False, log: str | None = None) -> Path:
    """``folder/name`` holding ``data`` compressed as its extension says, and sidecars."""
    folder.mkdir(parents=True, exist_ok=True)
    ext = "." + name.rsplit(".", 1)[1]
    path = folder / name
    path.write_bytes(compress(data, ext if ext in (".gz", ".tgz", ".bz2", ".zst", ".lzo") else ""))
    if notes is not None:
        (folder / (name + ".notes")).write_text(notes)
    if protected:
        (folder / (name + ".protected")).write_bytes(b"")
    if log is not None:
        (folder / (name.split(".", 1)[0] + ".log")).write_text(log)
    return path
