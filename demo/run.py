"""``make demo``: two nights of backups on a three-node lab, then node3 is lost and
ct101 is restored on node7 and checked identical to the original."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .guestdata import change_container, change_vm, make_container, make_vm
from .treedigest import allocated_bytes, describe, differences

TOP = Path(__file__).resolve().parent.parent
CONFIG = TOP / "config" / "demo.toml"
LAB = TOP / ".demo-lab"


def vzbackup(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "vzbackup", "--config", str(CONFIG), *args]
    print("$ vzbackup " + " ".join(args), flush=True)
    result = subprocess.run(argv, stdout=subprocess.PIPE, text=True)
    if check and result.returncode != 0:
        sys.exit(f"demo: 'vzbackup {' '.join(args)}' failed with exit code {result.returncode}")
    return result


def build_lab() -> None:
    if LAB.exists():
        shutil.rmtree(LAB)
    for node in ("node1", "node3", "node7"):
        (LAB / node).mkdir(parents=True)
    make_container(LAB / "node3", 101, "web1", files=3000, mib=60, seed=101)
    make_container(LAB / "node3", 103, "mail1", files=1500, mib=25, seed=103)
    make_container(LAB / "node1", 102, "db1", files=1500, mib=30, seed=102)
    make_vm(LAB / "node1", 200, "win-app", size_mib=512, data_mib=40, seed=200)


def night(n: int) -> tuple[int, int]:
    result = vzbackup("backup", "--all", "--json")
    items = json.loads(result.stdout)["data"]["items"]
    read = sum(i["bytes_in"] for i in items)
    stored = sum(i["new_bytes"] for i in items)
    print(f"night {n}: {len(items)} guests, read {read / 2**20:.1f} MiB, "
          f"stored {stored / 2**20:.2f} MiB new", flush=True)
    return read, stored


def main() -> None:
    started = time.monotonic()
    print(f"demo: building the lab in {LAB}", flush=True)
    build_lab()
    vzbackup("config", "check")
    vzbackup("repo", "init")
    read1, stored1 = night(1)
    changed = change_container(LAB / "node3" / "ct101", 0.02, seed=1)
    changed += change_container(LAB / "node3" / "ct103", 0.02, seed=2)
    changed += change_container(LAB / "node1" / "ct102", 0.02, seed=3)
    changed += change_vm(LAB / "node1" / "vm200", 0.02, seed=4)
    print(f"demo: changed about 2% of the guests ({changed / 2**20:.2f} MiB written)", flush=True)
    read2, stored2 = night(2)
    print(vzbackup("points", "ct101").stdout, end="")

    original = describe(LAB / "node3" / "ct101" / "rootfs")
    print("demo: node3 is lost (its folder is deleted)", flush=True)
    shutil.rmtree(LAB / "node3")
    print(vzbackup("restore", "ct101", "--to", "node7").stdout, end="")
    restored = describe(LAB / "node7" / "ct101" / "rootfs")
    diff = differences(original, restored)
    if diff:
        sys.exit("demo: the restored ct101 differs from the original:\n  " + "\n  ".join(diff))
    vm = LAB / "node1" / "vm200" / "disk-0.raw"
    print(f"\nsummary\n"
          f"  night 1: read {read1 / 2**20:.1f} MiB, stored {stored1 / 2**20:.1f} MiB\n"
          f"  night 2: read {read2 / 2**20:.1f} MiB, stored {stored2 / 2**20:.2f} MiB "
          f"({100 * stored2 / max(1, stored1):.1f}% of night 1)\n"
          f"  vm200 image: {vm.stat().st_size / 2**20:.0f} MiB apparent, "
          f"{allocated_bytes(vm) / 2**20:.0f} MiB allocated\n"
          f"  ct101 restored on node7 after node3 was lost: identical "
          f"({len(original)} entries: contents, modes, owners, mtimes, links)\n"
          f"  took {time.monotonic() - started:.0f} s", flush=True)


if __name__ == "__main__":
    os.umask(0o022)
    main()
