"""A throwaway PostgreSQL server for the tests, and its fixtures.

``initdb`` into a fresh ``mkdtemp`` under /tmp (pytest's tmp dirs are 0700, so user postgres
could not reach them), ``postgres`` in the foreground on 127.0.0.1 and a socket in the data
dir, ready when ``pg_isready`` says so, stopped with SIGINT ("fast" shutdown). As root the
server runs as user postgres (it refuses root); otherwise as the current user.

Fixtures: ``pg_server`` (session: one server) and ``pg_url`` (a fresh database per test,
dropped afterwards). Import them into a ``conftest.py`` to use them.
"""

from __future__ import annotations

import ctypes
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support import require

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
INSTALL_HINT = "PostgreSQL server binaries are needed (apt-get install postgresql)"


def pg_bindir() -> str | None:
    """The newest /usr/lib/postgresql/<version>/bin holding ``postgres``, if any."""
    found = glob.glob("/usr/lib/postgresql/*/bin/postgres")
    if not found:
        return None
    newest = max(found, key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return os.path.dirname(newest)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_user_exists() -> bool:
    try:
        pwd.getpwnam("postgres")
        return True
    except KeyError:
        return False


def _die_with_parent() -> None:
    """In the child before exec: a fast shutdown (SIGINT) when the test process dies, even by
    SIGKILL or a CI timeout, so no server outlives its tests. (Runs after the switch to user
    postgres, which would otherwise clear the setting.)"""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGINT, 0, 0, 0)


class PgServer:
    """One PostgreSQL cluster in its own temporary directory; superuser 'postgres', trust auth."""

    def __init__(self, bindir: str):
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="vzbackup-pg-", dir="/tmp"))
        self.data = self.root / "pgdata"
        self.port = free_port()
        self.user = "postgres" if os.geteuid() == 0 else None
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def start(self, timeout: float = 30.0) -> None:
        if self.user:
            pw = pwd.getpwnam(self.user)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--locale=C", "--no-sync", "--no-instructions")
        with open(self.root / "postgres.log", "ab") as log:
            self.proc = subprocess.Popen(
                [f"{self.bindir}/postgres", "-D", str(self.data), "-p", str(self.port),
                 "-k", str(self.data), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                 "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                 "-c", "max_connections=200"],
                user=self.user, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.root,
                preexec_fn=_die_with_parent,
            )
        self._wait_ready(timeout)

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run([f"{self.bindir}/{tool}", *args], user=self.user,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode:
            raise RuntimeError(f"{tool} failed (exit {done.returncode}): {done.stderr[-2000:]}")

    def _wait_ready(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while subprocess.run([f"{self.bindir}/pg_isready", "-q", "-h", "127.0.0.1",
                              "-p", str(self.port), "-U", "postgres"]).returncode:
            if self.proc.poll() is not None:
                raise RuntimeError("postgres exited: " + self.log_tail())
            if time.monotonic() > deadline:
                raise TimeoutError(f"postgres not ready after {timeout} s: " + self.log_tail())
            time.sleep(0.05)

    def log_tail(self) -> str:
        path = self.root / "postgres.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def admin(self, sql: str) -> None:
        """Run one statement as superuser outside a transaction (CREATE/DROP DATABASE)."""
        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres",
                             dbname="postgres", autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGQUIT)  # immediate shutdown
                self.proc.wait(5)
        self.proc = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    bindir = pg_bindir()
    require(bindir is not None, f"no /usr/lib/postgresql/*/bin/postgres: {INSTALL_HINT}")
    require(os.geteuid() != 0 or postgres_user_exists(),
            f"running as root but there is no user 'postgres' to run the server: {INSTALL_HINT}")
    server = PgServer(bindir)  # type: ignore[arg-type]
    try:
        server.start()
    except BaseException:
        server.destroy()
        raise
    yield server
    server.destroy()


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """A fresh, empty database on the session's server, dropped after the test."""
    name = f"vzt_{uuid.uuid4().hex[:12]}"
    pg_server.admin(f'CREATE DATABASE "{name}"')
    yield pg_server.url(name)
    pg_server.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
