"""SSH sessions to nodes (paramiko): one connection per node, reused; host keys checked
against known_hosts; explicit timeouts everywhere (paramiko never notices a dead peer by
itself); retries only for connection failures that may pass.

Commands are argv lists, quoted with ``shlex.join``: never a shell string built by hand.
"""

from __future__ import annotations

import logging
import shlex
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

import paramiko
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from ..errors import NodeUnreachable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SshTarget:
    host: str
    port: int = 22
    user: str = "root"
    key_file: Path | None = None  # None: the SSH agent
    known_hosts: Path | None = None  # None: ~/.ssh/known_hosts
    accept_new_host_key: bool = False  # trust a host never seen before (never a changed key)
    connect_timeout: float = 10.0
    keepalive: int = 15

    @property
    def where(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    code: int
    stdout: bytes
    stderr: bytes


class _Transient(Exception):
    """A connection failure worth another try (refused, reset, timed out)."""


class SshSession:
    """A lazily opened, reused SSH connection. Thread-safe for opening channels."""

    def __init__(self, target: SshTarget, node: str):
        self.target, self.node = target, node
        self._client: paramiko.SSHClient | None = None
        self._lock = threading.Lock()

    def client(self) -> paramiko.SSHClient:
        with self._lock:
            transport = self._client.get_transport() if self._client else None
            if transport is None or not transport.is_active():
                self._client = self._connect()
            return self._client

    def run(self, argv: list[str], *, timeout: float = 300.0) -> CommandResult:
        """Run ``argv`` on the node; its exit status, stdout and stderr."""
        command = shlex.join(argv)
        try:
            _, out, err = self.client().exec_command(command, timeout=timeout)
            errors: list[bytes] = []  # stderr read alongside: a full stderr window would
            reader = threading.Thread(target=lambda: errors.append(err.read()), daemon=True)
            reader.start()  # otherwise stall the command while we wait on its stdout
            stdout = out.read()
            reader.join(timeout)
            code = out.channel.recv_exit_status()
            stderr = errors[0] if errors else b""
        except (socket.timeout, paramiko.SSHException, OSError) as e:
            self.close()
            raise NodeUnreachable(f"node {self.node} ({self.target.where}): '{command}' did not "
                                  f"finish: {e or type(e).__name__}") from None
        return CommandResult(tuple(argv), code, stdout, stderr)

    def start(self, argv: list[str], *, timeout: float = 300.0) -> "RemoteProcess":
        """Start ``argv`` on the node with streaming stdin and stdout. ``timeout`` bounds
        each wait for the other side (inactivity), not the whole command."""
        command = shlex.join(argv)
        try:
            channel = self.client().get_transport().open_session(  # type: ignore[union-attr]
                timeout=self.target.connect_timeout)
            channel.settimeout(timeout)
            channel.exec_command(command)
        except (socket.timeout, paramiko.SSHException, OSError) as e:
            self.close()
            raise NodeUnreachable(f"node {self.node} ({self.target.where}): cannot start "
                                  f"'{command}': {e or type(e).__name__}") from None
        return RemoteProcess(channel, command, f"node {self.node} ({self.target.where})")

    def sftp(self) -> paramiko.SFTPClient:
        sftp = self.client().open_sftp()
        sftp.get_channel().settimeout(self.target.connect_timeout * 3)
        return sftp

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _connect(self) -> paramiko.SSHClient:
        try:
            return self._connect_with_retries()
        except _Transient as e:
            raise NodeUnreachable(f"node {self.node} ({self.target.where}) does not answer: "
                                  f"{e.__cause__ or e}",
                                  hint="Check that the node is up and reachable over SSH.") from None

    @retry(retry=retry_if_exception_type(_Transient), stop=stop_after_attempt(3),
           wait=wait_exponential(multiplier=0.5, max=4), reraise=True)
    def _connect_with_retries(self) -> paramiko.SSHClient:
        t = self.target
        client = paramiko.SSHClient()
        known = t.known_hosts or Path("~/.ssh/known_hosts").expanduser()
        if known.exists():
            client.load_host_keys(str(known))
        client.set_missing_host_key_policy(
            paramiko.AutoAddPolicy() if t.accept_new_host_key else paramiko.RejectPolicy())
        try:
            client.connect(t.host, port=t.port, username=t.user,
                           key_filename=str(t.key_file) if t.key_file else None,
                           allow_agent=t.key_file is None, look_for_keys=False,
                           timeout=t.connect_timeout, banner_timeout=t.connect_timeout,
                           auth_timeout=t.connect_timeout, channel_timeout=t.connect_timeout)
        except paramiko.BadHostKeyException:
            client.close()
            raise NodeUnreachable(
                f"node {self.node} ({t.where}): its host key CHANGED since it was trusted",
                hint=f"If the node was reinstalled, check its new key fingerprint on its console, "
                     f"remove the old line with 'ssh-keygen -R \"[{t.host}]:{t.port}\" -f {known}' "
                     "and trust the new one; otherwise treat this as an attack.") from None
        except paramiko.AuthenticationException as e:
            client.close()
            raise NodeUnreachable(f"node {self.node} ({t.where}): authentication failed: {e}",
                                  hint="Install vzbackup's public key in the node's "
                                       "authorized_keys, or fix the node's key_file.") from None
        except paramiko.SSHException as e:
            client.close()
            if "not found in known_hosts" in str(e):
                raise NodeUnreachable(
                    f"node {self.node} ({t.where}): unknown host key, refused",
                    hint=f"Check the node's key fingerprint on its console, then add it with "
                         f"'ssh-keyscan -p {t.port} {t.host} >> {known}' (or set "
                         "accept_new_host_key for this node).") from None
            raise _Transient(str(e)) from e
        except (socket.timeout, OSError) as e:
            client.close()
            raise _Transient(str(e)) from e
        if known.parent.is_dir() and t.accept_new_host_key:
            client.save_host_keys(str(known))
        client.get_transport().set_keepalive(t.keepalive)  # type: ignore[union-attr]
        return client


class RemoteProcess:
    """A command running on a node: ``stdin`` and ``stdout`` are streams with the channel's
    flow control (a writer blocks while the other side is not reading); stderr is
    collected in a thread so that it never stalls the command."""

    def __init__(self, channel: paramiko.Channel, command: str, where: str):
        self.channel, self.command, self.where = channel, command, where
        self.stdin = channel.makefile_stdin("wb")
        self.stdout = channel.makefile("rb")
        self._stderr: list[bytes] = []
        err = channel.makefile_stderr("rb")
        self._reader = threading.Thread(target=lambda: self._stderr.append(_read_all(err)),
                                        daemon=True, name="vzbackup-ssh-stderr")
        self._reader.start()

    def close_stdin(self) -> None:
        self.stdin.flush()
        self.channel.shutdown_write()

    @property
    def stderr(self) -> str:
        return b"".join(self._stderr).decode("utf-8", "replace").strip()

    def wait(self, timeout: float = 30.0) -> int:
        """The exit status; ``NodeUnreachable`` if none arrives within ``timeout``."""
        if not self.channel.status_event.wait(timeout):
            self.kill()
            raise NodeUnreachable(f"{self.where}: '{self.command}' did not exit")
        self._reader.join(timeout)
        return self.channel.recv_exit_status()

    def kill(self) -> None:
        """Close the channel: sshd hangs up on the command (SIGHUP, then EOF on its pipes)."""
        self.channel.close()


def _read_all(stream) -> bytes:  # noqa: ANN001
    try:
        return stream.read()
    except (socket.timeout, OSError, paramiko.SSHException):
        return b""
