"""Backup and restore benchmark against baselines measured in the same run.

Generates guest-like data (a container tree with tens of thousands of files and a sparse
VM image; >= 1 GiB in all), then prints side by side:
  - full backup throughput   vs  tar -cf - DIR | zstd -1 -T0
  - bytes stored by night 2 after about 2% change, as a fraction of night 1
  - restore throughput       vs  zstd -d | tar -x  of the same data

Run: make bench  (or python -m bench.backup_bench --gib 1.5 --chunk-kib 64 --level 3)
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from demo.guestdata import change_container, change_vm, make_container, make_vm

TOP = Path(__file__).resolve().parent.parent


def sh(cmd: str, cwd: Path | None = None) -> float:
    """Run a shell pipeline (baselines only); return seconds."""
    started = time.perf_counter()
    subprocess.run(["bash", "-o", "pipefail", "-c", cmd], check=True, cwd=cwd)
    return time.perf_counter() - started


def cli_env() -> dict[str, str]:
    """The environment for vzbackup's own runs: modules compiled to bytecode once and reused,
    as after a pip install (PYTHONDONTWRITEBYTECODE would have every run compile its ~140
    modules again, ~0.15 s of start-up that no installed copy pays)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def children_cpu() -> float:
    """CPU seconds (user + system) used so far by finished child processes, theirs included:
    steadier than wall time on a shared machine, and a floor for it (CPU / cores)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def settle() -> None:
    """Flush dirty pages and let ext4 forget recent deletes (perf.md, trap 2)."""
    os.sync()
    time.sleep(1)


CLEANED = Path(tempfile.gettempdir()) / "vzbackup-bench-cleaned"  # last deletion (perf.md, trap 2)
RECENT_DELETES = 60.0  # seconds during which ext4 without a journal creates files slowly


def wait_after_deletes() -> None:
    """Time nothing while the inodes of a recent deletion (ours or a previous run's) slow
    down file creation (the repository creates a file per 16 MiB pack, the baseline one)."""
    try:
        left = RECENT_DELETES - (time.time() - float(CLEANED.read_text()))
    except (OSError, ValueError):
        return
    if left > 0:
        print(f"waiting {left:.0f} s for recent deletions to age (perf.md, trap 2) ...", flush=True)
        time.sleep(left)


def remove(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)
        os.sync()
        CLEANED.write_text(str(time.time()))


def tree_bytes(path: Path) -> int:
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def allocated(path: Path) -> int:
    return sum(p.lstat().st_blocks * 512 for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def bench_config(src: str, chunk_kib: int, level: int) -> str:
    """A config with node ``src`` (guests to back up), node ``dst`` and repository ``main``,
    all relative to the config file's folder unless ``src`` is absolute."""
    return f"""
[state]
dir = "state"
[backup]
repository = "main"
[nodes.src]
root = "{src}"
[nodes.dst]
root = "dst"
[repositories.main]
url = "file://repo"
chunk_avg_kib = {chunk_kib}
compression_level = {level}
"""


class Bench:
    def __init__(self, work: Path, chunk_kib: int, level: int):
        self.work = work
        self.config = work / "bench.toml"
        self.config.write_text(bench_config("src", chunk_kib, level))

    def vzbackup(self, *args: str, stderr: int | None = None) -> float:
        argv = [sys.executable, "-m", "vzbackup", "--quiet", "--config", str(self.config), *args]
        started = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=stderr, env=cli_env())
        return time.perf_counter() - started

    def repo_bytes(self) -> int:
        return allocated(self.work / "repo")

    def repo_objects(self) -> int:
        return sum(1 for p in (self.work / "repo").rglob("*") if p.is_file())


