"""Restore points as the catalogue and the commands see them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from .guests import GuestRef


PROTECTED = "protected"  # label: "1" keeps the point from any retention policy
NOTES = "notes"  # label: free text (vzdump's .notes); its first line is what lists show
ARCHIVE = "vzdump.archive"  # label: the vzdump archive a point was imported from
LOG = "vzdump.log"  # label: that archive's .log sidecar


@dataclass(frozen=True)
class Copy:
    repository: str
    state: str  # "ok" | "missing" | "corrupt" | "unverified"
    verified_at: datetime | None = None
    verified_level: str | None = None  # "quick" | "full": how the last check read it


@dataclass(frozen=True)
class RestorePoint:
    id: str
    guest: GuestRef
    guest_name: str
    created: datetime
    size: int
    new_bytes: int  # bytes this point added to the repository when it was written
    source_node: str
    labels: dict[str, str] = field(default_factory=dict)
    copies: tuple[Copy, ...] = ()

    @property
    def protected(self) -> bool:
        """Retention never removes a protected point (label ``protected=1``)."""
        return self.labels.get(PROTECTED) == "1"

    @property
    def notes(self) -> str:
        return self.labels.get(NOTES, "")


def pick_point(points: list[RestorePoint], at: datetime | None = None) -> RestorePoint | None:
    """The newest point, or the newest taken at or before ``at``."""
    eligible = [p for p in points if at is None or p.created <= at]
    return max(eligible, key=lambda p: p.created, default=None)
