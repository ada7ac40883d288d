"""Dump failures name the guest and node; an aborted dump leaves no process behind."""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path

import pytest

from vzbackup.domain.guests import GuestRef
from vzbackup.errors import DumpFailed, GuestNotFound
from vzbackup.platforms.directory import DirectoryPlatform
from vzbackup.ports import GuestInfo

from .conftest import NODE, make_container, make_vm

CT = GuestRef("ct", 101)


def children() -> set[int]:
    pids = set()
    for task in os.listdir("/proc/self/task"):
        text = Path(f"/proc/self/task/{task}/children").read_text()
        pids.update(int(p) for p in text.split())
    return pids


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class RecordingSnapshotter:
    name = "recording"

    def __init__(self):
        self.events: list[str] = []

    @contextmanager
    def snapshot(self, path: Path, tag: str):
        self.events.append("taken")
        try:
            yield path
        finally:
            self.events.append("removed")


def fake_tar(tmp_path: Path, script: str) -> str:
    path = tmp_path / "fake-tar"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return str(path)


def test_missing_guest_folder(platform):
    ghost = GuestInfo(GuestRef("ct", 404), "ghost", NODE)
    with pytest.raises(GuestNotFound, match="ct404 on node lab1"):
        with platform.dump(ghost, RecordingSnapshotter()):
            pass


def test_tar_error_names_guest_node_and_stderr(platform, sandbox):
    make_vm(sandbox.root, 200, size=1 << 20)
    with open(sandbox.root / "vm200/guest.conf", "a") as f:
        f.write("disk2: missing.raw\n")
    snap = RecordingSnapshotter()
    with pytest.raises(DumpFailed) as err:
        with platform.dump(platform.find_guest(GuestRef("vm", 200)), snap) as dump:
            dump.stream.read()
    message = str(err.value)
    assert "vm200 on node lab1" in message and "exit status 2" in message
    assert "missing.raw" in message and "Cannot stat" in message
    assert snap.events == ["taken", "removed"]


def test_tar_killed_by_a_signal(sandbox, tmp_path):
    make_container(sandbox.root, 101, small_files=1)
    tar = fake_tar(tmp_path, "echo 'dying' >&2\nkill -9 $$\n")
    platform = DirectoryPlatform(sandbox.root, NODE, tar=tar)
    with pytest.raises(DumpFailed, match=r"ct101 on node lab1: tar failed \(killed by signal 9\): dying"):
        with platform.dump(platform.find_guest(CT), RecordingSnapshotter()) as dump:
            dump.stream.read()


def test_exit_status_1_is_a_warning(sandbox, tmp_path, caplog):
    make_container(sandbox.root, 101, small_files=1)
    tar = fake_tar(tmp_path, "printf data\necho 'file changed as we read it' >&2\nexit 1\n")
    platform = DirectoryPlatform(sandbox.root, NODE, tar=tar)
    with caplog.at_level(logging.WARNING):
        with platform.dump(platform.find_guest(CT), RecordingSnapshotter()) as dump:
            assert dump.stream.read() == b"data"
    assert "file changed as we read it" in caplog.text and "ct101 on node lab1" in caplog.text


def test_consumer_raising_kills_tar_and_removes_the_snapshot(platform, sandbox):
    make_container(sandbox.root, 101, small_files=2000)
    snap = RecordingSnapshotter()
    before_children, before_fds = children(), open_fds()
    with pytest.raises(RuntimeError, match="upload failed"):
        with platform.dump(platform.find_guest(CT), snap) as dump:
            dump.stream.read(1024)
            assert children() - before_children  # tar runs
            raise RuntimeError("upload failed")
    assert children() == before_children  # killed and reaped: no zombie
    assert open_fds() == before_fds
    assert snap.events == ["taken", "removed"]


def test_consumer_stopping_early_is_a_failure_not_a_hang(platform, sandbox):
    make_container(sandbox.root, 101, small_files=2000)
    before = children()
    with pytest.raises(DumpFailed, match="ct101 on node lab1"):
        with platform.dump(platform.find_guest(CT), RecordingSnapshotter()) as dump:
            dump.stream.read(1024)
    assert children() == before


def test_container_without_rootfs(platform, sandbox):
    (sandbox.root / "ct101").mkdir()
    with pytest.raises(DumpFailed, match="no rootfs"):
        with platform.dump(platform.find_guest(CT), RecordingSnapshotter()):
            pass
