"""Throwaway OpenSSH servers for the tests: one sshd per node on 127.0.0.1, its own host
key, key-only root login, no systemd and no change under /etc.

Needs openssh-server (``make test-deps`` installs it as root) and root (sshd needs its
privilege-separation directory /run/sshd and the sshd user).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import is_root, require

SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "vzbackup-test",
                    "-f", str(path)], check=True, stdin=subprocess.DEVNULL)


@dataclass
class SshNode:
    name: str
    root: Path
    port: int
    proc: subprocess.Popen | None = None

    @property
    def data(self) -> Path:
        return self.root / "data"

    def known_hosts_line(self) -> str:
        kind, key = (self.root / "host_key.pub").read_text().split()[:2]
        return f"[127.0.0.1]:{self.port} {kind} {key}\n"

    def start(self, client_pubkey: str) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        if not (self.root / "host_key").exists():
            keygen(self.root / "host_key")
        (self.root / "authorized_keys").write_text(client_pubkey)
        (self.root / "sshd_config").write_text(f"""Port {self.port}
ListenAddress 127.0.0.1
HostKey {self.root}/host_key
PidFile {self.root}/sshd.pid
AuthorizedKeysFile {self.root}/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
MaxStartups 100:30:200
MaxSessions 50
Subsystem sftp internal-sftp
""")
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        log = open(self.root / "sshd.log", "ab")
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.root / "sshd_config")],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"sshd {self.name} exited: "
                                   + (self.root / "sshd.log").read_text()[-2000:])
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(64).startswith(b"SSH-2.0-"):
                        return
            except OSError:
                time.sleep(0.02)
        raise TimeoutError(f"sshd {self.name} not ready")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@dataclass
class SshLab:
    root: Path
    client_key: Path
    known_hosts: Path
    nodes: list[SshNode]


@pytest.fixture(scope="session")
def ssh_lab() -> Iterator[SshLab]:
    """Three sshd nodes on loopback, a client key and a known_hosts file trusting them."""
    require(is_root() and os.path.exists(SSHD) and shutil.which("ssh-keygen") is not None,
            "needs root and openssh-server (sshd, ssh-keygen)")
    root = Path(tempfile.mkdtemp(prefix="vzbackup-ssh-"))
    client_key = root / "client_key"
    keygen(client_key)
    nodes = [SshNode(f"node{i}", root / f"node{i}", free_port()) for i in (1, 2, 3)]
    try:
        for node in nodes:
            node.start((root / "client_key.pub").read_text())
        known_hosts = root / "known_hosts"
        known_hosts.write_text("".join(n.known_hosts_line() for n in nodes))
        yield SshLab(root, client_key, known_hosts, nodes)
    finally:
        for node in nodes:
            node.stop()
        shutil.rmtree(root, ignore_errors=True)
