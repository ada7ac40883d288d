"""Dump and restore speed of the directory platform against plain GNU tar on the same tree.

    PYTHONPATH=. .venv/bin/python bench/directory_platform.py NODE_ROOT VMID [WORK_DIR]

NODE_ROOT/ct<VMID>/rootfs is the tree. Prints MB/s (apparent bytes of the tree's files /
seconds) for: ``tar -cf - | cat``, the platform's dump read to EOF, ``tar -x`` of the
stream, and the platform's restore of the stream. Run it twice; the first warms the cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from vzbackup.domain.guests import GuestRef
from vzbackup.platforms.directory import DirectoryPlatform
from vzbackup.snapshots.none import NoSnapshot

BUF = 1 << 20


def tree_bytes(root: Path) -> int:
    total = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            st = os.lstat(os.path.join(folder, name))
            total += st.st_size
    return total


def timed(label: str, size: int, fn) -> float:
    start = time.perf_counter()
    fn()
    took = time.perf_counter() - start
    print(f"{label:<42} {took:6.2f} s {size / took / 1e6:8.0f} MB/s")
    return took


def main() -> None:
    root, vmid = Path(sys.argv[1]), int(sys.argv[2])
    work = Path(sys.argv[3] if len(sys.argv) > 3 else root.parent / "bench-work")
    ref = GuestRef("ct", vmid)
    rootfs = root / str(ref) / "rootfs"
    size = tree_bytes(rootfs)
    stream_file = work / "stream.tar"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    print(f"tree: {size / 1e6:.0f} MB apparent in {rootfs}")

    timed("tar -cf - . | cat  (plain)", size, lambda: subprocess.run(
        f"tar -cf - -C {rootfs} . | cat > /dev/null", shell=True, check=True))
    timed("tar -cf - (platform's flags) | cat", size, lambda: subprocess.run(
        f"tar -cf - --format=posix --sparse --one-file-system --numeric-owner --xattrs "
        f"'--xattrs-include=*' --acls -C {rootfs} . | cat > /dev/null", shell=True, check=True))
    platform = DirectoryPlatform(root, "bench")

    def dump() -> None:
        with platform.dump(platform.find_guest(ref), NoSnapshot()) as d, \
                open(stream_file, "wb") as out:
            while chunk := d.stream.read(BUF):
                out.write(chunk)
    timed("platform dump (read to EOF, to a file)", size, dump)

    def consume() -> None:
        with platform.dump(platform.find_guest(ref), NoSnapshot()) as d:
            while d.stream.read(BUF):
                pass
    timed("platform dump (read to EOF, discarded)", size, consume)

    target = work / "tar-x"
    target.mkdir()
    subprocess.run(["sync"], check=True)
    timed("tar -x (same stream)", size, lambda: subprocess.run(
        ["tar", "-x", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-p",
         "-f", str(stream_file), "-C", str(target)], check=True))
    subprocess.run(["sync"], check=True)
    restore_root = work / "node"
    restore_root.mkdir()
    other = DirectoryPlatform(restore_root, "bench")

    def restore() -> None:
        with open(stream_file, "rb") as f:
            other.restore(ref, f, name="bench", config={"hostname": "bench"})
    timed("platform restore (same stream)", size, restore)


if __name__ == "__main__":
    main()
