"""A small lab for command-line tests: two directory nodes, one repository, SQLite."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from demo.guestdata import make_container, make_vm, write_guest_config
from vzbackup.cli.main import main

TOP = Path(__file__).resolve().parents[3]
CONFIG = """
[state]
dir = "state"
[backup]
repository = "main"
[nodes.node1]
root = "node1"
[nodes.node2]
root = "node2"
[repositories.main]
url = "file://repo"
"""


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)["data"]


@dataclass
class Lab:
    root: Path
    config: Path
    capsys: pytest.CaptureFixture

    def run(self, *args: str) -> Result:
        self.capsys.readouterr()
        try:
            main(["--config", str(self.config), *args])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        captured = self.capsys.readouterr()
        return Result(code, captured.out, captured.err)

    def ok(self, *args: str) -> Result:
        r = self.run(*args)
        assert r.code == 0, r
        return r

    def node(self, name: str) -> Path:
        return self.root / name

    def add_random_vm(self, node: str, vmid: int, mib: int) -> None:
        """A VM whose image is ``mib`` MiB of random bytes: slow enough to interrupt."""
        vm = self.node(node) / f"vm{vmid}"
        vm.mkdir()
        write_guest_config(vm, {"name": f"big{vmid}", "scsi0": "disk-0.raw"})
        with open(vm / "disk-0.raw", "wb") as f:
            for _ in range(mib):
                f.write(os.urandom(1 << 20))

    def subprocess_argv(self, *args: str) -> tuple[list[str], dict[str, str]]:
        """argv and environment to run vzbackup in a child process, as a user would."""
        env = {**os.environ, "PYTHONPATH": str(TOP)}
        return [sys.executable, "-m", "vzbackup", "--config", str(self.config), *args], env


@pytest.fixture
def lab(tmp_path, capsys) -> Lab:
    root = tmp_path / "lab"
    root.mkdir()
    config = root / "vzbackup.toml"
    config.write_text(CONFIG)
    for node in ("node1", "node2"):
        (root / node).mkdir()
    make_container(root / "node1", 101, "web1", files=120, mib=2, seed=1)
    make_vm(root / "node1", 200, "app", size_mib=16, data_mib=2, seed=2)
    return Lab(root, config, capsys)


@pytest.fixture
def backed_up(lab) -> Lab:
    lab.ok("repo", "init")
    lab.ok("backup", "--all")
    return lab
