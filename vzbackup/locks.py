"""Per-guest locks as files: ``<state_dir>/locks/<guest>.lock`` held with ``flock``; job
locks as files too (``job-<name>.lock``), or as PostgreSQL advisory locks when the catalogue
is shared, where one lock also elects the one daemon that schedules (``PgLocks``).

The kernel drops an ``flock`` when its holder exits, however it dies (``kill -9`` included),
so there is never a stale lock to clean up. The holder writes its pid and purpose into the
file, so a refused process can say who is in the way. Lock files are never deleted:
unlinking a locked file would let a second process lock a new file of the same name.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import hashlib
import socket
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timezone
from pathlib import Path

from .domain.guests import GuestRef
from .errors import CatalogError, LockBusy

log = logging.getLogger(__name__)


class FileLocks:
    """``ports.Locks`` for one machine. Two holders in one process exclude each other too."""

    def __init__(self, state_dir: Path):
        self.directory = Path(state_dir) / "locks"

    def path(self, ref: GuestRef) -> Path:
        return self.directory / f"{ref}.lock"

    def guest(self, ref: GuestRef, purpose: str) -> AbstractContextManager[None]:
        """Hold ``ref``'s lock for ``purpose`` (e.g. "backup"); ``LockBusy`` at once if taken."""
        return self._held(self.path(ref), str(ref), purpose)

    def job(self, name: str, purpose: str = "run") -> AbstractContextManager[None]:
        """``ports.JobLocks`` on one host: job ``name``'s lock."""
        return self._held(self.directory / f"job-{name}.lock", f"job {name}", purpose)

    def repository(self, name: str, purpose: str) -> AbstractContextManager[None]:
        """``ports.JobLocks.repository`` on one host: repository ``name``'s lock."""
        return self._held(self.directory / f"repository-{name}.lock", f"repository {name}",
                          purpose)

    @contextmanager
    def _held(self, path: Path, ref: str, purpose: str) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            _lock_or_explain(fd, ref, purpose)
            _write_holder(fd, purpose)
            log.debug("locked %s for %s", ref, purpose)
            try:
                yield
            finally:
                os.ftruncate(fd, 0)  # no stale holder text for the next reader
                fcntl.flock(fd, fcntl.LOCK_UN)
                log.debug("unlocked %s", ref)
        finally:
            os.close(fd)


def _lock_or_explain(fd: int, ref: str, purpose: str) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise LockBusy(f"cannot {purpose} {ref}: {_holder(fd)} holds its lock") from None


def _write_holder(fd: int, purpose: str) -> None:
    since = datetime.now(timezone.utc).isoformat(timespec="seconds")
    data = json.dumps({"pid": os.getpid(), "purpose": purpose, "since": since}).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)


def _holder(fd: int) -> str:
    """Who holds the lock, from what the holder wrote (it may not have written yet)."""
    try:
        doc = json.loads(os.pread(fd, 4096, 0) or b"null")
        return f"another vzbackup process (pid {int(doc['pid'])}, {doc['purpose']} since {doc['since']})"
    except (ValueError, TypeError, KeyError, OSError):
        return "another vzbackup process"


# ---- PostgreSQL advisory locks: one cluster-wide name space --------------------------------


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``name`` (pg_try_advisory_lock takes a bigint)."""
    return int.from_bytes(hashlib.sha256(f"vzbackup:{name}".encode()).digest()[:8], "big",
                          signed=True)


# sqlalchemy is imported inside PgLocks and Lease: the agent on a node imports this module
# (through wiring) and never needs it, and it costs start-up time there.


class Lease:
    """A session advisory lock held on its own connection. PostgreSQL frees it when the
    connection dies (a crashed host), so ``alive`` must be asked before relying on it."""

    def __init__(self, conn, name: str):  # noqa: ANN001 (a SQLAlchemy Connection)
        self._conn, self.name = conn, name

    def alive(self) -> bool:
        from sqlalchemy import text
        try:
            self._conn.execute(text("SELECT 1"))
            return True
        except Exception:  # the connection is gone, and the lock with it
            log.warning("lost the connection holding lock %s", self.name)
            return False

    def release(self) -> None:
        try:
            self._conn.close()  # closing the session frees its advisory locks
        except Exception:
            pass


class PgLocks:
    """``ports.JobLocks`` (and the scheduler's election) on a shared PostgreSQL catalogue:
    a job running on any host holds its lock; a daemon that holds ``scheduler`` schedules."""

    def __init__(self, url: str):
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        self._engine = create_engine(url, poolclass=NullPool)
        self.where = self._engine.url.render_as_string(hide_password=True)

    def try_lease(self, name: str) -> Lease | None:
        """The lock ``name`` if no other session holds it; None otherwise."""
        from sqlalchemy import text
        try:
            conn = self._engine.connect()
        except Exception as e:
            raise CatalogError(f"catalogue {self.where}: cannot take lock {name}: "
                               f"{type(e).__name__}") from None
        try:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"),
                               {"k": advisory_key(name)}).scalar()
            conn.commit()
        except Exception as e:
            conn.close()
            raise CatalogError(f"catalogue {self.where}: cannot take lock {name}: "
                               f"{type(e).__name__}") from None
        if not got:
            conn.close()
            return None
        return Lease(conn, name)

    @contextmanager
    def job(self, name: str, purpose: str = "run") -> Iterator[None]:
        lease = self.try_lease(f"job:{name}")
        if lease is None:
            raise LockBusy(f"cannot {purpose} job {name}: it is running in another vzbackup "
                           "process (on this host or another one sharing the catalogue)")
        log.debug("locked job %s on %s (%s)", name, self.where, socket.gethostname())
        try:
            yield
        finally:
            lease.release()

    @contextmanager
    def repository(self, name: str, purpose: str) -> Iterator[None]:
        lease = self.try_lease(f"repository:{name}")
        if lease is None:
            raise LockBusy(f"cannot {purpose} repository {name}: another vzbackup process "
                           "(on this host or another one sharing the catalogue) holds its lock")
        try:
            yield
        finally:
            lease.release()

    def close(self) -> None:
        self._engine.dispose()
