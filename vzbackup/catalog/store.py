"""``SqlCatalog``: the catalogue behind ``ports.Catalog``, on SQLite or PostgreSQL.

Each public method is its own short transaction and returns domain objects, never rows.
Writers that race to create the same guest, node, point or copy are safe: the loser of a
unique-key race retries once and finds the winner's row.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, TypeVar

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from ..domain.branch import BranchRecord
from ..domain.checkpoints import Checkpoint
from ..domain.clone import CloneRecord
from ..domain.guests import GuestRef
from ..domain.manifest import SHORT_ID, Manifest
from ..domain.points import RestorePoint
from ..errors import CatalogError, PointNotFound
from ..ports import GuestInfo
from ..results import GuestOutcome
from . import records
from .engine import database_errors, for_writing, safe_url
from .models import (
    COPY_STATES, RUN_STATUSES, VERIFY_LEVELS, BranchRow, CheckpointRow, CloneRow, CopyRow, GuestRow, NodeRow, PointRow, RunItemRow,
    RunRow,
)
from .records import RunRecord

log = logging.getLogger(__name__)

T = TypeVar("T")
MIN_PREFIX = 6
FULL_ID = 64
_HEX = re.compile(r"^[0-9a-f]+$")
_MAX_CANDIDATES = 10


class AmbiguousPoint(PointNotFound):
    """A prefix matches several restore points. (Belongs in ``vzbackup.errors``.)"""

    def __init__(self, prefix: str, candidates: list[str]):
        self.candidates = tuple(candidates)
        shown = ", ".join(c[:SHORT_ID] for c in candidates[:_MAX_CANDIDATES])
        more = "..." if len(candidates) > _MAX_CANDIDATES else ""
        super().__init__(
            f"restore point {prefix!r} is ambiguous: it starts {shown}{more}",
            hint="Give more hex digits of the restore point id.",
        )


class SqlCatalog:
    """The catalogue on a SQLAlchemy engine; build it with ``open_catalog``."""

    def __init__(self, engine: Engine):
        self._engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._writers = sessionmaker(for_writing(engine), expire_on_commit=False)
        self.url = safe_url(engine.url)  # for messages: the password is hidden

    def close(self) -> None:
        self._engine.dispose()

    # ---- guests ---------------------------------------------------------------------

    def upsert_guest(self, guest: GuestInfo) -> None:
        """Record a guest as a node reports it; a guest that moved gets its new node."""

        def work(s: Session) -> None:
            row = _guest_row(s, guest.ref, guest.name)
            row.kind, row.name = guest.ref.kind, guest.name
            if guest.node:  # an empty node means "not known", not "nowhere"
                row.node = _node_row(s, guest.node)
            row.updated_at = _now()

        self._write("recording a guest", work)

    def guests(self) -> list[GuestInfo]:
        with self._read("listing guests") as s:
            rows = s.scalars(select(GuestRow).order_by(GuestRow.vmid))
            return [records.guest_info(r) for r in rows]

    # ---- restore points and copies ------------------------------------------------------

    def record_point(
        self, manifest: Manifest, point_id: str, repository: str, *, state: str = "ok"
    ) -> RestorePoint:
        """Catalogue a copy of a point in ``repository``; again or from another repository
        only adds the missing copy. A guest first seen here takes its node from the manifest."""
        point_id = _full_id(point_id)
        _check_choice("copy state", state, COPY_STATES)

        def work(s: Session) -> RestorePoint:
            point = s.get(PointRow, point_id) or _new_point(s, manifest, point_id)
            if not any(c.repository == repository for c in point.copies):
                point.copies.append(CopyRow(repository=repository, state=state))
            s.flush()
            return records.restore_point(point)

        return self._write("recording a restore point", work)

    def points(self, guest: GuestRef | None = None) -> list[RestorePoint]:
        """Restore points with their copies, by guest (VMID) then oldest first."""
        query = (
            select(PointRow)
            .join(PointRow.guest)
            .options(selectinload(PointRow.copies))
            .order_by(GuestRow.vmid, PointRow.created, PointRow.id)
        )
        if guest is not None:
            query = query.where(GuestRow.vmid == guest.vmid, PointRow.guest_kind == guest.kind)
        with self._read("listing restore points") as s:
            return [records.restore_point(r) for r in s.scalars(query)]

    def point(self, id_or_prefix: str) -> RestorePoint:
        """The point with this full id or unambiguous prefix of at least 6 hex digits."""
        wanted = _prefix(id_or_prefix)
        query = (
            select(PointRow)
            .where(PointRow.id.startswith(wanted, autoescape=True))
            .options(selectinload(PointRow.copies))
            .order_by(PointRow.id)
            .limit(_MAX_CANDIDATES + 1)
        )
        with self._read("looking up a restore point") as s:
            found = list(s.scalars(query))
            if len(found) > 1:
                raise AmbiguousPoint(wanted, [r.id for r in found])
            if not found:
                raise PointNotFound(f"no restore point {id_or_prefix!r} in the catalogue")
            return records.restore_point(found[0])

    def record_copy_state(
        self, point_id: str, repository: str, state: str, when: datetime,
        verified_level: str | None = None,
    ) -> None:
        """Record what a check found for a copy (``ok``, ``missing``, ``corrupt``...)."""
        point_id = _full_id(point_id)
        _check_choice("copy state", state, COPY_STATES)
        if verified_level is not None:
            _check_choice("verify level", verified_level, VERIFY_LEVELS)

        def work(s: Session) -> None:
            point = _existing_point(s, point_id)
            copy = next((c for c in point.copies if c.repository == repository), None)
            if copy is None:
                copy = CopyRow(repository=repository)
                point.copies.append(copy)
            copy.state, copy.verified_at = state, when
            if verified_level is not None:
                copy.verified_level = verified_level

        self._write("recording a copy's state", work)

    def forget_copy(self, point_id: str, repository: str) -> None:
        """Drop a copy (after prune); the point goes too once it has no copy left.
        Forgetting what is not there is no error, so prune can be re-run."""
        point_id = _full_id(point_id)

        def work(s: Session) -> None:
            point = s.get(PointRow, point_id)
            if point is None:
                return
            point.copies[:] = [c for c in point.copies if c.repository != repository]
            if not point.copies:
                s.delete(point)

        self._write("forgetting a copy", work)

    # ---- runs -------------------------------------------------------------------------

    def start_run(self, kind: str, args: dict[str, Any], when: datetime) -> int:
        def work(s: Session) -> int:
            run = RunRow(kind=kind, args=dict(args), started=when, status="running")
            s.add(run)
            s.flush()
            return run.id

        return self._write("starting a run", work, retry=False)

    def record_item(self, run_id: int, item: GuestOutcome) -> None:
        def work(s: Session) -> None:
            _existing_run(s, run_id)
            s.add(records.item_row(run_id, item))

        self._write("recording a run's result", work, retry=False)

    def finish_run(self, run_id: int, status: str, when: datetime) -> None:
        _check_choice("run status", status, RUN_STATUSES)

        def work(s: Session) -> None:
            run = _existing_run(s, run_id)
            run.status, run.finished = status, when

        self._write("finishing a run", work)

    def runs(self, limit: int = 20, kind: str | None = None) -> list[RunRecord]:
        """The newest ``limit`` runs (of ``kind``), newest first, with their items."""
        query = (
            select(RunRow).options(selectinload(RunRow.items))
            .order_by(RunRow.started.desc(), RunRow.id.desc()).limit(limit)
        )
        if kind is not None:
            query = query.where(RunRow.kind == kind)
        with self._read("listing runs") as s:
            return [records.run_record(r) for r in s.scalars(query)]

    def last_failures(self, scan: int = 5000) -> dict[str, tuple[RunRecord, GuestOutcome]]:
        """Each guest's newest failed item (among the newest ``scan`` failures), with its run
        (without items)."""
        query = (
            select(RunItemRow, RunRow).join(RunItemRow.run).where(RunItemRow.status == "failed")
            .order_by(RunRow.started.desc(), RunItemRow.id.desc()).limit(scan)
        )
        found: dict[str, tuple[RunRecord, GuestOutcome]] = {}
        with self._read("listing failures") as s:
            for item, run in s.execute(query):
                if item.guest not in found:
                    found[item.guest] = (records.run_record(run, with_items=False),
                                         records.outcome(item))
        return found

    def run(self, run_id: int) -> RunRecord:
        with self._read("reading a run") as s:
            return records.run_record(_existing_run(s, run_id))

    # ---- clones ----------------------------------------------------------------------

    def record_clone(self, clone: CloneRecord) -> None:
        """Record a clone's lineage; a clone made again under the same VMID replaces it."""

        def work(s: Session) -> None:
            old = s.scalar(select(CloneRow).where(CloneRow.clone_vmid == clone.clone.vmid))
            if old is not None:
                s.delete(old)
                s.flush()
            s.add(CloneRow(source_kind=clone.source.kind, source_vmid=clone.source.vmid,
                           point_id=clone.point_id, clone_kind=clone.clone.kind,
                           clone_vmid=clone.clone.vmid, node=clone.node, hostname=clone.hostname,
                           network=clone.network, created=clone.created))

        self._write("recording a clone", work)

    def clones(self, source: GuestRef | None = None) -> list[CloneRecord]:
        """Clones (of ``source``, or all), oldest first."""
        query = select(CloneRow).order_by(CloneRow.created, CloneRow.id)
        if source is not None:
            query = query.where(CloneRow.source_vmid == source.vmid)
        with self._read("listing clones") as s:
            return [records.clone_record(r) for r in s.scalars(query)]

    # ---- checkpoints -----------------------------------------------------------------

    def record_checkpoint(self, checkpoint: Checkpoint) -> None:
        c = checkpoint

        def work(s: Session) -> None:
            s.add(CheckpointRow(guest_kind=c.guest.kind, guest_vmid=c.guest.vmid, label=c.label,
                                node=c.node, created=c.created, expires=c.expires))

        self._write("recording a checkpoint", work, retry=False)

    def checkpoints(self) -> list[Checkpoint]:
        """Every checkpoint, by guest then oldest first."""
        query = select(CheckpointRow).order_by(CheckpointRow.guest_vmid, CheckpointRow.created,
                                               CheckpointRow.id)
        with self._read("listing checkpoints") as s:
            return [records.checkpoint(r) for r in s.scalars(query)]

    def forget_checkpoint(self, guest: GuestRef, label: str) -> None:
        def work(s: Session) -> None:
            row = s.scalar(select(CheckpointRow).where(CheckpointRow.guest_vmid == guest.vmid,
                                                       CheckpointRow.label == label))
            if row is not None:
                s.delete(row)

        self._write("forgetting a checkpoint", work)

    # ---- branches --------------------------------------------------------------------

    def record_branch(self, branch: BranchRecord) -> None:
        """Record a branch with its members; a branch of that name is replaced (refresh)."""

        def work(s: Session) -> None:
            old = s.scalar(select(BranchRow).where(BranchRow.name == branch.name))
            if old is not None:
                s.delete(old)
                s.flush()
            s.add(records.branch_row(branch))

        self._write("recording a branch", work, retry=False)

    def branches(self) -> list[BranchRecord]:
        """Every branch with its members, by name."""
        query = select(BranchRow).options(selectinload(BranchRow.members)).order_by(BranchRow.name)
        with self._read("listing branches") as s:
            return [records.branch_record(r) for r in s.scalars(query)]

    def forget_branch(self, name: str) -> None:
        def work(s: Session) -> None:
            row = s.scalar(select(BranchRow).where(BranchRow.name == name))
            if row is not None:
                s.delete(row)

        self._write("forgetting a branch", work)

    # ---- units of work ------------------------------------------------------------------

    @contextmanager
    def _read(self, doing: str) -> Iterator[Session]:
        with database_errors(self._engine.url, doing), self._sessions() as s:
            yield s

    def _write(self, doing: str, work: Callable[[Session], T], retry: bool = True) -> T:
        """Run ``work`` in one transaction; on a unique-key race, once more."""
        with database_errors(self._engine.url, doing):
            for attempt in (1, 2):
                try:
                    with self._writers.begin() as s:
                        return work(s)
                except IntegrityError:
                    if not retry or attempt == 2:
                        raise
                    log.debug("%s: lost a race for a unique key, retrying", doing)
        raise AssertionError("unreachable")


