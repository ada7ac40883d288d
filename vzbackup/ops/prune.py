"""``vzbackup prune``: what retention keeps and removes, and why; then the removal.

For each guest and each repository holding its points, the policy in force is judged with
Proxmox VE's prune-backups semantics (``domain.retention``). Never removed, whatever the
policy: protected points (label ``protected=1``), each guest's newest verified point
(a copy checked ``ok``), points a recorded clone was made from, and the points a recorded
branch was made from or ships.

Removal (:func:`apply_prune`), per repository under its lock: each manifest is deleted,
then the catalogue forgets the copy (killed in between, the next prune finds the same
verdict and finishes; a verify meanwhile reports the copy missing). Then garbage collection
(``ops/gc.py``) takes the space back: one grace period later, by its two phases.

Which policy applies to a guest's points in a repository (as in PVE, a job's
``prune-backups`` wins over its storage's):

1. a job covering the guest whose own repository it is, and that sets any keep-*;
2. else the repository's ``[retention.REPO]``;
3. else a job covering the guest that replicates to it and sets any keep-*;
4. else nothing is removed (keep-all).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..config.model import JobConfig, RetentionConfig
from ..domain.branch import BranchRecord
from ..domain.clone import CloneRecord
from ..domain.guests import GuestRef
from ..domain.points import RestorePoint
from ..domain.retention import Policy, Verdict, judge
from ..errors import RepositoryError, VzError
from ..ports import Catalog, Clock, JobLocks, Node, Reporter, Repository, RepositoryAccess
from ..results import GuestOutcome, RunResult
from .gc import GcOutcome, collect_garbage
from .outcome import attempt, recorded_run

PROTECTED_LABEL = "protected"


@dataclass(frozen=True)
class PolicyInForce:
    policy: Policy
    timezone: str
    source: str  # "job nightly", "retention.offsite", "default (keep-all)"


@dataclass(frozen=True)
class PruneItem:
    guest: GuestRef
    repository: str
    policy: str  # PVE notation
    source: str
    point: str
    created: str  # ISO 8601, UTC
    decision: str  # keep | remove
    reason: str


def policy_in_force(repository: str, jobs: Iterable[JobConfig],
                    retention: Mapping[str, RetentionConfig]) -> PolicyInForce:
    jobs = [j for j in jobs if not j.policy.keeps_everything]
    own = [j for j in jobs if j.repository == repository]
    if own:
        return PolicyInForce(own[0].policy, own[0].timezone, f"job {own[0].name}")
    if repository in retention:
        r = retention[repository]
        return PolicyInForce(r.policy, r.timezone, f"retention.{repository}")
    replicating = [j for j in jobs if repository in j.replicate_to]
    if replicating:
        j = replicating[0]
        return PolicyInForce(j.policy, j.timezone, f"job {j.name} (replica)")
    return PolicyInForce(Policy(), "UTC", "default (keep-all)")


def plan_prune(points: list[RestorePoint], covering: Mapping[GuestRef, list[JobConfig]],
               retention: Mapping[str, RetentionConfig],
               repositories: Iterable[str] | None = None,
               lineage: Iterable[CloneRecord] = (),
               branches: Iterable[BranchRecord] = ()) -> list[PruneItem]:
    """Every copy of ``points`` (in ``repositories``, or all) with its verdict. A point a
    clone in ``lineage`` was made from, or a branch in ``branches`` depends on, is pinned."""
    depended = {**clone_pins(lineage)}
    for pid, why in branch_pins(branches).items():
        depended[pid] = f"{depended[pid]}; {why}" if pid in depended else why
    wanted = set(repositories) if repositories is not None else None
    by_guest: dict[GuestRef, list[RestorePoint]] = {}
    for p in points:
        by_guest.setdefault(p.guest, []).append(p)
    items: list[PruneItem] = []
    for guest in sorted(by_guest):
        mine = by_guest[guest]
        pins = {**newest_verified(mine), **{p.id: depended[p.id] for p in mine if p.id in depended}}
        protected = {p.id for p in mine if is_protected(p)}
        repos = sorted({c.repository for p in mine for c in p.copies})
        for repo in repos:
            if wanted is not None and repo not in wanted:
                continue
            force = policy_in_force(repo, covering.get(guest, []), retention)
            held = [(p.id, p.created) for p in mine if any(c.repository == repo for c in p.copies)]
            for v in judge(held, force.policy, tz=force.timezone, protected=protected,
                           pinned=pins):
                items.append(_item(guest, repo, force, v))
    return items


def clone_pins(lineage: Iterable[CloneRecord]) -> dict[str, str]:
    """Points clones depend on -> why they are pinned."""
    pins: dict[str, list[str]] = {}
    for c in lineage:
        pins.setdefault(c.point_id, []).append(str(c.clone))
    return {pid: f"clone {', '.join(sorted(set(names)))} depends on it"
            for pid, names in pins.items()}


def branch_pins(branches: Iterable[BranchRecord]) -> dict[str, str]:
    """Points branches depend on (made from, or shipped) -> why they are pinned."""
    pins: dict[str, set[str]] = {}
    for b in branches:
        for m in b.members:
            for pid in {m.point_id, m.shipped_id}:
                pins.setdefault(pid, set()).add(b.name)
    return {pid: f"branch {', '.join(sorted(names))} depends on it" for pid, names in pins.items()}


def newest_verified(points: list[RestorePoint]) -> dict[str, str]:
    """The guest's newest point with a copy verified ``ok`` -> why it is pinned."""
    verified = [p for p in points if any(c.state == "ok" and c.verified_at for c in p.copies)]
    newest = max(verified, key=lambda p: p.created, default=None)
    return {newest.id: "newest verified point"} if newest else {}


