"""``vzbackup restore``: bring a guest back from a restore point onto a node.

The point's copies are tried nearest first (the target node's own disk, this host, a peer
node, object storage); a copy that fails verification is marked corrupt in the catalogue
and the next one is tried. The platform installs the guest only after the whole stream has
been read and verified, so a bad copy never replaces anything. When the target node can
open a copy by itself, the restore runs on that node and the data goes repository -> node.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..domain.guests import GuestRef
from ..domain.placement import Candidate, nearest_first, why_near
from ..domain.points import RestorePoint, pick_point
from ..errors import PointNotFound, RepositoryError, UsageError
from ..ports import Advance, Catalog, Clock, GuestInfo, Locks, Node, Repository, RepositoryAccess, Reporter
from ..results import RunResult
from .outcome import Attempt, attempt, first_good_copy, recorded_run
from .selection import require_node, resolve_known_guest


@dataclass(frozen=True)
class RestorePlan:
    point: RestorePoint
    target: GuestRef
    node: Node
    sources: tuple[Repository, ...]  # copies to try, nearest first
    force: bool = False
    reasons: tuple[str, ...] = ()  # why each source is where it is in the order

    def describe(self) -> str:
        repos = ", then ".join(f"{r.name} ({why})" for r, why in zip(self.sources, self.reasons))
        return (f"restore {self.point.guest} point {self.point.id[:12]} "
                f"({self.point.created:%Y-%m-%d %H:%M:%S} UTC) as {self.target} "
                f"on {self.node.name} from {repos or 'no copy'}")


def plan_restore(catalog: Catalog, nodes: Mapping[str, Node], repos: Mapping[str, Repository],
                 guest: str, to_node: str, *, point: str | None = None, at: datetime | None = None,
                 as_id: int | None = None, force: bool = False,
                 access: RepositoryAccess | None = None) -> RestorePlan:
    """Resolve the guest, the point and the copies to read from; nothing is changed."""
    if point and at:
        raise UsageError("give --point or --at, not both")
    node = require_node(nodes, to_node)
    ref = resolve_known_guest(catalog.guests(), guest)
    chosen = _choose_point(catalog, ref, point, at)
    usable = [repos[c.repository] for c in chosen.copies if c.repository in repos]
    places = [Candidate(r.url, access.home(r.name) if access else None) for r in usable]
    order = nearest_first(places, node.name)
    target = GuestRef(ref.kind, as_id) if as_id else ref
    return RestorePlan(chosen, target, node, tuple(usable[i] for i in order), force,
                       tuple(why_near(places[i], node.name)[1] for i in order))


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
            clock: Clock, access: RepositoryAccess | None = None) -> RunResult:
    args = {"point": plan.point.id, "target": str(plan.target), "node": plan.node.name}
    with recorded_run(catalog, clock, "restore", args) as run:
        with attempt(str(plan.target), plan.node.name) as a:
            _restore(a, plan, catalog, locks, reporter, clock, access)
        run.add(a)
    return run.result(a.tally.extra)


def _restore(a: Attempt, plan: RestorePlan, catalog: Catalog, locks: Locks,
             reporter: Reporter, clock: Clock, access: RepositoryAccess | None) -> None:
    if not plan.sources:
        raise RepositoryError(f"restore point {plan.point.id[:12]} of {plan.point.guest} has no "
                              "copy in any configured repository",
                              hint="Configure the repository that holds it, or pick another --point.")
    plan.node.check()
    with locks.guest(plan.target, "restore"):
        _, guest = first_good_copy(plan.sources, plan.point.id,
                                   lambda repo: _restore_from(a, plan, repo, reporter, access),
                                   catalog, reporter, clock)
        catalog.upsert_guest(guest)


def _restore_from(a: Attempt, plan: RestorePlan, repo: Repository, reporter: Reporter,
                  access: RepositoryAccess | None) -> GuestInfo:
    node = plan.node
    spec = access.spec_for(repo.name, node.name) if access and node.agent else None
    with reporter.progress(f"restore {plan.target} on {node.name}", None) as advance:
        if spec is not None and node.agent is not None:  # the node reads the copy itself
            done = node.agent.run({"op": "restore-from", "repository": spec,
                                   "point": plan.point.id, "target": str(plan.target),
                                   "force": plan.force}, advance)
            guest, size = GuestInfo.from_dict(done["guest"]), int(done["bytes"])
        else:
            guest, size = restore_point(node, repo, plan.point.id, plan.target, plan.force,
                                        advance)
    a.tally.point_id = plan.point.id
    a.tally.bytes_in = size
    a.tally.extra = {"repository": repo.name, "point": plan.point.id, "node": node.name,
                     "target": str(plan.target), "ran_on": node.name if spec else "controller"}
    return guest


def restore_point(node: Node, repo: Repository, point_id: str, target: GuestRef, force: bool,
                  advance: Advance | None, *, name: str | None = None,
                  config: dict[str, Any] | None = None) -> tuple[GuestInfo, int]:
    """Stream a point from ``repo`` into ``node``'s platform (also what the agent runs on a
    node). Returns the guest and the stream's size. ``name`` and ``config`` replace the
    manifest's (a clone's)."""
    reader = repo.open_point(point_id)
    try:
        m = reader.manifest
        stream = _Counting(reader, advance) if advance is not None else reader
        guest = node.restore(target, stream,  # type: ignore[arg-type]
                             name=m.guest_name if name is None else name,
                             config=m.guest_config if config is None else config, force=force)
    finally:
        reader.close()
    return guest, m.size


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
