"""Typed results of operations, rendered in one place by the CLI."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

Status = Literal["success", "partial", "error"]
ItemStatus = Literal["ok", "failed", "skipped"]


@dataclass(frozen=True)
class GuestOutcome:
    guest: str
    node: str | None
    status: ItemStatus
    point_id: str | None = None
    bytes_in: int = 0
    new_bytes: int = 0
    seconds: float = 0.0
    error: str | None = None  # error class name
    exit_code: int | None = None
    message: str | None = None
    hint: str | None = None
    warnings: tuple[str, ...] = ()  # an "ok" item that the user must still hear about


@dataclass(frozen=True)
class RunResult:
    kind: str
    status: Status
    items: tuple[GuestOutcome, ...]
    run_id: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def overall(items: tuple[GuestOutcome, ...] | list[GuestOutcome]) -> Status:
    failed = sum(1 for i in items if i.status == "failed")
    if not failed:
        return "success"
    return "error" if failed == len(items) else "partial"


@dataclass(frozen=True)
class RunRecord:
    """A run as the catalogue recorded it, with its per-guest outcomes in recorded order."""

    id: int
    kind: str
    args: dict[str, Any]
    started: datetime
    finished: datetime | None
    status: str  # running | success | partial | error | aborted
    items: tuple[GuestOutcome, ...] = ()