def is_protected(point: RestorePoint) -> bool:
    return point.labels.get(PROTECTED_LABEL, "").lower() in ("1", "true", "yes")


def _item(guest: GuestRef, repo: str, force: PolicyInForce, v: Verdict) -> PruneItem:
    return PruneItem(guest, repo, force.policy.describe(), force.source, v.key,
                     v.created.isoformat(), v.decision, v.reason)


def apply_prune(plan: list[PruneItem], repos: Mapping[str, Repository], catalog: Catalog,
                locks: JobLocks, reporter: Reporter, clock: Clock,
                grace_hours: Mapping[str, int], *, gc: bool = True,
                run_args: dict | None = None, nodes: Mapping[str, Node] | None = None,
                access: RepositoryAccess | None = None) -> tuple[RunResult, list[GcOutcome]]:
    """Remove the copies ``plan`` says to remove (one item per copy), then collect garbage
    in every repository the plan covers (unless ``gc`` is false)."""
    removals = [i for i in plan if i.decision == "remove"]
    covered = sorted({i.repository for i in plan})
    args = {"remove": len(removals), "repositories": covered, **(run_args or {})}
    with recorded_run(catalog, clock, "prune", args) as run:
        for name in covered:
            mine = [i for i in removals if i.repository == name]
            if mine:
                _remove_in(name, mine, repos.get(name), catalog, locks, run)
        collected = collect_garbage(repos, covered, locks, clock, reporter, grace_hours,
                                    nodes=nodes, access=access) if gc else []
        for c in collected:
            if c.error is not None:
                run.add_outcome(GuestOutcome("*", c.repository, "failed", error=type(c.error).__name__,
                                             exit_code=c.error.exit_code,
                                             message=f"garbage collection: {c.error}",
                                             hint=c.error.hint))
        details = {"removed": sum(1 for o in run.items if o.status == "ok"),
                   "kept": len(plan) - len(removals),
                   "gc": {c.repository: dataclasses.asdict(c.report)
                          for c in collected if c.report is not None}}
    return run.result(details), collected


def _remove_in(name: str, items: list[PruneItem], repo: Repository | None, catalog: Catalog,
               locks: JobLocks, run) -> None:
    if repo is None:
        for item in items:
            run.add_outcome(_kept_because(item, f"repository {name} could not be opened"))
        return
    try:
        with locks.repository(name, "prune"):
            for item in items:
                with attempt(str(item.guest), name) as a:
                    repo.remove_point(item.point)
                    catalog.forget_copy(item.point, name)
                    a.tally.point_id = item.point
                run.add(a)
    except VzError as e:  # the lock: another prune or GC of this repository is running
        for item in items:
            run.add_outcome(_kept_because(item, str(e), e))


def _kept_because(item: PruneItem, why: str, error: VzError | None = None) -> GuestOutcome:
    return GuestOutcome(str(item.guest), item.repository, "failed", point_id=item.point,
                        error=type(error).__name__ if error else "RepositoryError",
                        exit_code=error.exit_code if error else RepositoryError.exit_code,
                        message=f"not removed: {why}", hint=error.hint if error else None)
