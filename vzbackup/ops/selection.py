"""Which guests a command means: ``ct101``, ``101``, a hostname, ``--all``, ``--node``."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..config.model import JobConfig
from ..domain.guests import GuestRef, GuestSpec, parse_guest
from ..errors import GuestNotFound, UsageError, VzError
from ..ports import GuestInfo, Node


SCAN_THREADS = 16


@dataclass(frozen=True)
class Target:
    node: Node
    guest: GuestInfo


@dataclass(frozen=True)
class Selection:
    targets: list[Target]
    unreachable: list[tuple[str, VzError]] = field(default_factory=list)  # (node, why)
    missing: list[tuple[str, VzError]] = field(default_factory=list)  # (guest named, why)


def select_targets(nodes: Mapping[str, Node], guests: list[str], *, all_guests: bool = False,
                   node: str | None = None) -> Selection:
    """Resolve a selection against the guests the reachable nodes hold now."""
    if not guests and not all_guests and node is None:
        raise UsageError("name guests (ct101 vm200 ...), or use --all or --node NODE")
    scope = [require_node(nodes, node)] if node else list(nodes.values())
    found, unreachable = [], []
    with ThreadPoolExecutor(min(len(scope), SCAN_THREADS) or 1,
                            thread_name_prefix="vzbackup-scan") as pool:
        # All nodes at once: a dead one costs its connect timeout, not one per node in turn.
        for n, (held, error) in zip(scope, pool.map(_scan, scope)):
            if error is not None:
                unreachable.append((n.name, error))
            found += [Target(n, g) for g in held]
    if node and unreachable:
        raise unreachable[0][1]
    if all_guests or (node and not guests):
        return Selection(found, unreachable)
    return Selection([_one(found, text, scope, unreachable) for text in guests], [])


def _scan(n: Node) -> tuple[list[GuestInfo], VzError | None]:
    try:
        n.check()
        return n.list_guests(), None
    except VzError as e:
        return [], e


def require_node(nodes: Mapping[str, Node], name: str) -> Node:
    if name not in nodes:
        raise UsageError(f"no node named {name!r} in the configuration "
                         f"(known: {', '.join(sorted(nodes)) or 'none'})",
                         hint="Add it under [nodes.NAME] or pick a configured node.")
    return nodes[name]


def _one(found: list[Target], text: str, scope: list[Node],
         unreachable: list[tuple[str, VzError]]) -> Target:
    try:
        spec = parse_guest(text)
    except ValueError as e:
        raise UsageError(str(e)) from None
    matches = [t for t in found if spec.matches(t.guest.ref, t.guest.name)]
    if not matches:
        where = ", ".join(n.name for n in scope)
        down = "".join(f"; node {name} could not be searched: {e}" for name, e in unreachable)
        raise GuestNotFound(f"guest {text} not found on {where}{down}")
    if len(matches) > 1:
        names = ", ".join(f"{t.guest.ref} on {t.node.name}" for t in matches)
        raise UsageError(f"{text} is ambiguous: {names}", hint="Name the guest as ct<ID> or vm<ID>.")
    return matches[0]


def resolve_known_guest(known: list[GuestInfo], text: str) -> GuestRef:
    """A guest the catalogue knows (it may be on no reachable node any more)."""
    try:
        spec = parse_guest(text)
    except ValueError as e:
        raise UsageError(str(e)) from None
    matches = {g.ref for g in known if spec.matches(g.ref, g.name)}
    if not matches:
        if spec.ref is not None:
            return spec.ref
        raise GuestNotFound(f"the catalogue knows no guest {text}",
                            hint="List known guests and their restore points with 'vzbackup points'.")
    if len(matches) > 1:
        raise UsageError(f"{text} is ambiguous: {', '.join(sorted(map(str, matches)))}",
                         hint="Name the guest as ct<ID> or vm<ID>.")
    return matches.pop()


# ---- a job's guests ---------------------------------------------------------------------


def select_for_job(nodes: Mapping[str, Node], job: JobConfig) -> Selection:
    """The guests a job takes now: named ones, those with one of its tags or in one of its
    pools, every guest of its nodes, or all; never an excluded one. A named guest found on
    no node is a failed item, so a typo or a vanished guest is heard about every night."""
    scope = {n: nodes[n] for n in job.nodes} if job.nodes and not (
        job.all or job.guests or job.tags or job.pools) else dict(nodes)
    found = select_targets(scope, [], all_guests=True)
    excluded = [_spec(text, job.name, "exclude") for text in job.exclude]
    named = [(text, _spec(text, job.name, "guests")) for text in job.guests]
    chosen = [t for t in found.targets
              if not any(s.matches(t.guest.ref, t.guest.name) for s in excluded)
              and _wanted(t, job, [s for _, s in named])]
    missing = [(text, GuestNotFound(
        f"job {job.name}: guest {text} not found on {', '.join(sorted(scope))}",
        hint=f"Fix jobs.{job.name}.guests, or check the node holding it."))
        for text, s in named if not any(s.matches(t.guest.ref, t.guest.name)
                                        for t in found.targets)]
    return Selection(chosen, found.unreachable, missing)


def _wanted(t: Target, job: JobConfig, named: list[GuestSpec]) -> bool:
    return (job.all or t.node.name in job.nodes or bool(t.guest.tags & set(job.tags))
            or t.guest.pool in job.pools or any(s.matches(t.guest.ref, t.guest.name) for s in named))


def _spec(text: str, job: str, key: str) -> GuestSpec:
    try:
        return parse_guest(text)
    except ValueError as e:
        raise UsageError(f"jobs.{job}.{key}: {e}") from None
