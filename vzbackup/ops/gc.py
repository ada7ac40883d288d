"""``vzbackup repo gc`` and the collection after a prune: each repository in turn, under its
lock (two collections of one repository must never overlap; backups need no lock)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..errors import VzError
from ..ports import Clock, GcReport, JobLocks, Reporter, Repository

HOUR = 3600.0


@dataclass(frozen=True)
class GcOutcome:
    repository: str
    report: GcReport | None  # None: it failed
    error: VzError | None = None


def collect_garbage(repos: Mapping[str, Repository], names: Iterable[str], locks: JobLocks,
                    clock: Clock, reporter: Reporter, grace_hours: Mapping[str, int], *,
                    dry_run: bool = False) -> list[GcOutcome]:
    """One GC run of each repository in ``names`` that is open in ``repos``; a failure
    (repository unreachable, lock busy, unreadable manifest) is reported and the next one
    is collected."""
    out = []
    for name in names:
        repo = repos.get(name)
        if repo is None:
            continue  # not open: the caller reported why
        try:
            with locks.repository(name, "collect garbage in"):
                report = repo.collect_garbage(grace=grace_hours.get(name, 48) * HOUR,
                                              now=clock.now().timestamp(), dry_run=dry_run)
        except VzError as e:
            reporter.warning(f"garbage collection of {name}: {e}")
            out.append(GcOutcome(name, None, e))
            continue
        for warning in report.warnings:
            reporter.warning(f"{name}: {warning}")
        out.append(GcOutcome(name, report))
    return out
