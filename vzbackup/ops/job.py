"""``vzbackup run JOB``: what the daemon does when a job's time comes.

A job run is one run in the catalogue (kind ``job``) whose items are one outcome per guest,
and whose steps are runs of their own, tagged with the job's run id:

1. back up the job's guests (in parallel, within the dump slots) to its repository;
2. replicate the guests' points to each of its replicas;
3. verify the copies the run wrote (``verify_after``);
4. prune the job's guests in its repositories (when retention says so), then collect
   garbage there (``ops/prune.py``, ``ops/gc.py``);
5. drop expired checkpoints (of any guest: expiry is the daemon's to enforce).

A guest's outcome is its backup's, made ``failed`` by the first later step that failed for
it. One summary per run goes to the notifier. ``verify_job`` is the scheduled verification.
An interruption (SIGTERM) aborts the steps: the runs are recorded ``aborted`` and the
summary says so.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..config.model import JobConfig, RetentionConfig
from ..errors import VzError
from ..ports import (Catalog, Clock, DumpSlots, JobLocks, Locks, Node, Notifier, Reporter,
                     Repository, RepositoryAccess)
from ..results import GuestOutcome, RunResult
from .backup import backup
from .checkpoint import drop as drop_checkpoints
from .membership import covering_jobs
from .outcome import attempt, recorded_run
from .prune import apply_prune, plan_prune
from .replicate import replicate
from .selection import select_for_job
from .summary import job_summary
from .verify import verify

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobEnv:
    """The ports a job needs (built by ``wiring.App.job_env``)."""

    nodes: Mapping[str, Node]
    open_repository: Callable[[str], Repository]
    open_replica: Callable[[str, str], Repository]  # (name, source): an empty one made a replica
    catalog: Catalog
    locks: Locks
    job_locks: JobLocks
    reporter: Reporter
    clock: Clock
    labels: Mapping[str, str]
    retention: Mapping[str, RetentionConfig]
    jobs: Mapping[str, JobConfig]
    notify: str = "never"  # always | failure | never
    notifier: Notifier | None = None
    access: RepositoryAccess | None = None
    slots: DumpSlots | None = None
    after_run: Callable[[], None] | None = None  # e.g. rewrite the metrics file
    on_started: Callable[[int], None] | None = None  # told the job run's id (its log file)
    gc_grace_hours: Mapping[str, int] = dataclasses.field(default_factory=dict)


def run_job(job: JobConfig, env: JobEnv, trigger: str = "manual") -> RunResult:
    """Back up, replicate and verify the job's guests; one summary. ``LockBusy`` when the
    job is already running (here or, with PostgreSQL, on another host)."""
    with env.job_locks.job(job.name, "run"):
        return _recorded(job, env, "backup", trigger, _backup_steps)


def verify_job(job: JobConfig, env: JobEnv, trigger: str = "manual") -> RunResult:
    """Re-verify every copy of the job's guests' points in its repositories."""
    with env.job_locks.job(f"{job.name}.verify", "verify"):
        return _recorded(job, env, "verify", trigger, _verify_steps)


Steps = Callable[[JobConfig, JobEnv, dict], "list[RunResult]"]


def _recorded(job: JobConfig, env: JobEnv, action: str, trigger: str, steps: Steps) -> RunResult:
    args = {"job": job.name, "action": action, "trigger": trigger}
    with recorded_run(env.catalog, env.clock, "job", args) as run:
        tag = {"job": job.name, "job_run": run.run_id}
        if env.on_started is not None:
            env.on_started(run.run_id)
        try:
            done = steps(job, env, tag)
        except BaseException as e:  # SIGTERM: the steps are recorded aborted, and so is this run
            why = ("vzbackup was stopped" if isinstance(e, (SystemExit, KeyboardInterrupt))
                   else f"{type(e).__name__}: {e}")
            _send(env, RunResult("job", "error", (), run.run_id, {**args, "aborted": why}))
            raise
        for outcome in merge_steps(done):
            run.add_outcome(outcome)
        details = {**args, "steps": [{"kind": r.kind, "run_id": r.run_id, "status": r.status}
                                     for r in done],
                   **_pruned(done), **_expire_checkpoints(job, env, action)}
    result = run.result(details)
    _send(env, result)
    if env.after_run is not None:
        env.after_run()
    return result


def _backup_steps(job: JobConfig, env: JobEnv, tag: dict) -> list[RunResult]:
    done: list[RunResult] = []
    repo = _open(env, job.repository, None, done, tag)
    if repo is None:
        return done
    selection = select_for_job(env.nodes, job)
    labels = {**env.labels, "job": job.name, "mode": job.mode}
    done += [backup(selection, repo, env.catalog, env.locks, env.reporter, env.clock, labels,
                   access=env.access, slots=env.slots, run_args=tag)]
    guests = {t.guest.ref for t in selection.targets}
    repos = {job.repository: repo}
    for name in job.replicate_to:
        target = _open(env, name, job.repository, done, tag)
        if target is None:
            continue
        points = [p for p in env.catalog.points() if p.guest in guests
                  and any(c.repository == job.repository for c in p.copies)]
        done.append(replicate(points, repos, target, env.catalog, env.reporter, env.clock,
                              nodes=env.nodes, access=env.access, run_args=tag))
        repos[name] = target
    new = {o.point_id for o in done[0].items if o.status == "ok" and o.point_id}
    if job.verify_after != "none" and new:
        points = [p for p in env.catalog.points() if p.id in new]
        done.append(verify(points, repos, env.catalog, env.reporter, env.clock,
                           full=job.verify_after == "full", nodes=env.nodes, access=env.access,
                           run_args=tag))
    done += _prune_step(job, env, repos, tag)
    return done


def _verify_steps(job: JobConfig, env: JobEnv, tag: dict) -> list[RunResult]:
    covering = covering_jobs({job.name: job}, env.catalog)
    guests = {ref for ref, jobs in covering.items() if jobs}
    repos = {}
    done: list[RunResult] = []
    for name in job.repositories:
        opened = _open(env, name, None, done, tag)
        if opened is not None:
            repos[name] = opened
    points = [p for p in env.catalog.points() if p.guest in guests]
    done.append(verify(points, repos, env.catalog, env.reporter, env.clock,
                       full=job.verify_level == "full", nodes=env.nodes, access=env.access,
                       run_args=tag))
    return done


def _open(env: JobEnv, name: str, source: str | None, done: list[RunResult],
          tag: dict) -> Repository | None:
    """Open a repository; one that cannot be opened is a failed step of its own."""
    with attempt("*", name) as a:
        return env.open_replica(name, source) if source else env.open_repository(name)
    with recorded_run(env.catalog, env.clock, "open", {"repository": name, **tag}) as run:
        run.add(a)
    done.append(run.result())
    return None


def merge_steps(steps: list[RunResult]) -> list[GuestOutcome]:
    """One outcome per guest: its first step's (the backup's), failed by the first failure
    of a later step; a failure outside the backup names its step."""
    merged: dict[str, GuestOutcome] = {}
    order: list[str] = []
    for step in steps:
        for o in step.items:
            key = o.guest if o.guest != "*" else f"*{o.node}"
            if key not in merged:
                merged[key] = _named(o, step.kind)
                order.append(key)
            elif o.status == "failed" and merged[key].status == "ok":
                named = _named(o, step.kind)
                merged[key] = dataclasses.replace(
                    merged[key], status="failed", error=named.error, exit_code=named.exit_code,
                    message=named.message, hint=named.hint)
    return [merged[k] for k in order]


def _named(o: GuestOutcome, kind: str) -> GuestOutcome:
    """A failure of a step other than the backup, its message naming the step."""
    if o.status != "failed" or kind == "backup":
        return o
    where = f" {o.node}" if o.node else ""
    return dataclasses.replace(o, message=f"{kind}{where}: {o.message}")


def _expire_checkpoints(job: JobConfig, env: JobEnv, action: str) -> dict:
    if action != "backup":
        return {}
    try:
        notes_to: Repository | None = env.open_repository(job.repository)
    except VzError:
        notes_to = None  # the backup step already said why
    result = drop_checkpoints(env.catalog, dict(env.nodes), env.locks, env.reporter, env.clock,
                              expired=True, notes_to=notes_to)
    return {"checkpoints_expired_dropped": len(result.dropped),
            "checkpoints_expired_failed": len(result.failed)}


def _prune_step(job: JobConfig, env: JobEnv, repos: Mapping[str, Repository],
                tag: dict) -> list[RunResult]:
    """Retention for the job's guests in its repositories, then GC there; nothing when the
    job keeps everything and no [retention.REPO] covers its repositories."""
    if job.policy.keeps_everything and not any(r in env.retention for r in job.repositories):
        return []
    covering = covering_jobs(env.jobs or {job.name: job}, env.catalog)
    guests = {ref for ref, jobs in covering.items() if job in jobs}
    points = [p for p in env.catalog.points() if p.guest in guests]
    plan = plan_prune(points, covering, env.retention, [r for r in job.repositories if r in repos],
                      env.catalog.clones(), env.catalog.branches())
    result, _ = apply_prune(plan, repos, env.catalog, env.job_locks, env.reporter, env.clock,
                            env.gc_grace_hours, run_args=tag, nodes=env.nodes,
                            access=env.access)
    removed = result.details["removed"]
    if removed:
        env.reporter.info(f"job {job.name}: retention removed {removed} restore point copies")
    return [result]


def _pruned(done: list[RunResult]) -> dict:
    pruned = [r for r in done if r.kind == "prune"]
    if not pruned:
        return {}
    gc = pruned[0].details.get("gc", {})
    return {"pruned": pruned[0].details.get("removed", 0),
            "gc_freed_bytes": sum(r["deleted_bytes"] + r["unnamed_bytes"] for r in gc.values()),
            "gc_waiting_bytes": sum(r["pending_bytes"] for r in gc.values())}


def _send(env: JobEnv, result: RunResult) -> None:
    failed = result.status != "success" or result.details.get("aborted")
    if env.notifier is None or env.notify == "never" or (env.notify == "failure" and not failed):
        return
    subject, text, document = job_summary(result, env.clock.now())
    try:
        problems = env.notifier.send(subject, text, document)
    except VzError as e:
        problems = [str(e)]
    for problem in problems:
        env.reporter.warning(f"summary of job {result.details.get('job')} not delivered: {problem}")
