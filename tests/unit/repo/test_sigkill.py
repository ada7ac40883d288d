"""A backup killed with SIGKILL at any moment leaves no restore point, only garbage."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from vzbackup.repo.backends import open_backend
from vzbackup.repo.repository import open_chunk_repository

from .conftest import backup, make_repo, restore

PROJECT = Path(__file__).resolve().parents[3]

CHILD = r"""
import io, os, sys
from datetime import datetime, timezone
from pathlib import Path
from vzbackup.domain.guests import GuestRef
from vzbackup.ports import PointDraft
from vzbackup.repo.backends import open_backend
from vzbackup.repo.repository import open_chunk_repository

class Endless(io.RawIOBase):  # 400 MB: random blocks, text, zeros
    def __init__(self):
        self.left = 400 * 1024 * 1024
        self.n = 0
    def readable(self):
        return True
    def readinto(self, buf):
        n = min(len(buf), self.left, 1 << 20)
        self.n += 1
        kind = self.n % 3
        buf[:n] = os.urandom(n) if kind == 0 else (b"%d text " % self.n * n)[:n] if kind == 1 else bytes(n)
        self.left -= n
        return n

repo = open_chunk_repository("kill", open_backend(sys.argv[1]), passphrase=None,
                             cache_dir=Path(sys.argv[2]), pack_size=1 << 20)  # packs put early
writer = repo.new_point(PointDraft(GuestRef("ct", 999), "victim", "directory", "n1",
                                   datetime.now(timezone.utc)))
print("ready", flush=True)
writer.write(Endless())
writer.commit()
print("committed", flush=True)
"""


def run_and_kill(url: str, cache: Path, delay: float) -> str:
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, url, str(cache)], env=env,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
    finally:
        out, _ = child.communicate(timeout=60)
    return out


def test_sigkill_never_leaves_a_partial_point(tmp_path):
    repo = make_repo(tmp_path)
    url, cache = repo.url, tmp_path / "cache"
    rnd = random.Random(1234)
    delays = [0.0, rnd.uniform(0.05, 0.3), rnd.uniform(0.3, 0.6), rnd.uniform(0.6, 1.0),
              rnd.uniform(1.0, 1.6)]
    for delay in delays:
        out = run_and_kill(url, cache, delay)
        fresh = open_chunk_repository("t", open_backend(url), passphrase=None, cache_dir=cache)
        points = list(fresh.point_ids())
        if "committed" not in out:
            assert points == [], f"a point appeared though the backup was killed after {delay:.2f}s"
        for point_id in points:  # only a backup that finished may show, and whole
            assert fresh.verify_point(point_id, full=False).ok
        assert all(not info.key.rpartition("/")[2].startswith(".")
                   for info in fresh.backend.list())
    assert any(True for _ in fresh.backend.list("packs/"))  # the kills hit a running backup
    after = open_chunk_repository("t", open_backend(url), passphrase=None, cache_dir=cache)
    data = os.urandom(300_000) + bytes(200_000)
    manifest, _ = backup(after, data)
    assert restore(after, manifest.id) == data
    assert after.verify_point(manifest.id).ok


KILLED_AT_INDEX = r"""
import io, os, signal, sys
from datetime import datetime, timezone
from pathlib import Path
from vzbackup.domain.guests import GuestRef
from vzbackup.ports import PointDraft
from vzbackup.repo.backends import open_backend
from vzbackup.repo.repository import open_chunk_repository

backend = open_backend(sys.argv[1])
real_put = backend.put

def put(key, data):  # the process dies after its packs, before its index object
    if key.startswith("index/"):
        os.kill(os.getpid(), signal.SIGKILL)
    real_put(key, data)

backend.put = put
repo = open_chunk_repository("kill", backend, passphrase=None, cache_dir=Path(sys.argv[2]),
                             pack_size=64 * 1024)
writer = repo.new_point(PointDraft(GuestRef("ct", 999), "victim", "directory", "n1",
                                   datetime.now(timezone.utc)))
writer.write(open(sys.argv[3], "rb"))
writer.commit()
print("committed", flush=True)
"""


def test_sigkill_between_packs_and_their_index_object(tmp_path):
    repo = make_repo(tmp_path)
    data = os.urandom(400_000) + bytes(300_000)
    (tmp_path / "data").write_bytes(data)
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    child = subprocess.run([sys.executable, "-c", KILLED_AT_INDEX, repo.url,
                            str(tmp_path / "cache"), str(tmp_path / "data")],
                           env=env, capture_output=True, text=True, timeout=60)
    assert child.returncode == -signal.SIGKILL and "committed" not in child.stdout
    fresh = open_chunk_repository("t", open_backend(repo.url), passphrase=None,
                                  cache_dir=tmp_path / "cache")
    assert list(fresh.point_ids()) == [] and list(fresh.backend.list("index/")) == []
    assert len(list(fresh.backend.list("packs/"))) > 3  # garbage, invisible
    manifest, stats = backup(fresh, data)
    assert stats.new_chunks == len({c.id for c in manifest.chunks})  # nothing trusted
    assert restore(fresh, manifest.id) == data and fresh.verify_point(manifest.id).ok
    reindexed = fresh.index_unnamed_packs()  # the dead run's packs are sound: adopt them
    assert reindexed.packs > 3 and reindexed.rejected == 0
