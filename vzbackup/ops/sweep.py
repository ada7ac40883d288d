"""``vzbackup snapshots sweep``: remove the snapshots a crashed run left on its nodes.

Only snapshots a snapshotter recognises as vzbackup's own (``Snapshotter.leftovers``), and
each only while its guest's lock is free: a snapshot whose guest is being backed up right
now belongs to that run, which removes it itself, so it is skipped.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..domain.guests import parse_guest
from ..errors import LockBusy
from ..ports import Catalog, Clock, Leftover, Locks, Node, Reporter
from ..results import RunResult
from .outcome import attempt, recorded_run


def sweep(nodes: Mapping[str, Node], catalog: Catalog, locks: Locks, reporter: Reporter,
          clock: Clock, *, dry_run: bool = False) -> RunResult:
    with recorded_run(catalog, clock, "sweep", {"nodes": sorted(nodes), "dry_run": dry_run}) as run:
        for node in nodes.values():
            found: list[Leftover] = []
            with attempt("*", node.name) as a:
                found = node.leftover_snapshots()
            if a.outcome and a.outcome.status == "failed":
                reporter.warning(f"node {node.name}: {a.outcome.message}")
                run.add(a)
                continue
            for leftover in found:
                with attempt(leftover.guest or "?", node.name) as a:
                    a.tally.extra["removed"] = _one(node, leftover, locks, dry_run)
                    a.tally.warnings.append(_said(leftover, a.tally.extra["removed"], dry_run))
                reporter.info(f"{node.name}: {a.outcome.message if a.outcome else ''}")
                run.add(a)
    return run.result({"dry_run": dry_run})


def _one(node: Node, leftover: Leftover, locks: Locks, dry_run: bool) -> bool:
    """True when removed (or, dry, when it would be); False when its guest is busy."""
    ref = parse_guest(leftover.guest).ref if leftover.guest else None
    if ref is None:
        if not dry_run:
            node.remove_snapshot(leftover)
        return True
    try:
        with locks.guest(ref, "sweep"):
            if not dry_run:
                node.remove_snapshot(leftover)
    except LockBusy:
        return False
    return True


def _said(leftover: Leftover, removed: bool, dry_run: bool) -> str:
    what = f"{leftover.kind} snapshot {leftover.id} ({leftover.detail})"
    if not removed:
        return f"{what} kept: its guest is locked by a running job, which removes it"
    return f"{what} {'would be removed' if dry_run else 'removed'}"
