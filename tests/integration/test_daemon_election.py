"""Daemons sharing a PostgreSQL catalogue: exactly one schedules; a job fired by two at
once (a takeover race) runs once; a scheduler whose session dies steps down and another
takes over."""

from __future__ import annotations

import threading

import psycopg
import pytest

from demo.guestdata import make_container
from vzbackup.catalog import open_catalog
from vzbackup.config import load_config
from vzbackup.locks import advisory_key
from vzbackup.scheduler.daemon import LEADER_LOCK, Daemon

pytestmark = pytest.mark.server


@pytest.fixture
def shared(tmp_path, pg_url):
    make_container(tmp_path / "node1", 101, "web1", files=400, mib=24, seed=1)
    config = tmp_path / "vzbackup.toml"
    config.write_text(f"""
[state]
dir = "state"
[catalog]
url = "{pg_url}"
[backup]
repository = "main"
[nodes.node1]
root = "node1"
[repositories.main]
url = "file://repo"
[jobs.nightly]
schedule = "30 2 * * *"
all = true
""")
    first = Daemon(lambda: load_config(config))
    first.app.init_repository("main")
    return config, first, pg_url


def test_one_leader_and_a_job_fired_twice_runs_once(shared):
    config, first, pg_url = shared
    second = Daemon(lambda: load_config(config))
    try:
        assert first.try_lead()
        assert not second.try_lead()
        results = []
        threads = [threading.Thread(target=lambda d=d: results.append(d.fire("nightly")))
                   for d in (first, second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sum(1 for r in results if r is not None) == 1  # the other: LockBusy, skipped
        catalog = open_catalog(pg_url)
        jobs = catalog.runs(20, kind="job")
        catalog.close()
        assert len(jobs) == 1 and jobs[0].status == "success"
    finally:
        first.stop()
        second.stop()


def test_a_scheduler_whose_session_dies_steps_down(shared):
    config, first, pg_url = shared
    second = Daemon(lambda: load_config(config))
    try:
        assert first.try_lead() and not second.try_lead()
        url = pg_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(url, autocommit=True) as conn:  # as if the host died
            key = advisory_key(LEADER_LOCK) & 0xFFFFFFFFFFFFFFFF  # bigint key: two oids
            killed = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                "AND classid = %s AND objid = %s AND objsubid = 1 AND granted",
                (key >> 32, key & 0xFFFFFFFF)).fetchall()
        assert killed == [(True,)]
        assert not first.try_lead() and first.scheduler is None
        assert second.try_lead() and second.scheduler is not None
    finally:
        first.stop()
        second.stop()
