"""``vzbackup restore``: bring a guest back from a restore point onto a node.

The point's copies are tried in order; a copy that fails verification is marked corrupt
in the catalogue and the next one is tried. The platform installs the guest only after the
whole stream has been read and verified, so a bad copy never replaces anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from ..domain.guests import GuestRef
from ..domain.placement import nearest_first
from ..domain.points import RestorePoint, pick_point
from ..errors import PointNotFound, RepositoryError, UsageError, VzError
from ..ports import Catalog, Clock, GuestInfo, Locks, Node, Repository, Reporter
from ..results import RunResult
from .outcome import COPY_ERRORS, Attempt, attempt, copy_state_after, recorded_run
from .selection import require_node, resolve_known_guest


@dataclass(frozen=True)
class RestorePlan:
    point: RestorePoint
    target: GuestRef
    node: Node
    sources: tuple[Repository, ...]  # copies to try, nearest first
    force: bool = False

    def describe(self) -> str:
        repos = ", ".join(r.name for r in self.sources) or "none"
        return (f"restore {self.point.guest} point {self.point.id[:12]} "
                f"({self.point.created:%Y-%m-%d %H:%M:%S} UTC) as {self.target} "
                f"on {self.node.name} from {repos}")


def plan_restore(catalog: Catalog, nodes: Mapping[str, Node], repos: Mapping[str, Repository],
                 guest: str, to_node: str, *, point: str | None = None, at: datetime | None = None,
                 as_id: int | None = None, force: bool = False) -> RestorePlan:
    """Resolve the guest, the point and the copies to read from; nothing is changed."""
    if point and at:
        raise UsageError("give --point or --at, not both")
    node = require_node(nodes, to_node)
    ref = resolve_known_guest(catalog.guests(), guest)
    chosen = _choose_point(catalog, ref, point, at)
    usable = [repos[c.repository] for c in chosen.copies if c.repository in repos]
    sources = tuple(usable[i] for i in nearest_first([r.url for r in usable]))
    target = GuestRef(ref.kind, as_id) if as_id else ref
    return RestorePlan(chosen, target, node, sources, force)


def _choose_point(catalog: Catalog, ref: GuestRef, point: str | None, at: datetime | None) -> RestorePoint:
    if point:
        found = catalog.point(point)
        if found.guest != ref:
            raise PointNotFound(f"restore point {point} belongs to {found.guest}, not {ref}")
        return found
    chosen = pick_point(catalog.points(ref), at)
    if chosen is None:
        suffix = f" taken at or before {at.isoformat()}" if at else ""
        raise PointNotFound(f"no restore point of {ref}{suffix}")
    return chosen


def restore(plan: RestorePlan, catalog: Catalog, locks: Locks, reporter: Reporter,
            clock: Clock) -> RunResult:
    args = {"point": plan.point.id, "target": str(plan.target), "node": plan.node.name}
    with recorded_run(catalog, clock, "restore", args) as run:
        with attempt(str(plan.target), plan.node.name) as a:
            _restore(a, plan, catalog, locks, reporter, clock)
        run.add(a)
    return run.result(a.tally.extra)


def _restore(a: Attempt, plan: RestorePlan, catalog: Catalog, locks: Locks,
             reporter: Reporter, clock: Clock) -> None:
    if not plan.sources:
        raise RepositoryError(f"restore point {plan.point.id[:12]} of {plan.point.guest} has no "
                              "copy in any configured repository",
                              hint="Configure the repository that holds it, or pick another --point.")
    plan.node.check()
    last: VzError | None = None
    with locks.guest(plan.target, "restore"):
        for repo in plan.sources:
            try:
                guest = _restore_from(a, plan, repo, reporter)
                catalog.upsert_guest(guest)
                catalog.record_copy_state(plan.point.id, repo.name, "ok", clock.now(), "full")
                return
            except COPY_ERRORS as e:  # try the next copy, farther away
                state = copy_state_after(e)
                if state is not None:
                    catalog.record_copy_state(plan.point.id, repo.name, state, clock.now())
                reporter.warning(f"copy in {repo.name} failed: {e}")
                last = e
    assert last is not None
    raise last


def _restore_from(a: Attempt, plan: RestorePlan, repo: Repository, reporter: Reporter) -> GuestInfo:
    reader = repo.open_point(plan.point.id)
    try:
        m = reader.manifest
        with reporter.progress(f"restore {plan.target} on {plan.node.name}", m.size) as advance:
            stream = _Counting(reader, advance)
            guest = plan.node.platform.restore(plan.target, stream, name=m.guest_name,  # type: ignore[arg-type]
                                       config=m.guest_config, force=plan.force)
    finally:
        reader.close()
    a.tally.point_id = plan.point.id
    a.tally.bytes_in = m.size
    a.tally.extra = {"repository": repo.name, "point": plan.point.id, "node": plan.node.name,
                     "target": str(plan.target)}
    return guest


class _Counting:
    """Pass reads through, reporting progress."""

    def __init__(self, inner, advance):
        self._inner, self._advance = inner, advance

    def read(self, n: int = -1) -> bytes:
        data = self._inner.read(n)
        self._advance(len(data))
        return data

    def readinto(self, buf) -> int:
        n = self._inner.readinto(buf)
        self._advance(n or 0)
        return n

    def readable(self) -> bool:
        return True
