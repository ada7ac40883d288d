"""Per-guest locks as files: ``<state_dir>/locks/<guest>.lock`` held with ``flock``.

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
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from .domain.guests import GuestRef
from .errors import LockBusy

log = logging.getLogger(__name__)


class FileLocks:
    """``ports.Locks`` for one machine. Two holders in one process exclude each other too."""

    def __init__(self, state_dir: Path):
        self.directory = Path(state_dir) / "locks"

    def path(self, ref: GuestRef) -> Path:
        return self.directory / f"{ref}.lock"

    @contextmanager
    def guest(self, ref: GuestRef, purpose: str) -> Iterator[None]:
        """Hold ``ref``'s lock for ``purpose`` (e.g. "backup"); ``LockBusy`` at once if taken."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path(ref), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
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


def _lock_or_explain(fd: int, ref: GuestRef, purpose: str) -> None:
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
