"""The daemon in this process: catch-up after downtime, reconcile on reload, one scheduler
per state folder, and stopping in the middle of a dump."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

from freezegun import freeze_time

from vzbackup.catalog import open_catalog
from vzbackup.config import load_config
from vzbackup.scheduler.daemon import Daemon

JOB = """
[jobs.nightly]
schedule = "30 2 * * *"
timezone = "Europe/Berlin"
guests = ["ct101"]
[daemon]
misfire_grace_minutes = 360
"""


def daemon_for(lab) -> Daemon:
    return Daemon(lambda: load_config(lab.config))


def job_runs(lab) -> list:
    catalog = open_catalog(f"sqlite:///{lab.root / 'state' / 'catalog.db'}")
    try:
        return [r for r in catalog.runs(50, kind="job")]
    finally:
        catalog.close()


def wait_for(what, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_a_night_missed_while_down_runs_once_at_start(lab):
    lab.config.write_text(lab.config.read_text() + JOB)
    lab.ok("repo", "init")
    with freeze_time("2026-11-20T01:31:00Z"):  # the night of the 20th ran
        lab.ok("run", "nightly")
    # down from then until the 21st, 04:00 UTC: 02:30 Berlin (01:30 UTC) was missed
    with freeze_time("2026-11-21T04:00:00Z", tick=True):
        d = daemon_for(lab)
        try:
            assert d.try_lead()
            runs = wait_for(lambda: [r for r in job_runs(lab) if r.args["trigger"] == "catch-up"
                                     and r.status != "running"])
            assert len(runs) == 1 and runs[0].status == "success"
            job = d.scheduler.get_job("job:nightly:backup")
            assert job.next_run_time == datetime(2026, 11, 22, 1, 30, tzinfo=timezone.utc)
        finally:
            d.stop()
    assert len(job_runs(lab)) == 2


def test_a_miss_older_than_the_grace_time_waits_for_the_next_night(lab):
    lab.config.write_text(lab.config.read_text() + JOB)
    lab.ok("repo", "init")
    with freeze_time("2026-11-20T01:31:00Z"):
        lab.ok("run", "nightly")
    with freeze_time("2026-11-21T09:00:00Z"):  # 7.5 h late: more than 6 h of grace
        d = daemon_for(lab)
        try:
            assert d.try_lead()
            assert not d._catch_up
            job = d.scheduler.get_job("job:nightly:backup")
            assert job.next_run_time == datetime(2026, 11, 22, 1, 30, tzinfo=timezone.utc)
        finally:
            d.stop()
    assert len(job_runs(lab)) == 1


def test_reload_reconciles_the_schedule(lab):
    lab.config.write_text(lab.config.read_text() + JOB
                          + '[jobs.web]\nschedule = "0 * * * *"\nall = true\n'
                          + 'verify_schedule = "0 12 * * 6"\n')
    d = daemon_for(lab)
    try:
        assert d.try_lead()
        ids = sorted(j.id for j in d.scheduler.get_jobs())
        assert ids == ["job:nightly:backup", "job:web:backup", "job:web:verify", "rpo-check"]
        kept = d.scheduler.get_job("job:nightly:backup").next_run_time
        text = lab.config.read_text().replace('"0 * * * *"', '"15 * * * *"')
        lab.config.write_text(text.replace('verify_schedule = "0 12 * * 6"\n', ""))
        d.reload()
        assert sorted(j.id for j in d.scheduler.get_jobs()) == [
            "job:nightly:backup", "job:web:backup", "rpo-check"]
        assert d.scheduler.get_job("job:web:backup").name == "15 * * * * (UTC)"
        assert d.scheduler.get_job("job:nightly:backup").next_run_time == kept
        lab.config.write_text("[broken")
        d.reload()  # an invalid config is refused; the schedule stays
        assert d.scheduler.get_job("job:web:backup") is not None
    finally:
        d.stop()


def test_one_scheduler_per_state_folder(lab):
    lab.config.write_text(lab.config.read_text() + JOB)
    first, second = daemon_for(lab), daemon_for(lab)
    try:
        assert first.try_lead()
        assert not second.try_lead()
        first.stop()
        assert second.try_lead()
    finally:
        first.stop()
        second.stop()


def test_stopping_aborts_a_running_dump_and_records_it(lab):
    lab.add_random_vm("node1", 300, 320)
    lab.config.write_text(lab.config.read_text() + JOB.replace('["ct101"]', '["vm300"]'))
    lab.ok("repo", "init")
    d = daemon_for(lab)
    worker = threading.Thread(target=d.fire, args=("nightly",))
    worker.start()
    packs = lab.root / "repo" / "packs"
    deadline = time.monotonic() + 60
    while not any(p.is_file() for p in packs.rglob("*")) and time.monotonic() < deadline:
        time.sleep(0.01)  # well inside the dump: streaming into the repository (first pack)
    started = time.monotonic()
    d.stop()
    worker.join(30)
    assert not worker.is_alive() and time.monotonic() - started < 10
    runs = {r.kind: r for r in open_catalog(
        f"sqlite:///{lab.root / 'state' / 'catalog.db'}").runs(10)}
    assert runs["job"].status == "aborted" and runs["backup"].status == "aborted"
    assert lab.ok("points", "--json").json() == []
    assert not list(lab.node("node1").glob(".restore-*"))
    assert (lab.root / "state" / "locks" / "vm300.lock").stat().st_size == 0  # unlocked


def test_rpo_check_alerts_once_per_guest_newly_late(lab):
    sent = []

    class Recorder:
        def send(self, subject, text, document):
            sent.append(document)
            return []

    lab.config.write_text(lab.config.read_text() + JOB.replace("[daemon]", "rpo_hours = 1\n[daemon]"))
    lab.ok("repo", "init")
    lab.ok("run", "nightly")
    d = daemon_for(lab)
    d.app.notifier = lambda: Recorder()
    d.check_rpo()
    assert sent == []
    with freeze_time(datetime.now(timezone.utc) + timedelta(hours=2)):
        d.check_rpo()
        d.check_rpo()
    assert [[g["guest"] for g in doc["guests"]] for doc in sent] == [["ct101"]]
    assert sent[0]["event"] == "rpo"