def generate(src: Path, gib: float) -> None:
    total_mib = int(gib * 1024)
    ct_mib = total_mib * 5 // 8
    make_container(src, 101, "app1", files=max(2000, ct_mib * 60), mib=ct_mib, seed=1)
    make_vm(src, 200, "vm1", size_mib=(total_mib - ct_mib) * 2, data_mib=total_mib - ct_mib, seed=2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gib", type=float, default=1.25, help="data to generate (default 1.25)")
    ap.add_argument("--chunk-kib", type=int, default=32, help="repository chunk_avg_kib (default: the config default)")
    ap.add_argument("--level", type=int, default=1, help="repository compression_level (default: 1, the baseline's zstd level)")
    ap.add_argument("--work", type=Path, default=TOP / ".bench-data")
    ap.add_argument("--keep", action="store_true", help="leave the work folder in place")
    args = ap.parse_args()
    work = args.work
    remove(work)
    (work / "dst").mkdir(parents=True)
    src = work / "src"
    src.mkdir()
    print(f"generating {args.gib} GiB of guest-like data in {work} ...", flush=True)
    generate(src, args.gib)
    data = sum(tree_bytes(src / g) for g in ("ct101", "vm200"))
    files = sum(1 for _ in (src / "ct101").rglob("*"))
    b = Bench(work, args.chunk_kib, args.level)
    b.vzbackup("repo", "init")
    # the catalogue, as on any host that ran vzbackup before: not part of a backup's time
    b.vzbackup("points", stderr=subprocess.DEVNULL)
    settle()
    wait_after_deletes()
    # untimed warm-up: the first pass over freshly generated files ran ~1.7x slower here
    # (whichever command came first paid it, which was the baseline)
    sh(f"tar -cf - -C {src} ct101 vm200 --sparse | cat > /dev/null")
    settle()

    # full backup vs tar | zstd -1 -T0 (written to a file, as the repository is)
    # (synced like the repository, which is durable before a backup reports success)
    cpu = children_cpu()
    base_full = sh(f"tar -cf - -C {src} ct101 vm200 --sparse | zstd -1 -T0 -q -o {work}/base.tar.zst"
                   f" && sync -f {work}/base.tar.zst")
    base_cpu = children_cpu() - cpu
    settle()
    cpu = children_cpu()
    ours_full = b.vzbackup("backup", "--all")
    ours_cpu = children_cpu() - cpu
    night1, objects1 = b.repo_bytes(), b.repo_objects()
    settle()

    changed = change_container(src / "ct101", 0.02, seed=7) + change_vm(src / "vm200", 0.02, seed=8)
    settle()
    ours_incr = b.vzbackup("backup", "--all")
    night2, objects2 = b.repo_bytes() - night1, b.repo_objects() - objects1
    settle()

    # restore vs zstd -d | tar -x of the same data
    (work / "base-restore").mkdir()
    base_restore = sh(f"zstd -d -q -c {work}/base.tar.zst | tar -x -C {work}/base-restore")
    shutil.rmtree(work / "base-restore")
    settle()
    ours_restore = b.vzbackup("restore", "ct101", "--to", "dst") + b.vzbackup("restore", "vm200", "--to", "dst")

    mb = data / 1e6
    base_size = (work / "base.tar.zst").stat().st_size
    rows = [
        ("full backup", f"{mb / ours_full:7.0f} MB/s", f"{mb / base_full:7.0f} MB/s",
         f"{base_full / ours_full:5.2f}x", "tar -cf - | zstd -1 -T0 > file; sync"),
        ("  CPU time", f"{ours_cpu:7.1f} s", f"{base_cpu:7.1f} s", f"{base_cpu / ours_cpu:5.2f}x",
         "user + system, every process"),
        ("stored, night 1", f"{night1 / 1e6:7.0f} MB", f"{base_size / 1e6:7.0f} MB",
         f"{night1 / base_size:5.2f}x", "size of the .tar.zst"),
        ("night 2 (2% change)", f"{mb / ours_incr:7.0f} MB/s", "", "", "incremental backup speed"),
        ("stored, night 2", f"{night2 / 1e6:7.1f} MB", f"{changed / 1e6:7.1f} MB",
         f"{100 * night2 / night1:5.1f}%", "of night 1; baseline column: bytes changed"),
        ("objects, night 1 / 2", f"{objects1:7d}", f"{objects2:7d}", "",
         "files in the repository; baseline column: night 2"),
        ("restore", f"{mb / ours_restore:7.0f} MB/s", f"{mb / base_restore:7.0f} MB/s",
         f"{base_restore / ours_restore:5.2f}x", "zstd -d | tar -x"),
    ]
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{platform.platform()}")
    print(f"data: {mb:.0f} MB ({files} entries in ct101, vm200 image sparse); "
          f"chunk_avg {args.chunk_kib} KiB, zstd level {args.level}\n")
    print(f"{'':22}{'vzbackup':>14}{'baseline':>14}{'ratio':>8}  baseline")
    for name, ours, base, ratio, what in rows:
        print(f"{name:22}{ours:>14}{base:>14}{ratio:>8}  {what}")
    if not args.keep:
        remove(work)


if __name__ == "__main__":
    main()
