"""Guest locks across real processes: a second process is refused, a killed holder frees it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import vzbackup
from vzbackup.domain.guests import GuestRef
from vzbackup.errors import LockBusy
from vzbackup.locks import FileLocks

CT101 = GuestRef("ct", 101)
PROJECT = Path(vzbackup.__file__).resolve().parent.parent

HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from vzbackup.domain.guests import GuestRef
    from vzbackup.locks import FileLocks
    with FileLocks(Path(sys.argv[1])).guest(GuestRef("ct", 101), "backup"):
        print("locked", flush=True)
        time.sleep(60)
""")


@pytest.fixture
def holder(tmp_path):
    """Another process holding ct101's lock for "backup"; killed with SIGKILL at the end."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], env=env,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "locked\n"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def test_second_process_gets_lock_busy_naming_the_holder(tmp_path, holder):
    with pytest.raises(LockBusy) as caught:
        with FileLocks(tmp_path).guest(CT101, "restore"):
            pytest.fail("got a lock another process holds")
    message = str(caught.value)
    assert "restore ct101" in message
    assert f"pid {holder.pid}" in message and "backup since" in message
    assert caught.value.exit_code == 11


def test_lock_is_free_after_the_holder_is_killed(tmp_path, holder):
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(10)
    with FileLocks(tmp_path).guest(CT101, "restore"):
        pass


def test_lock_is_released_on_exit_and_on_error(tmp_path):
    locks = FileLocks(tmp_path)
    with locks.guest(CT101, "backup"):
        pass
    with pytest.raises(RuntimeError):
        with locks.guest(CT101, "backup"):
            raise RuntimeError("boom")
    with locks.guest(CT101, "backup"):
        assert (tmp_path / "locks" / "ct101.lock").is_file()


def test_holders_in_one_process_exclude_each_other(tmp_path):
    locks = FileLocks(tmp_path)
    with locks.guest(CT101, "backup"):
        with pytest.raises(LockBusy, match=f"pid {os.getpid()}, backup"):
            with locks.guest(CT101, "checkpoint"):
                pass
        with locks.guest(GuestRef("vm", 101), "backup"):  # another guest: its own lock
            pass
