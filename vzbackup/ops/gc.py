"""``vzbackup repo gc`` and the collection after a prune: each repository in turn, under its
lock (two collections of one repository must never overlap; backups need no lock). A
repository on an SSH node's own disk is collected by that node (``vzbackup agent``): the
packs a repack reads never cross the network."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..errors import VzError
from ..ports import Clock, GcReport, JobLocks, Node, Reporter, Repository, RepositoryAccess
from .outcome import home_node

HOUR = 3600.0


@dataclass(frozen=True)
class GcOutcome:
    repository: str
    report: GcReport | None  # None: it failed
    error: VzError | None = None
    ran_on: str = "controller"  # or the node whose own disk holds the repository


def collect_garbage(repos: Mapping[str, Repository], names: Iterable[str], locks: JobLocks,
                    clock: Clock, reporter: Reporter, grace_hours: Mapping[str, int], *,
                    dry_run: bool = False, nodes: Mapping[str, Node] | None = None,
                    access: RepositoryAccess | None = None) -> list[GcOutcome]:
    """One GC run of each repository in ``names`` that is open in ``repos``; a failure
    (repository unreachable, lock busy, unreadable manifest) is reported and the next one
    is collected."""
    out = []
    for name in names:
        repo = repos.get(name)
        if repo is None:
            continue  # not open: the caller reported why
        on = home_node(repo, nodes or {}, access)
        grace, now = grace_hours.get(name, 48) * HOUR, clock.now().timestamp()
        try:
            with locks.repository(name, "collect garbage in"):
                if on is None:
                    report = repo.collect_garbage(grace=grace, now=now, dry_run=dry_run)
                else:
                    report = _collect_on(on, grace, now, dry_run)
        except VzError as e:
            reporter.warning(f"garbage collection of {name}: {e}")
            out.append(GcOutcome(name, None, e))
            continue
        for warning in report.warnings:
            reporter.warning(f"{name}: {warning}")
        out.append(GcOutcome(name, report, ran_on=on[0].name if on else "controller"))
    return out


def _collect_on(on: tuple[Node, dict], grace: float, now: float, dry_run: bool) -> GcReport:
    node, spec = on
    done = node.agent.run({"op": "gc", "repository": spec, "grace": grace,  # type: ignore[union-attr]
                           "now": now, "dry_run": dry_run})
    return GcReport(**{**done, "index_objects": tuple(done["index_objects"])})
