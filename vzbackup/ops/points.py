"""``vzbackup points``: the restore points the catalogue knows, per guest."""

from __future__ import annotations

from ..domain.points import RestorePoint
from ..ports import Catalog
from .selection import resolve_known_guest


def list_points(catalog: Catalog, guest: str | None = None) -> list[RestorePoint]:
    if guest is None:
        return catalog.points()
    return catalog.points(resolve_known_guest(catalog.guests(), guest))
