"""``vzbackup status``: per guest, the newest good restore point and its age against the
job's RPO, its copies and where they are, and the last failure. Read from the catalogue
only: no node is asked."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from ..config.model import JobConfig
from ..domain.guests import GuestRef
from ..domain.points import RestorePoint
from ..ports import Catalog
from .membership import covering_jobs

GOOD_STATES = ("ok", "unverified")  # a copy not known to be missing or corrupt


@dataclass(frozen=True)
class GuestStatus:
    guest: str
    name: str
    node: str
    jobs: list[str]
    rpo_hours: int | None  # the strictest of its jobs'; None: no job covers it
    last_good_point: str | None
    last_good_created: datetime | None
    age_hours: float | None
    past_rpo: bool
    copies: int  # good copies of the newest good point
    where: list[str] = field(default_factory=list)  # "repository:state" of those copies
    last_failure: str | None = None
    last_failure_at: datetime | None = None
    last_failure_run: int | None = None


def guest_status(catalog: Catalog, jobs: Mapping[str, JobConfig], now: datetime) -> list[GuestStatus]:
    covering = covering_jobs(jobs, catalog)
    failures = catalog.last_failures()
    by_guest: dict[GuestRef, list[RestorePoint]] = {}
    for p in catalog.points():
        by_guest.setdefault(p.guest, []).append(p)
    out = []
    for g in catalog.guests():
        mine = covering.get(g.ref, [])
        rpo = min((j.rpo_hours for j in mine), default=None)
        good = [p for p in by_guest.get(g.ref, []) if any(c.state in GOOD_STATES for c in p.copies)]
        newest = max(good, key=lambda p: p.created, default=None)
        age = (now - newest.created).total_seconds() / 3600 if newest else None
        past = rpo is not None and (age is None or age > rpo)
        copies = [c for c in newest.copies if c.state in GOOD_STATES] if newest else []
        last = failures.get(str(g.ref))
        out.append(GuestStatus(
            str(g.ref), g.name, g.node, [j.name for j in mine], rpo,
            newest.id if newest else None, newest.created if newest else None,
            round(age, 2) if age is not None else None, past, len(copies),
            [f"{c.repository}:{c.state}" for c in copies],
            last[1].message if last else None, last[0].started if last else None,
            last[0].id if last else None))
    return out
