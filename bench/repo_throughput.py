"""Repository write/read throughput against `zstd -T0` on the same data, same run.

    .venv/bin/python bench/repo_throughput.py [--mb 480] [--dir /var/tmp/vzbench]

Data: a file of equal thirds of random bytes, text (random words, unique) and zeros, in
16 MiB runs. Each repository run uses a fresh directory (no deletions during the run:
deleted inodes slow down file creation on ext4 without a journal, see perf.md trap 2).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from vzbackup.domain.guests import GuestRef
from vzbackup.ports import PointDraft
from vzbackup.repo.backends import open_backend
from vzbackup.repo.repository import init_chunk_repository, open_chunk_repository

RUN = 16 << 20


def make_data(path: Path, mb: int) -> int:
    rnd = random.Random(1)
    words = [b"w%d" % i for i in range(5000)]
    with open(path, "wb") as f:
        for _ in range(max(1, mb * (1 << 20) // (3 * RUN))):
            f.write(os.urandom(RUN))
            f.write(b" ".join(rnd.choices(words, k=RUN // 4))[:RUN])
            f.write(bytes(RUN))
    return path.stat().st_size


def zstd_cli(src: Path, level: int, size: int) -> str:
    if not shutil.which("zstd"):
        return "zstd not installed"
    start = time.perf_counter()
    with open(src, "rb") as f:
        subprocess.run(["zstd", f"-{level}", "-T0", "-q", "-c"], stdin=f, stdout=subprocess.DEVNULL,
                       check=True)
    return f"{size / (time.perf_counter() - start) / 1e6:.0f} MB/s"


def repo_run(src: Path, where: Path, encryption: str, level: int, size: int) -> str:
    backend = open_backend(where.as_uri())
    passphrase = "bench" if encryption != "none" else None
    init_chunk_repository(backend, encryption=encryption, passphrase=passphrase,
                          compression_level=level, kdf_cost=2**14)
    repo = open_chunk_repository("bench", backend, passphrase=passphrase,
                                 cache_dir=where.parent / "cache")
    draft = PointDraft(GuestRef("ct", 101), "bench", "directory", "n1", datetime.now(timezone.utc))
    rates = []
    for _ in ("full", "unchanged"):
        writer = repo.new_point(draft)
        start = time.perf_counter()
        with open(src, "rb", buffering=0) as f:
            writer.write(f)
        manifest = writer.commit()
        rates.append(size / (time.perf_counter() - start) / 1e6)
    start, n = time.perf_counter(), 0
    with repo.open_point(manifest.id) as reader:
        while piece := reader.read(1 << 20):
            n += len(piece)
    assert n == size
    read = size / (time.perf_counter() - start) / 1e6
    return f"write {rates[0]:.0f} MB/s, unchanged {rates[1]:.0f} MB/s, read {read:.0f} MB/s"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=480)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="vzbench-", dir=args.dir))
    try:
        src = base / "mixed.bin"
        size = make_data(src, args.mb)
        print(f"data: {size / 1e6:.0f} MB (random, text, zeros)")
        for round_ in range(2):
            for level in (3, 1):
                print(f"zstd -{level} -T0 (CLI):       {zstd_cli(src, level, size)}")
                for encryption in ("none", "aes-256-gcm"):
                    where = base / f"repo-{round_}-{level}-{encryption}"
                    print(f"repo zstd-{level} {encryption:11}: "
                          f"{repo_run(src, where, encryption, level, size)}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
