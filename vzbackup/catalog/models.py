"""The catalogue's tables. Change them only together with a migration in ``migrations/versions``.

Datetimes are stored as UTC and always come back timezone-aware UTC, on SQLite too.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

GUEST_KINDS = ("ct", "vm")
COPY_STATES = ("ok", "missing", "corrupt", "unverified")
VERIFY_LEVELS = ("quick", "full")
RUN_STATUSES = ("running", "success", "partial", "error", "aborted")

# Deterministic constraint names, so later migrations can drop or alter them on both dialects.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend. Naive datetimes are refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: the catalogue stores aware UTC datetimes")
        value = value.astimezone(timezone.utc)
        # SQLite has no time zones: it stores the UTC wall time, tagged again on the way out.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JSON()}


class NodeRow(Base):
    __tablename__ = "nodes"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(253), unique=True)
    last_seen: Mapped[datetime | None]


class GuestRow(Base):
    __tablename__ = "guests"
    __table_args__ = (CheckConstraint(_one_of("kind", GUEST_KINDS), name="kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(2))
    vmid: Mapped[int] = mapped_column(Integer, unique=True)  # cluster-wide
    name: Mapped[str] = mapped_column(String(253))
    node_id: Mapped[int | None] = mapped_column(ForeignKey("nodes.id", ondelete="SET NULL"), index=True)
    platform: Mapped[str | None] = mapped_column(String(32))  # known once a point is recorded
    updated_at: Mapped[datetime]

    node: Mapped[NodeRow | None] = relationship(lazy="joined")


class PointRow(Base):
    __tablename__ = "restore_points"
    __table_args__ = (
        Index("ix_restore_points_guest_created", "guest_id", "created"),
        CheckConstraint(_one_of("guest_kind", GUEST_KINDS), name="guest_kind"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the manifest's SHA-256
    guest_id: Mapped[int] = mapped_column(ForeignKey("guests.id", ondelete="RESTRICT"))
    guest_kind: Mapped[str] = mapped_column(String(2))  # the point's own: a VMID may be reused
    guest_name: Mapped[str] = mapped_column(String(253))  # as the manifest says
    platform: Mapped[str] = mapped_column(String(32))
    created: Mapped[datetime] = mapped_column(index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    new_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    source_node: Mapped[str] = mapped_column(String(253))
    labels: Mapped[dict[str, Any]]
    parent: Mapped[str | None] = mapped_column(String(64))  # may name a point not catalogued

    guest: Mapped[GuestRow] = relationship(lazy="joined")
    copies: Mapped[list[CopyRow]] = relationship(
        back_populates="point", cascade="all, delete-orphan", order_by="CopyRow.repository"
    )


class CopyRow(Base):
    __tablename__ = "copies"
    __table_args__ = (
        UniqueConstraint("point_id", "repository"),
        CheckConstraint(_one_of("state", COPY_STATES), name="state"),
        CheckConstraint(
            "verified_level IS NULL OR " + _one_of("verified_level", VERIFY_LEVELS), name="verified_level"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    point_id: Mapped[str] = mapped_column(ForeignKey("restore_points.id", ondelete="CASCADE"))
    repository: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    verified_at: Mapped[datetime | None]
    verified_level: Mapped[str | None] = mapped_column(String(8))

    point: Mapped[PointRow] = relationship(back_populates="copies")


class RunRow(Base):
    __tablename__ = "runs"
    __table_args__ = (CheckConstraint(_one_of("status", RUN_STATUSES), name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    args: Mapped[dict[str, Any]]
    started: Mapped[datetime] = mapped_column(index=True)
    finished: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16), index=True)

    items: Mapped[list[RunItemRow]] = relationship(
        back_populates="run", cascade="all, delete-orphan", order_by="RunItemRow.id"
    )


class RunItemRow(Base):
    __tablename__ = "run_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    guest: Mapped[str] = mapped_column(String(253), index=True)
    node: Mapped[str | None] = mapped_column(String(253))
    status: Mapped[str] = mapped_column(String(16))
    point_id: Mapped[str | None] = mapped_column(String(64))  # no FK: points are pruned, runs stay
    bytes_in: Mapped[int] = mapped_column(BigInteger)
    new_bytes: Mapped[int] = mapped_column(BigInteger)
    seconds: Mapped[float] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(String(64))
    exit_code: Mapped[int | None]
    message: Mapped[str | None] = mapped_column(Text)
    hint: Mapped[str | None] = mapped_column(Text)

    run: Mapped[RunRow] = relationship(back_populates="items")


class CloneRow(Base):
    """A guest made from another's restore point (``vzbackup clone``): its lineage. The
    point it came from is pinned against pruning while the row exists."""

    __tablename__ = "clones"
    __table_args__ = (
        CheckConstraint(_one_of("source_kind", GUEST_KINDS), name="source_kind"),
        CheckConstraint(_one_of("clone_kind", GUEST_KINDS), name="clone_kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source_kind: Mapped[str] = mapped_column(String(2))
    source_vmid: Mapped[int] = mapped_column(Integer, index=True)
    point_id: Mapped[str] = mapped_column(String(64), index=True)  # no FK: the pin keeps it
    clone_kind: Mapped[str] = mapped_column(String(2))
    clone_vmid: Mapped[int] = mapped_column(Integer, unique=True)
    node: Mapped[str] = mapped_column(String(253))
    hostname: Mapped[str] = mapped_column(String(253))
    network: Mapped[str] = mapped_column(String(253))  # the map applied, as given
    created: Mapped[datetime]


class CheckpointRow(Base):
    """A guest's checkpoint (a snapshot on its node), by label."""

    __tablename__ = "checkpoints"
    __table_args__ = (
        UniqueConstraint("guest_vmid", "label"),
        CheckConstraint(_one_of("guest_kind", GUEST_KINDS), name="guest_kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    guest_kind: Mapped[str] = mapped_column(String(2))
    guest_vmid: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(40))
    node: Mapped[str] = mapped_column(String(253))
    created: Mapped[datetime]
    expires: Mapped[datetime | None] = mapped_column(index=True)


class BranchRow(Base):
    """A branch (``vzbackup branch create``): clones of production guests on one node,
    from one consistent set of restore points. Its points are pinned while it exists."""

    __tablename__ = "branches"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    node: Mapped[str] = mapped_column(String(253))
    created: Mapped[datetime]
    at: Mapped[datetime | None]
    network: Mapped[str] = mapped_column(String(253))
    sanitize: Mapped[list[str]] = mapped_column(JSON)
    origin: Mapped[str] = mapped_column(String(253))

    members: Mapped[list[BranchMemberRow]] = relationship(
        back_populates="branch", cascade="all, delete-orphan", order_by="BranchMemberRow.id")


class BranchMemberRow(Base):
    """One clone of a branch, with its lineage (source guest and point) and the point the
    branch ships (the source point, or the sanitized clone's own)."""

    __tablename__ = "branch_members"
    __table_args__ = (
        CheckConstraint(_one_of("source_kind", GUEST_KINDS), name="source_kind"),
        CheckConstraint(_one_of("clone_kind", GUEST_KINDS), name="clone_kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id", ondelete="CASCADE"),
                                           index=True)
    source_kind: Mapped[str] = mapped_column(String(2))
    source_vmid: Mapped[int] = mapped_column(Integer)
    point_id: Mapped[str] = mapped_column(String(64), index=True)  # no FK: the pin keeps it
    clone_kind: Mapped[str] = mapped_column(String(2))
    clone_vmid: Mapped[int] = mapped_column(Integer, unique=True)
    hostname: Mapped[str] = mapped_column(String(253))
    shipped_id: Mapped[str] = mapped_column(String(64), index=True)

    branch: Mapped[BranchRow] = relationship(back_populates="members")
