"""``vzbackup daemon``: runs the config's jobs on their schedules (APScheduler 3).

- **One scheduler.** A daemon schedules only while it holds the scheduler lock: a
  PostgreSQL advisory lock when the catalogue is shared (one daemon of several, on any
  host; the others stand by and take over when its session dies), a file lock otherwise.
  Each job run also holds its job's lock, so no job runs twice at once anywhere.
- **Jobs from the config**, under deterministic ids (``plan.py``), reconciled on start and
  on SIGHUP. Coalescing, ``misfire_grace_minutes`` and one instance per job; a run missed
  while the daemon was down is made once at start when it is not too late.
- **Dump slots** (``ops.slots``) limit dumps overall and per node, across jobs.
- **SIGTERM** stops taking work and aborts running dumps: the reporter's progress callback
  raises SystemExit in the dumping threads, which unwinds the dump (tar killed, snapshot
  removed) and records the runs as aborted.
- **systemd**: READY=1 once up (leading or standing by), WATCHDOG=1, STOPPING=1, STATUS=.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from ..config import Config
from ..errors import LockBusy, VzError
from ..locks import Lease, PgLocks
from ..ops.job import run_job, verify_job
from ..ops.slots import DumpSlots
from ..ops.status import guest_status
from ..ops.summary import rpo_summary
from ..ports import Advance
from ..wiring import App, secrets_of
from .plan import Action, missed, planned
from .runlog import run_log
from .sdnotify import sd_notify, watchdog_seconds

log = logging.getLogger(__name__)

LEADER_LOCK = "scheduler"
LOCAL_LEADER = ".daemon"  # job-.daemon.lock: no job name starts with a dot
LEADER_CHECK_SECONDS = 5.0
TICK = 0.2
ABORTED = 128 + signal.SIGTERM


class DaemonReporter:
    """``ports.Reporter`` for the daemon: messages go to the log; once ``stopping`` is set,
    starting or advancing any work raises SystemExit (the run unwinds as on SIGTERM)."""

    def __init__(self, stopping: threading.Event):
        self.stopping = stopping

    def info(self, message: str) -> None:
        log.info("%s", message)

    def warning(self, message: str) -> None:
        log.warning("%s", message)

    def check(self) -> None:
        if self.stopping.is_set():
            raise SystemExit(ABORTED)

    @contextmanager
    def progress(self, description: str, total: int | None) -> Iterator[Advance]:
        self.check()
        log.info("%s", description)

        def advance(n: int) -> None:
            self.check()

        yield advance


class _LocalLease:
    """The scheduler lock on one host (a file lock held until released)."""

    def __init__(self, stack: ExitStack):
        self._stack = stack

    def alive(self) -> bool:
        return True

    def release(self) -> None:
        self._stack.close()


class Daemon:
    def __init__(self, load: Callable[[], Config]):
        self.load = load
        self.stopping = threading.Event()
        self.reporter = DaemonReporter(self.stopping)
        self.app = App(load(), self.reporter)
        self.slots = self._slots(self.app.config)
        self.pg = PgLocks(self.app.config.catalog_url) if self.app.shared_catalog else None
        self.lease: Lease | _LocalLease | None = None
        self.scheduler: BackgroundScheduler | None = None
        self.actions: dict[str, Action] = {}
        self._catch_up: set[str] = set()
        self._alerted: set[str] = set()

    @staticmethod
    def _slots(config: Config) -> DumpSlots:
        return DumpSlots(config.daemon.max_parallel_dumps, config.daemon.max_parallel_dumps_per_node)

    @property
    def leading(self) -> bool:
        return self.scheduler is not None

    # ---- leadership --------------------------------------------------------------------

    def try_lead(self) -> bool:
        """Lead if possible; step down if the lock was lost. True while leading."""
        if self.lease is not None:
            if self.lease.alive():
                return True
            log.error("lost the scheduler lock (the catalogue connection died): standing by")
            self._step_down()
            return False
        self.lease = self._take_lease()
        if self.lease is None:
            return False
        actions = planned(self.app.config)
        log.info("this daemon is the scheduler (%d actions)", len(actions))
        if not actions:
            log.warning("no enabled [jobs.NAME] in %s: nothing to schedule", self.app.config.path)
        self._start_scheduling()
        return True

    def _take_lease(self) -> Lease | _LocalLease | None:
        if self.pg is not None:
            try:
                return self.pg.try_lease(LEADER_LOCK)
            except VzError as e:
                log.warning("cannot reach the catalogue to take the scheduler lock: %s", e)
                return None
        stack = ExitStack()
        try:
            stack.enter_context(self.app.locks.job(LOCAL_LEADER, "schedule"))
        except LockBusy as e:
            log.warning("another daemon schedules on this host: %s", e)
            return None
        return _LocalLease(stack)

    def _step_down(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
            self.scheduler = None
        if self.lease is not None:
            self.lease.release()
            self.lease = None

    # ---- the schedule --------------------------------------------------------------------

    def _start_scheduling(self) -> None:
        grace = self.app.config.daemon.misfire_grace_minutes * 60
        self.scheduler = BackgroundScheduler(
            timezone=timezone.utc, executors={"default": ThreadPoolExecutor(32)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": grace})
        self.reconcile()
        self.scheduler.start()
        self._catch_up_missed()

    def reconcile(self) -> None:
        """Make the scheduled actions those of the config: unchanged ones keep their next
        run time, changed ones are replaced, removed ones go."""
        assert self.scheduler is not None
        desired = {a.id: a for a in planned(self.app.config)}
        for job in self.scheduler.get_jobs():
            if job.id.startswith("job:") and job.id not in desired:
                log.info("unscheduled %s", job.id)
                job.remove()
        for a in desired.values():
            existing = self.scheduler.get_job(a.id)
            if existing is not None and existing.name == a.spec:
                continue
            self.scheduler.add_job(self._scheduled, a.trigger(), args=[a.id], id=a.id,
                                   name=a.spec, replace_existing=True)
            log.info("scheduled %s at %s", a.id, a.spec)
        self.actions = desired
        minutes = self.app.config.daemon.rpo_check_minutes
        self.scheduler.add_job(self.check_rpo, IntervalTrigger(minutes=minutes), id="rpo-check",
                               name=f"every {minutes} min", replace_existing=True)

    def _catch_up_missed(self) -> None:
        assert self.scheduler is not None
        now = self.app.clock.now()
        grace = timedelta(minutes=self.app.config.daemon.misfire_grace_minutes)
        last = self._last_started()
        for a in self.actions.values():
            due = missed(a, last.get((a.job, a.action)), now, grace)
            if due is not None:
                log.info("%s was due at %s while no daemon ran: running it now", a.id,
                         due.isoformat())
                self._catch_up.add(a.id)
                self.scheduler.modify_job(a.id, next_run_time=now)

    def _last_started(self) -> dict[tuple[str, str], datetime]:
        found: dict[tuple[str, str], datetime] = {}
        for run in self.app.catalog.runs(500, kind="job"):  # newest first
            key = (str(run.args.get("job")), str(run.args.get("action", "backup")))
            found.setdefault(key, run.started)
        return found

    def reload(self) -> None:
        """SIGHUP: read the config again; keep the old one if the new one is invalid."""
        try:
            app = App(self.load(), self.reporter)
        except VzError as e:
            log.error("SIGHUP: the configuration is invalid, keeping the old one: %s", e)
            return
        self.app = app
        self.slots = self._slots(app.config)  # running jobs keep the slots they started with
        if self.scheduler is not None:
            self.reconcile()
        log.info("SIGHUP: configuration reloaded (%d actions)", len(self.actions))

    # ---- doing the work ----------------------------------------------------------------------

    def _scheduled(self, action_id: str) -> None:
        action = self.actions.get(action_id)
        if action is None:
            return
        trigger = "catch-up" if action_id in self._catch_up else "schedule"
        self._catch_up.discard(action_id)
        self.fire(action.job, action.action, trigger)

    def fire(self, job_name: str, action: str = "backup", trigger: str = "schedule") -> Any:
        """Run one job action now in this thread; errors are logged, never raised."""
        app = self.app
        job = app.config.jobs.get(job_name)
        if job is None or self.stopping.is_set():
            return None
        name = f"vzbackup-job:{job_name}:{action}"  # ':' is in no job name
        with run_log(app.config.state_dir, name, secrets_of(app.config)) as rl:
            env = dataclasses.replace(app.job_env(self.slots, self.reporter),
                                      on_started=rl.started)
            try:
                result = (run_job if action == "backup" else verify_job)(job, env, trigger)
            except LockBusy as e:
                log.warning("job %s %s skipped: %s", job_name, action, e)
                return None
            except SystemExit:
                log.warning("job %s %s aborted: vzbackup is stopping", job_name, action)
                return None
            except VzError as e:
                log.error("job %s %s failed: %s", job_name, action, e)
                return None
            except Exception:
                log.exception("job %s %s: unexpected error", job_name, action)
                return None
        log.info("job %s %s: %s (run %s)", job_name, action, result.status, result.run_id)
        return result

    def check_rpo(self) -> None:
        """Alert once about guests newly past their RPO; rewrite the metrics file."""
        app = self.app
        try:
            status = guest_status(app.catalog, app.config.jobs, app.clock.now())
            late = [s for s in status if s.past_rpo]
            new = {s.guest for s in late} - self._alerted
            self._alerted = {s.guest for s in late}
            notifier = app.notifier()
            if new and notifier is not None and app.config.alerts.notify != "never":
                for problem in notifier.send(*rpo_summary(late, app.clock.now())):
                    log.warning("RPO alert not delivered: %s", problem)
            app.write_metrics()
        except VzError as e:
            log.error("RPO check failed: %s", e)

    # ---- the process ------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop taking work, abort what runs (dumps unwind, runs recorded aborted), let go."""
        self.stopping.set()
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=True)
            self.scheduler = None
        if self.lease is not None:
            self.lease.release()
            self.lease = None
        if self.pg is not None:
            self.pg.close()

    def serve(self) -> int:
        """The main loop until SIGTERM or SIGINT; SIGHUP reloads the configuration."""
        flags = {"stop": False, "reload": False}

        def on_stop(signum, frame):  # noqa: ANN001
            flags["stop"] = True

        def on_hup(signum, frame):  # noqa: ANN001
            flags["reload"] = True

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)
        watchdog = watchdog_seconds()
        next_check = next_watchdog = 0.0
        ready = False
        while not flags["stop"]:
            now = time.monotonic()
            if flags["reload"]:
                flags["reload"] = False
                self.reload()
            if now >= next_check:
                was = self.leading
                leading = self.try_lead()
                if not ready or leading != was:
                    sd_notify("STATUS=" + ("scheduling" if leading else "standing by"))
                if not ready:
                    sd_notify("READY=1")
                    ready = True
                    log.info("vzbackup daemon ready (%s)", "scheduling" if leading else "standing by")
                poll = self.app.config.daemon.standby_poll_seconds
                next_check = now + (LEADER_CHECK_SECONDS if leading else poll)
            if watchdog and now >= next_watchdog:
                sd_notify("WATCHDOG=1")
                next_watchdog = now + watchdog
            time.sleep(TICK)
        log.info("stopping: no new work; aborting running dumps")
        sd_notify("STOPPING=1")
        self.stop()
        log.info("vzbackup daemon stopped")
        return 0
