"""``vzbackup checkpoint``, ``rollback``, ``checkpoints``, ``checkpoint drop``.

A checkpoint is a fast local snapshot on the guest's node (Proxmox ``pct``/``qm snapshot``,
a btrfs or LVM snapshot on the directory and OpenVZ platforms), labelled, with an optional
expiry; never durable. A checkpoint of several guests is one group: every guest's lock is
taken first, each node checks that the whole group's snapshots fit (``checkpoint_space``:
refused with the numbers otherwise), the snapshots are taken back to back, and if one
fails those already taken are removed (all or nothing). The catalogue records each guest's checkpoint (label, node, created,
expires); expired ones are removed by ``checkpoint drop --expired`` and by every job
run. ``--with-backup`` (the CLI) also stores a restore point labelled ``checkpoint=LABEL``:
when the snapshot or its node is gone, ``rollback`` raises ``CheckpointGone`` naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..domain.checkpoints import Checkpoint, check_label
from ..domain.guests import GuestRef
from ..domain.points import RestorePoint
from ..errors import CheckpointFailed, NodeUnreachable, UsageError, VzError
from ..ports import Catalog, Clock, Locks, Node, Reporter, Repository
from .selection import Selection, require_node, resolve_known_guest


CHECKPOINT_LABEL = "checkpoint"  # the restore point label --with-backup sets


@dataclass(frozen=True)
class DropResult:
    dropped: list[Checkpoint]
    failed: list[tuple[Checkpoint, str]]


def take_checkpoint(selection: Selection, label: str, catalog: Catalog, locks: Locks,
                    reporter: Reporter, clock: Clock, expire: timedelta | None = None,
                    notes_to: Repository | None = None) -> list[Checkpoint]:
    """Checkpoint every selected guest as one group, or none of them. Each is also noted in
    ``notes_to`` (the backup repository), for ``catalog rebuild``."""
    why = check_label(label)
    if why:
        raise UsageError(f"--label {label!r}: {why}")
    if selection.unreachable:
        node, error = selection.unreachable[0]
        raise CheckpointFailed(f"checkpoint {label}: node {node} could not be searched: "
                               f"{error}", hint="A group checkpoint needs every guest's node.")
    existing = {(c.guest, c.label) for c in catalog.checkpoints()}
    for t in selection.targets:
        if (t.guest.ref, label) in existing:
            raise CheckpointFailed(f"checkpoint {label} of {t.guest.ref} already exists",
                                   hint=f"Pick another --label, or 'vzbackup checkpoint drop "
                                        f"{label}' first.")
    now = clock.now()
    expires = now + expire if expire else None
    taken: list[tuple[Node, GuestRef]] = []
    with ExitStack() as held:
        for t in selection.targets:
            held.enter_context(locks.guest(t.guest.ref, f"checkpoint {label}"))
        by_node: dict[str, tuple[Node, list[GuestRef]]] = {}
        for t in selection.targets:
            by_node.setdefault(t.node.name, (t.node, []))[1].append(t.guest.ref)
        for node, refs in by_node.values():
            node.checkpoint_space(refs, label)
        try:
            for t in selection.targets:
                t.node.checkpoint(t.guest.ref, label)
                taken.append((t.node, t.guest.ref))
        except BaseException:
            _undo(taken, label, reporter)
            raise
    done = [Checkpoint(t.guest.ref, label, t.node.name, now, expires) for t in selection.targets]
    for c in done:
        catalog.record_checkpoint(c)
        note_checkpoint(notes_to, c, c.created, reporter)
        reporter.info(f"checkpoint {label} of {c.guest} taken on node {c.node}")
    return done


def _undo(taken: list[tuple[Node, GuestRef]], label: str, reporter: Reporter) -> None:
    for node, ref in reversed(taken):
        try:
            node.drop_checkpoint(ref, label)
            reporter.warning(f"removed checkpoint {label} of {ref} on node {node.name}: the "
                             "group could not be completed")
        except VzError as e:
            reporter.warning(f"could not remove checkpoint {label} of {ref} on node "
                             f"{node.name}: {e}")


def list_checkpoints(catalog: Catalog, guest: str | None = None) -> list[Checkpoint]:
    found = catalog.checkpoints()
    if guest is None:
        return found
    ref = resolve_known_guest(catalog.guests(), guest)
    return [c for c in found if c.guest == ref]


def rollback(catalog: Catalog, nodes: Mapping[str, Node], locks: Locks, reporter: Reporter,
             guest: str, label: str) -> Checkpoint:
    """Put ``guest`` back as it was at checkpoint ``label``, on the node holding it."""
    ref = resolve_known_guest(catalog.guests(), guest)
    matches = [c for c in catalog.checkpoints() if c.guest == ref and c.label == label]
    if not matches:
        raise CheckpointFailed(f"no checkpoint {label} of {ref} in the catalogue",
                               hint=f"List them with 'vzbackup checkpoints {ref}'.")
    c = matches[0]
    node = require_node(nodes, c.node)
    try:
        node.check()
        with locks.guest(ref, f"rollback {label}"):
            node.rollback(ref, label)
    except (CheckpointFailed, NodeUnreachable) as e:
        point = backup_of(catalog, ref, label)
        if point is None:
            raise
        raise CheckpointGone(
            f"rollback of {ref} to checkpoint {label} on node {c.node} failed ({e.message}); "
            f"restore point {point.id[:12]} was taken with the checkpoint (--with-backup)",
            point.id,
            hint=f"Restore it: 'vzbackup rollback {ref} {label} --to NODE' (or 'vzbackup "
                 f"restore {ref} --to NODE --point {point.id[:12]} --force').") from None
    reporter.info(f"{ref} rolled back to checkpoint {label} on node {node.name}")
    return c


class CheckpointGone(CheckpointFailed):
    """The snapshot cannot be rolled back to, but a restore point was taken with it."""

    def __init__(self, message: str, point_id: str, *, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.point_id = point_id


def backup_of(catalog: Catalog, ref: GuestRef, label: str) -> RestorePoint | None:
    """The newest restore point labelled ``checkpoint=label`` of ``ref`` (--with-backup)."""
    found = [p for p in catalog.points(ref) if p.labels.get(CHECKPOINT_LABEL) == label]
    return max(found, key=lambda p: p.created, default=None)


def drop(catalog: Catalog, nodes: Mapping[str, Node], locks: Locks, reporter: Reporter, clock: Clock,
         *, label: str | None = None, guests: list[str] | None = None,
         expired: bool = False, notes_to: Repository | None = None) -> DropResult:
    """Remove checkpoints (``label``, of ``guests`` or all; or every expired one) from their
    nodes, then from the catalogue. One that is already gone from its node is forgotten."""
    if not label and not expired:
        raise UsageError("name the checkpoint's LABEL, or give --expired")
    now = clock.now()
    refs = {resolve_known_guest(catalog.guests(), g) for g in guests or []}
    chosen = [c for c in catalog.checkpoints()
              if (label is None or c.label == label) and (not refs or c.guest in refs)
              and (not expired or c.expired(now))]
    if label and not chosen:
        raise CheckpointFailed(f"no checkpoint {label} in the catalogue"
                               + (f" for {', '.join(sorted(map(str, refs)))}" if refs else ""),
                               hint="List them with 'vzbackup checkpoints'.")
    dropped, failed = [], []
    for c in chosen:
        try:
            node = require_node(nodes, c.node)
            with locks.guest(c.guest, f"drop checkpoint {c.label}"):
                node.drop_checkpoint(c.guest, c.label)
            catalog.forget_checkpoint(c.guest, c.label)
            note_checkpoint(notes_to, c, clock.now(), reporter, gone=True)
            dropped.append(c)
            reporter.info(f"dropped checkpoint {c.label} of {c.guest} on node {c.node}")
        except VzError as e:
            failed.append((c, str(e)))
            reporter.warning(f"checkpoint {c.label} of {c.guest} on node {c.node}: {e}")
    return DropResult(dropped, failed)


def note_checkpoint(repo: Repository | None, c: Checkpoint, when: datetime, reporter: Reporter,
                    *, gone: bool = False) -> None:
    """A checkpoint taken (or dropped) as a note in the backup repository: ``catalog
    rebuild`` lists it again (the snapshot itself is on its node)."""
    if repo is None:
        return
    doc = {"kind": "checkpoint", "key": f"{c.guest}/{c.label}", "time": when.isoformat(),
           "record": c.to_dict(), **({"gone": True} if gone else {})}
    try:
        repo.put_note(doc)
    except VzError as e:
        reporter.warning(f"checkpoint {c.label} of {c.guest} could not be noted in {repo.name} "
                         f"({e}): 'catalog rebuild' would not list it")