# ---- row helpers (inside a unit of work) ---------------------------------------------------


def _guest_row(s: Session, ref: GuestRef, name: str, platform: str | None = None,
               node: str | None = None) -> GuestRow:
    """The guest with this VMID (VMIDs are cluster-wide), created if new."""
    row = s.scalar(select(GuestRow).where(GuestRow.vmid == ref.vmid))
    if row is None:
        row = GuestRow(kind=ref.kind, vmid=ref.vmid, name=name, platform=platform, updated_at=_now())
        row.node = _node_row(s, node) if node else None
        s.add(row)
    return row


def _node_row(s: Session, name: str) -> NodeRow:
    row = s.scalar(select(NodeRow).where(NodeRow.name == name))
    if row is None:
        row = NodeRow(name=name)
        s.add(row)
    row.last_seen = _now()
    return row


def _new_point(s: Session, m: Manifest, point_id: str) -> PointRow:
    guest = _guest_row(s, m.guest, m.guest_name, m.platform, m.source_node)
    if guest.platform is None:
        guest.platform = m.platform
    point = PointRow(
        id=point_id, guest=guest, guest_kind=m.guest.kind, guest_name=m.guest_name,
        platform=m.platform, created=m.created, size=m.size,
        new_bytes=int(m.stats.get("new_bytes_stored", 0)),
        sha256=m.sha256, source_node=m.source_node, labels=dict(m.labels), parent=m.parent,
    )
    s.add(point)
    return point


def _existing_point(s: Session, point_id: str) -> PointRow:
    point = s.get(PointRow, point_id)
    if point is None:
        raise PointNotFound(f"no restore point {point_id[:SHORT_ID]} in the catalogue")
    return point


def _existing_run(s: Session, run_id: int) -> RunRow:
    run = s.get(RunRow, run_id)
    if run is None:
        raise CatalogError(f"no run {run_id} in the catalogue",
                           hint="List the recent runs to find the right id.")
    return run


def _prefix(text: str) -> str:
    wanted = text.strip().lower()
    if not _HEX.match(wanted) or not MIN_PREFIX <= len(wanted) <= FULL_ID:
        raise PointNotFound(
            f"{text!r} is not a restore point id: give {MIN_PREFIX} to {FULL_ID} hex digits",
            hint="List restore points with 'vzbackup points GUEST' and copy an id.",
        )
    return wanted


def _full_id(point_id: str) -> str:
    if len(point_id) != FULL_ID or not _HEX.match(point_id):
        raise ValueError(f"{point_id!r} is not a full restore point id (64 lower-case hex digits)")
    return point_id


def _check_choice(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{what} {value!r} is not one of {', '.join(allowed)}")


def _now() -> datetime:
    return datetime.now(timezone.utc)
