"""Retention: which restore points a keep-* policy keeps, with Proxmox VE's prune-backups
semantics, and why.

The algorithm is PVE's (``PVE::Storage::prune_mark_backup_group``), so a policy means here
what it means in a vzdump job:

- points are taken newest first; protected points are kept and count for no rule;
- the rules run in order: last, hourly, daily, weekly, monthly, yearly. Each keeps the
  newest point of up to N periods (an hour, a day, an ISO week, a month, a year, in the
  policy's time zone) that no earlier rule already covered; the other points of a period it
  keeps are removed then and there, so a later rule cannot keep them;
- whatever no rule kept is removed; ``keep_all`` (or a policy with no keep-* at all) keeps
  everything.

vzbackup adds one rule of its own on top: ``pinned`` points (each guest's newest verified
point, points a clone or branch depends on) are never removed, whatever the policy says.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

Decision = Literal["keep", "remove"]
RULES = ("last", "hourly", "daily", "weekly", "monthly", "yearly")


@dataclass(frozen=True)
class Policy:
    keep_last: int = 0
    keep_hourly: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0
    keep_all: bool = False

    @property
    def keeps_everything(self) -> bool:
        return self.keep_all or not any(self.count(rule) for rule in RULES)

    def count(self, rule: str) -> int:
        return int(getattr(self, f"keep_{rule}"))

    def describe(self) -> str:
        """``keep-daily=7,keep-last=3``: PVE's notation, keys sorted as vzdump logs them."""
        if self.keep_all:
            return "keep-all=1"
        parts = sorted(f"keep-{rule}={self.count(rule)}" for rule in RULES if self.count(rule))
        return ",".join(parts) or "keep-all=1"

    @classmethod
    def parse(cls, text: str) -> "Policy":
        """PVE's ``keep-last=3,keep-daily=7`` notation; ValueError on anything else."""
        values: dict[str, int | bool] = {}
        for item in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = item.partition("=")
            name = key.strip().replace("-", "_")
            if not sep or name not in {f"keep_{r}" for r in (*RULES, "all")}:
                raise ValueError(f"{item!r}: expected keep-last|hourly|daily|weekly|monthly|"
                                 "yearly=N or keep-all=0|1")
            if not value.strip().isdigit():
                raise ValueError(f"{item!r}: the value must be a whole number")
            values[name] = int(value) if name != "keep_all" else value.strip() == "1"
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Verdict:
    key: str  # the point's id
    created: datetime
    decision: Decision
    reason: str  # "keep-daily 2026-11-20", "protected", "pinned: ...", "not covered by ..."


def _periods(tz: ZoneInfo) -> dict[str, Callable[[datetime], str]]:
    def local(t: datetime) -> datetime:
        return t.astimezone(tz)

    def week(t: datetime) -> str:
        year, number, _ = local(t).isocalendar()
        return f"{year}-W{number:02d}"

    return {
        "hourly": lambda t: local(t).strftime("%Y-%m-%d %H:00"),
        "daily": lambda t: local(t).strftime("%Y-%m-%d"),
        "weekly": week,
        "monthly": lambda t: local(t).strftime("%Y-%m"),
        "yearly": lambda t: local(t).strftime("%Y"),
    }


def judge(points: Iterable[tuple[str, datetime]], policy: Policy, *, tz: str = "UTC",
          protected: Iterable[str] = (), pinned: Mapping[str, str] | None = None) -> list[Verdict]:
    """A verdict for every point of one guest (in one repository), newest first.
    ``points``: (id, creation time, timezone-aware); ``pinned``: id -> why it must stay."""
    ordered = sorted(points, key=lambda p: p[1], reverse=True)
    marks: dict[str, tuple[Decision, str]] = {}
    for key in set(protected):
        marks[key] = ("keep", "protected")
    if policy.keeps_everything:
        for key, _ in ordered:
            marks.setdefault(key, ("keep", "keep-all"))
    else:
        # keep-last: each creation time is its own period (as in PVE: by ctime)
        periods = {"last": lambda t: t.isoformat(), **_periods(ZoneInfo(tz))}
        for rule in RULES:
            _mark(ordered, marks, rule, policy.count(rule), periods[rule])
        for key, _ in ordered:
            marks.setdefault(key, ("remove", f"not covered by {policy.describe()}"))
    for key, why in (pinned or {}).items():
        if key in marks and marks[key][0] == "remove":
            marks[key] = ("keep", f"pinned: {why}")
    return [Verdict(key, created, *marks[key]) for key, created in ordered]


def _mark(ordered: list[tuple[str, datetime]], marks: dict[str, tuple[Decision, str]],
          rule: str, count: int, period: Callable[[datetime], str]) -> None:
    if not count:
        return
    covered = {period(t) for key, t in ordered if marks.get(key, ("",))[0] == "keep"
               and marks[key][1] != "protected"}
    newly: set[str] = set()
    for key, created in ordered:
        pid = period(created)
        if key in marks or pid in covered:
            continue
        if pid not in newly:
            if len(newly) >= count:
                return
            newly.add(pid)
            marks[key] = ("keep", "keep-last" if rule == "last" else f"keep-{rule} {pid}")
        else:
            marks[key] = ("remove", f"keep-{rule} kept a newer point of {pid}")
