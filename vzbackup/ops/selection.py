"""Which guests a command means: ``ct101``, ``101``, a hostname, ``--all``, ``--node``."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..domain.guests import GuestRef, parse_guest
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
