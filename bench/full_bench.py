"""Full-backup timing only, repeated and interleaved, for comparing code variants.

Generates the data of ``bench.backup_bench`` once (kept in ``--work``/src between runs),
then for each round runs the baseline (``tar | zstd -1 -T0 > file; sync``) and a full
``vzbackup backup --all`` per variant into a fresh repository, and prints medians and
spreads. A variant is ``label`` or ``label:PYTHONPATH`` (a folder holding a copy of an
older ``vzbackup/`` package) optionally followed by ``+VAR=value`` environment settings. On
a machine shared with others' test runs, ``--quiet 0.8`` waits before each round until the
CPUs are 80% idle; each round first reads the source once, untimed.

    python -m bench.full_bench --rounds 8 --quiet 0.8 --variants new orig:/tmp/vzb-orig
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.backup_bench import TOP, bench_config, children_cpu, cli_env, generate, settle, sh, tree_bytes


def ensure_data(work: Path, gib: float) -> Path:
    src = work / "src"
    if not (src / ".complete").exists():
        shutil.rmtree(work, ignore_errors=True)
        src.mkdir(parents=True)
        print(f"generating {gib} GiB in {src} ...", flush=True)
        generate(src, gib)
        (src / ".complete").write_text("ok")
        settle()
    return src


def idle_fraction(seconds: float) -> float:
    """The machine's idle share of CPU time over the next ``seconds`` (from /proc/stat)."""
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        return values[3] + values[4], sum(values)  # idle + iowait, all
    idle0, all0 = sample()
    time.sleep(seconds)
    idle1, all1 = sample()
    return (idle1 - idle0) / max(1, all1 - all0)


def wait_for_quiet(threshold: float, limit: float) -> float:
    """Wait (up to ``limit`` seconds) until the machine is at least ``threshold`` idle for 3 s:
    on a machine shared with others' test runs, a round timed under load says little. The
    idle share seen last."""
    deadline = time.monotonic() + limit
    idle = idle_fraction(3)
    while idle < threshold and time.monotonic() < deadline:
        idle = idle_fraction(3)
    return idle


def run_variant(work: Path, src: Path, n: int, variant: str, chunk_kib: int, level: int
                ) -> tuple[float, float]:
    """Seconds and CPU seconds of one full backup of ``variant``."""
    label, _, rest = variant.partition(":")
    path, *settings = rest.split("+") if rest else ("",)
    run = work / "runs" / f"{n:03d}-{label}"
    (run / "dst").mkdir(parents=True)  # the config's second node must exist
    config = run / "bench.toml"
    config.write_text(bench_config(str(src), chunk_kib, level))
    env = cli_env()
    if path:
        env["PYTHONPATH"] = path
    for s in settings:
        key, _, value = s.partition("=")
        env[key] = value
    base = [sys.executable, "-m", "vzbackup", "--quiet", "--config", str(config)]
    # cwd: not the project folder, which "python -m" would put ahead of PYTHONPATH
    subprocess.run([*base, "repo", "init"], check=True, stdout=subprocess.DEVNULL, env=env, cwd=run)
    # the catalogue exists on any host that ran vzbackup before: not part of a backup's time
    subprocess.run([*base, "points"], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, env=env, cwd=run)
    settle()
    cpu, started = children_cpu(), time.perf_counter()
    subprocess.run([*base, "backup", "--all"], check=True, stdout=subprocess.DEVNULL, env=env,
                   cwd=run)
    return time.perf_counter() - started, children_cpu() - cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gib", type=float, default=1.25)
    ap.add_argument("--chunk-kib", type=int, default=64)
    ap.add_argument("--level", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--work", type=Path, default=TOP / ".bench-full")
    ap.add_argument("--variants", nargs="+", default=["current"])
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--quiet", type=float, default=0.0, metavar="SHARE",
                    help="before each round, wait (up to 10 min) until the CPUs are this idle "
                         "(e.g. 0.85) for 3 s")
    args = ap.parse_args()
    work = args.work
    src = ensure_data(work, args.gib)
    mb = sum(tree_bytes(src / g) for g in ("ct101", "vm200")) / 1e6
    if (work / "runs").exists():  # deleted inodes slow down creation for ~60 s (perf.md)
        shutil.rmtree(work / "runs")
        os.sync()
        time.sleep(60)
    (work / "runs").mkdir()
    settle()
    times: dict[str, list[tuple[float, float]]] = {v: [] for v in args.variants}
    if not args.no_baseline:
        times["baseline"] = []
    n = 0
    for r in range(args.rounds):
        order = args.variants if r % 2 == 0 else list(reversed(args.variants))
        if args.quiet:
            print(f"round {r + 1}: {100 * wait_for_quiet(args.quiet, 600):.0f}% idle, load "
                  f"{os.getloadavg()[0]:.1f} before it", flush=True)
        # untimed: the source back in the page cache (the baseline goes first in each round,
        # and would otherwise pay for whatever was evicted since the last one)
        sh(f"tar -cf - -C {src} ct101 vm200 --sparse | cat > /dev/null")
        settle()
        if not args.no_baseline:
            out = work / "runs" / f"base-{r}.tar.zst"
            cpu = children_cpu()
            wall = sh(f"tar -cf - -C {src} ct101 vm200 --sparse | zstd -1 -T0 -q -o {out}"
                      f" && sync -f {out}")
            times["baseline"].append((wall, children_cpu() - cpu))
            settle()
        for v in order:
            n += 1
            times[v].append(run_variant(work, src, n, v, args.chunk_kib, args.level))
            settle()
        print(f"round {r + 1}: " + ", ".join(f"{k.split(':')[0]} {t[-1][0]:.2f}s"
                                              for k, t in times.items()), flush=True)
    print(f"\n{mb:.0f} MB, chunk_avg {args.chunk_kib} KiB, level {args.level}")
    walls = {k: [w for w, _ in t] for k, t in times.items()}
    base = statistics.median(walls["baseline"]) if "baseline" in walls else None
    for k, t in walls.items():
        med = statistics.median(t)
        cpu = statistics.median(c for _, c in times[k])
        ratio = f"  {base / med:.2f}x baseline" if base else ""
        print(f"{k.split(':')[0]:12} median {med:6.2f}s ({mb / med:4.0f} MB/s)  "
              f"min {min(t):.2f} max {max(t):.2f}  CPU {cpu:5.2f}s{ratio}")


if __name__ == "__main__":
    main()
