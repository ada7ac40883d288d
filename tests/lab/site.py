"""A small site for end-to-end tests: named SSH nodes (real sshd on loopback, each with its
own guests folder, repository folder and chunk cache), a controller config that reaches
them with ``transport = "ssh"``, and a way to kill a node the way a dead host looks.

Each node runs this checkout's ``vzbackup agent`` (the venv's console script), so a job
really crosses SSH and runs in another process, as on a cluster.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.lab.ssh import SSHD, SshNode, free_port, keygen
from tests.support import is_root, require

AGENT = str(Path(sys.executable).parent / "vzbackup")


@dataclass
class Site:
    root: Path
    client_key: Path
    known_hosts: Path
    nodes: dict[str, SshNode]

    def guests(self, node: str) -> Path:
        return self.nodes[node].data / "guests"

    def repo_dir(self, node: str) -> Path:
        return self.nodes[node].data / "repo"

    def node_toml(self, name: str, **extra: object) -> str:
        n = self.nodes[name]
        lines = [f"[nodes.{name}]", 'transport = "ssh"', 'host = "127.0.0.1"', f"port = {n.port}",
                 f'key_file = "{self.client_key}"', f'known_hosts = "{self.known_hosts}"',
                 f'root = "{self.guests(name)}"', f'vzbackup = "{AGENT}"',
                 f'cache_dir = "{n.root / "cache"}"', "connect_timeout = 2"]
        lines += [f"{k} = {_toml(v)}" for k, v in extra.items()]
        return "\n".join(lines) + "\n"

    def sftp_repo_toml(self, repo: str, node: str, **extra: object) -> str:
        n = self.nodes[node]
        lines = [f"[repositories.{repo}]",
                 f'url = "sftp://root@127.0.0.1:{n.port}{self.repo_dir(node)}"',
                 f'node = "{node}"', f'key_file = "{self.client_key}"',
                 f'known_hosts = "{self.known_hosts}"', "connect_timeout = 2"]
        lines += [f"{k} = {_toml(v)}" for k, v in extra.items()]
        return "\n".join(lines) + "\n"

    def kill(self, name: str) -> None:
        """The node dies: its sshd and every session under it are killed at once."""
        node = self.nodes[name]
        if node.proc is None:
            return
        for pid in [*_descendants(node.proc.pid), node.proc.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        node.proc.wait()
        node.proc = None


def controller_toml(folder: Path) -> str:
    """The controller's part of a lab config: state and a local repository "here" in
    ``folder``; nodes and further repositories are appended."""
    return (f'[state]\ndir = "{folder / "state"}"\n[backup]\nrepository = "here"\n'
            f'[repositories.here]\nurl = "file://{folder / "repo"}"\n')


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return f'"{value}"'


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@pytest.fixture
def ssh_site() -> Iterator[callable]:
    """``make(*names)``: a site with those nodes, torn down after the test."""
    require(is_root() and os.path.exists(SSHD) and shutil.which("ssh-keygen") is not None,
            "needs root and openssh-server (sshd, ssh-keygen)")
    sites: list[Site] = []

    def make(*names: str) -> Site:
        root = Path(tempfile.mkdtemp(prefix="vzbackup-site-"))
        keygen(root / "client_key")
        nodes = {n: SshNode(n, root / n, free_port()) for n in names}
        site = Site(root, root / "client_key", root / "known_hosts", nodes)
        sites.append(site)
        for node in nodes.values():
            node.start((root / "client_key.pub").read_text())
            (node.data / "guests").mkdir()
        site.known_hosts.write_text("".join(n.known_hosts_line() for n in nodes.values()))
        return site

    yield make
    for site in sites:
        for name in site.nodes:
            site.kill(name)
        shutil.rmtree(site.root, ignore_errors=True)
