"""Generate guests of realistic shape, and change them the way a night does.

A container root holds thousands of files: configs and logs (text), binaries and media
(incompressible), a database-like file, symlinks (absolute and relative), hardlinks, odd
modes and, as root, other owners. A VM is a sparse raw image with scattered data.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november "
         "oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu error warn "
         "info debug GET POST /api/v1/items 200 404 500 user session request latency ms").split()


def write_guest_config(folder: Path, lines: dict[str, str]) -> None:
    (folder / "guest.conf").write_text("".join(f"{k}: {v}\n" for k, v in lines.items()))


def make_container(node_root: Path, vmid: int, hostname: str, *, files: int, mib: int, seed: int) -> Path:
    """A ct<vmid>/ with about ``files`` files totalling about ``mib`` MiB."""
    rng = random.Random(seed)
    guest = node_root / f"ct{vmid}"
    root = guest / "rootfs"
    for d in ("etc/app", "usr/bin", "usr/lib/app", "var/log/app", "var/lib/db", "home/demo",
              "srv/www/static", "tmp"):
        (root / d).mkdir(parents=True, exist_ok=True)
    write_guest_config(guest, {"hostname": hostname, "arch": "amd64", "cores": "2",
                               "memory": "1024", "ostype": "debian", "rootfs": "local:subvol"})
    budget = mib * 1024 * 1024
    n_binary = max(4, files // 50)
    per_binary = budget // 2 // n_binary
    for i in range(n_binary):  # incompressible: binaries, media
        _write(root / f"usr/lib/app/blob{i:04d}.so", rng.randbytes(per_binary), 0o755)
    n_text = files - n_binary
    per_text = max(200, budget // 2 // max(1, n_text))
    for i in range(n_text):  # compressible: configs, sources, pages
        folder = ("etc/app", "srv/www/static", "home/demo", "usr/lib/app")[i % 4]
        _write(root / folder / f"f{i:05d}.txt", _text(rng, per_text), 0o644)
    _write(root / "var/log/app/access.log", _text(rng, budget // 20), 0o640)
    _write(root / "var/lib/db/data.db", _pages(rng, 2 * 1024 * 1024), 0o600)
    _write(root / "usr/bin/app", rng.randbytes(300_000), 0o755)
    (root / "usr/bin/app-hardlink").unlink(missing_ok=True)
    os.link(root / "usr/bin/app", root / "usr/bin/app-hardlink")
    _symlink("/usr/bin/app", root / "usr/bin/app-current")  # absolute, as in real rootfs
    _symlink("../lib/app", root / "usr/bin/lib")
    os.chmod(root / "tmp", 0o1777)
    os.chmod(root / "usr/bin/app", 0o4755)
    os.chmod(root / "var/lib/db", 0o700)
    if os.geteuid() == 0:
        os.chown(root / "home/demo", 1000, 1000)
        os.chown(root / "var/lib/db/data.db", 105, 108)
    return guest


def make_vm(node_root: Path, vmid: int, name: str, *, size_mib: int, data_mib: int, seed: int) -> Path:
    """A vm<vmid>/ with a sparse raw image: ``data_mib`` of data scattered over ``size_mib``."""
    rng = random.Random(seed)
    guest = node_root / f"vm{vmid}"
    guest.mkdir(parents=True, exist_ok=True)
    write_guest_config(guest, {"name": name, "cores": "2", "memory": "2048", "scsi0": "disk-0.raw"})
    image = guest / "disk-0.raw"
    with open(image, "wb") as f:
        f.truncate(size_mib * 1024 * 1024)
        for _ in range(data_mib):
            f.seek(rng.randrange(size_mib) * 1024 * 1024)
            block = rng.randbytes(512 * 1024) + _text(rng, 512 * 1024)
            f.write(block)
    return guest


def change_container(guest: Path, fraction: float, seed: int) -> int:
    """A night's change: ``fraction`` of the files modified in place (text with text,
    binaries with random bytes), the log appended, a few files added and removed.
    Returns the bytes written."""
    rng = random.Random(seed)
    root = guest / "rootfs"
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    written = 0
    for p in rng.sample(files, max(1, int(len(files) * fraction))):
        size = p.stat().st_size
        span = max(1, min(size, rng.choice((512, 4096, 16384))))
        data = _text(rng, span) if p.suffix == ".txt" else rng.randbytes(span)
        with open(p, "r+b") as f:
            f.seek(rng.randrange(max(1, size - span + 1)))
            f.write(data)
        written += span
    log = root / "var/log/app/access.log"
    extra = _text(rng, max(64 * 1024, log.stat().st_size // 50))
    with open(log, "ab") as f:
        f.write(extra)
    for i in range(max(5, len(files) // 200)):
        data = _text(rng, rng.randint(500, 20000))
        _write(root / "srv/www/static" / f"new-{seed}-{i}.txt", data, 0o644)
        written += len(data)
    for p in rng.sample(files, max(1, len(files) // 500)):
        if p.exists() and p.suffix == ".txt":
            p.unlink()
    return written + len(extra)


def change_vm(guest: Path, fraction: float, seed: int) -> int:
    """Rewrite scattered 4-256 KiB extents covering ``fraction`` of the allocated data."""
    rng = random.Random(seed)
    image = guest / "disk-0.raw"
    target = int(image.stat().st_blocks * 512 * fraction)
    size = image.stat().st_size
    written = 0
    with open(image, "r+b") as f:
        while written < target:
            n = rng.choice((4, 16, 64, 256)) * 1024
            f.seek(rng.randrange(size - n) & ~4095)
            f.write(rng.randbytes(n))
            written += n
    return written


def _write(path: Path, data: bytes, mode: int) -> None:
    path.write_bytes(data)
    os.chmod(path, mode)


def _symlink(target: str, link: Path) -> None:
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(target, link)


_CORPUS: list[bytes] = []


def _text(rng: random.Random, size: int) -> bytes:
    """Log-like text: short slices of a 4 MiB corpus of generated lines, fast to make in bulk."""
    if not _CORPUS:
        crng = random.Random(0)
        lines = (" ".join(crng.choices(WORDS, k=crng.randint(4, 14))) + f" {crng.randint(0, 10**9)}\n"
                 for _ in range(80_000))
        _CORPUS.append("".join(lines).encode())
    corpus = _CORPUS[0]
    out, n = [], 0
    while n < size:
        take = min(size - n, rng.randint(512, 8192))  # short: chunks span slices, stay unique
        start = rng.randrange(len(corpus) - take)
        out.append(corpus[start:start + take])
        n += take
    return b"".join(out)


def _pages(rng: random.Random, size: int) -> bytes:
    page = 4096
    return b"".join(rng.randbytes(page // 4) + bytes(page - page // 4) for _ in range(size // page))
