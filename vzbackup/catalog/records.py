"""Rows to the objects callers see. No ORM object leaves the catalogue package."""

from __future__ import annotations

from ..domain.branch import BranchMember, BranchRecord
from ..domain.checkpoints import Checkpoint
from ..domain.clone import CloneRecord
from ..domain.guests import GuestRef
from ..domain.points import Copy, RestorePoint
from ..ports import GuestInfo
from ..results import GuestOutcome, RunRecord
from .models import BranchMemberRow, BranchRow, CheckpointRow, CloneRow, CopyRow, GuestRow, PointRow, RunItemRow, RunRow


def guest_info(row: GuestRow) -> GuestInfo:
    ref = GuestRef(row.kind, row.vmid)  # type: ignore[arg-type]
    return GuestInfo(ref=ref, name=row.name, node=row.node.name if row.node else "")


def restore_point(row: PointRow) -> RestorePoint:
    return RestorePoint(
        id=row.id,
        guest=GuestRef(row.guest_kind, row.guest.vmid),  # type: ignore[arg-type]
        guest_name=row.guest_name,
        created=row.created,
        size=row.size,
        new_bytes=row.new_bytes,
        source_node=row.source_node,
        labels=dict(row.labels or {}),
        copies=tuple(copy(c) for c in sorted(row.copies, key=lambda c: c.repository)),
    )


def copy(row: CopyRow) -> Copy:
    return Copy(repository=row.repository, state=row.state, verified_at=row.verified_at,
                verified_level=row.verified_level)


def run_record(row: RunRow, with_items: bool = True) -> RunRecord:
    return RunRecord(
        id=row.id,
        kind=row.kind,
        args=dict(row.args or {}),
        started=row.started,
        finished=row.finished,
        status=row.status,
        items=tuple(outcome(i) for i in row.items) if with_items else (),
    )


def outcome(row: RunItemRow) -> GuestOutcome:
    return GuestOutcome(
        guest=row.guest,
        node=row.node,
        status=row.status,  # type: ignore[arg-type]
        point_id=row.point_id,
        bytes_in=row.bytes_in,
        new_bytes=row.new_bytes,
        seconds=row.seconds,
        error=row.error,
        exit_code=row.exit_code,
        message=row.message,
        hint=row.hint,
    )


def item_row(run_id: int, item: GuestOutcome) -> RunItemRow:
    return RunItemRow(
        run_id=run_id,
        guest=item.guest,
        node=item.node,
        status=item.status,
        point_id=item.point_id,
        bytes_in=item.bytes_in,
        new_bytes=item.new_bytes,
        seconds=item.seconds,
        error=item.error,
        exit_code=item.exit_code,
        message=item.message,
        hint=item.hint,
    )


def clone_record(row: CloneRow) -> CloneRecord:
    return CloneRecord(GuestRef(row.source_kind, row.source_vmid), row.point_id,  # type: ignore[arg-type]
                       GuestRef(row.clone_kind, row.clone_vmid), row.node,  # type: ignore[arg-type]
                       row.hostname, row.network, row.created)


def checkpoint(row: CheckpointRow) -> Checkpoint:
    return Checkpoint(GuestRef(row.guest_kind, row.guest_vmid), row.label,  # type: ignore[arg-type]
                      row.node, row.created, row.expires)


def branch_record(row: BranchRow) -> BranchRecord:
    members = tuple(
        BranchMember(GuestRef(m.source_kind, m.source_vmid), m.point_id,  # type: ignore[arg-type]
                     GuestRef(m.clone_kind, m.clone_vmid), m.hostname,  # type: ignore[arg-type]
                     m.shipped_id)
        for m in row.members)
    return BranchRecord(row.name, row.node, row.created, row.at, row.network,
                        tuple(row.sanitize or ()), members, row.origin)


def branch_row(b: BranchRecord) -> BranchRow:
    return BranchRow(name=b.name, node=b.node, created=b.created, at=b.at, network=b.network,
                     sanitize=list(b.sanitize), origin=b.origin,
                     members=[BranchMemberRow(source_kind=m.source.kind, source_vmid=m.source.vmid,
                                              point_id=m.point_id, clone_kind=m.clone.kind,
                                              clone_vmid=m.clone.vmid, hostname=m.hostname,
                                              shipped_id=m.shipped_id)
                              for m in b.members])
