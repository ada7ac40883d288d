"""Retention with Proxmox VE's prune-backups semantics: worked examples and 400 days."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from vzbackup.domain.retention import Policy, judge

GOLDEN = Path(__file__).parent / "golden"
BERLIN = ZoneInfo("Europe/Berlin")


def at(text: str, tz=timezone.utc) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=tz)


def kept(verdicts) -> list[str]:
    return [v.key for v in verdicts if v.decision == "keep"]


def test_keep_last_then_daily_skips_days_already_covered():
    points = [(f"p{i}", at("2026-11-01T02:00") + timedelta(hours=12 * i)) for i in range(8)]
    verdicts = judge(points, Policy(keep_last=2, keep_daily=2))
    # newest first: p7 (11-04 14h) p6 (11-04 02h) kept by keep-last; 11-04 is covered, so
    # keep-daily takes the newest point of 11-03 (p5) and of 11-02 (p3)
    assert kept(verdicts) == ["p7", "p6", "p5", "p3"]
    reasons = {v.key: v.reason for v in verdicts}
    assert reasons["p5"] == "keep-daily 2026-11-03"
    assert reasons["p4"] == "keep-daily kept a newer point of 2026-11-03"
    assert reasons["p0"] == "not covered by keep-daily=2,keep-last=2"


def test_a_later_rule_cannot_keep_what_an_earlier_one_removed():
    # two points on one day: keep-daily keeps the newer and removes the older, and
    # keep-weekly cannot take the older one back (PVE marks it 'remove' at once)
    points = [("new", at("2026-11-04T20:00")), ("old", at("2026-11-04T02:00"))]
    assert kept(judge(points, Policy(keep_daily=1, keep_weekly=5))) == ["new"]


def test_protected_points_are_kept_and_count_for_nothing():
    points = [(f"p{i}", at("2026-11-01T02:00") + timedelta(days=i)) for i in range(5)]
    verdicts = judge(points, Policy(keep_last=2), protected={"p4", "p0"})
    assert kept(verdicts) == ["p4", "p3", "p2", "p0"]
    assert {v.key: v.reason for v in verdicts}["p0"] == "protected"


def test_pinned_points_stay_whatever_the_policy():
    points = [(f"p{i}", at("2026-11-01T02:00") + timedelta(days=i)) for i in range(4)]
    verdicts = judge(points, Policy(keep_last=1), pinned={"p1": "newest verified point"})
    assert kept(verdicts) == ["p3", "p1"]
    assert {v.key: v.reason for v in verdicts}["p1"] == "pinned: newest verified point"


def test_no_keep_option_keeps_everything():
    points = [("a", at("2026-11-01T02:00")), ("b", at("2026-11-02T02:00"))]
    assert kept(judge(points, Policy())) == ["b", "a"]
    assert kept(judge(points, Policy(keep_all=True, keep_last=1))) == ["b", "a"]


def test_days_follow_the_policy_time_zone():
    # 23:30 UTC on 11-03 is 00:30 on 11-04 in Berlin: one day in UTC, two days there
    points = [("late", at("2026-11-03T23:30")), ("early", at("2026-11-03T01:00"))]
    assert kept(judge(points, Policy(keep_daily=2), tz="UTC")) == ["late"]
    assert kept(judge(points, Policy(keep_daily=1), tz="Europe/Berlin")) == ["late"]
    assert kept(judge(points, Policy(keep_daily=2), tz="Europe/Berlin")) == ["late", "early"]


def test_policy_notation_round_trips_and_rejects_nonsense():
    policy = Policy.parse("keep-last=3, keep-daily=7,keep-monthly=6")
    assert policy == Policy(keep_last=3, keep_daily=7, keep_monthly=6)
    assert policy.describe() == "keep-daily=7,keep-last=3,keep-monthly=6"
    for bad in ("keep-forever=1", "keep-last", "keep-last=-1", "keep-daily=x"):
        with pytest.raises(ValueError):
            Policy.parse(bad)


def simulated_points() -> list[tuple[str, datetime]]:
    """400 nights at 02:00 Berlin time (across two DST changes each way), plus a manual
    point at 14:00 every 10th day, starting 2025-10-20."""
    points = []
    day = datetime(2025, 10, 20, 2, 0, tzinfo=BERLIN)
    for n in range(400):
        night = (day + timedelta(days=n)).replace(hour=2)
        points.append((f"n{n:03d}", night.astimezone(timezone.utc)))
        if n % 10 == 0:
            points.append((f"m{n:03d}", night.replace(hour=14).astimezone(timezone.utc)))
    return points


def test_400_days_match_the_golden_file():
    policy = Policy(keep_last=3, keep_hourly=2, keep_daily=7, keep_weekly=4, keep_monthly=6,
                    keep_yearly=2)
    verdicts = judge(simulated_points(), policy, tz="Europe/Berlin", protected={"n100"})
    lines = [f"{v.key} {v.created.astimezone(BERLIN):%Y-%m-%d %H:%M %Z} {v.decision:6} {v.reason}"
             for v in verdicts if v.decision == "keep"]
    text = f"# {policy.describe()}, Europe/Berlin, n100 protected; kept points, newest first\n" \
        + "\n".join(lines) + "\n"
    golden = GOLDEN / "retention_400_days.txt"
    if os.environ.get("UPDATE_GOLDEN") == "1":  # (VZBACKUP_* is cleared by a fixture)
        golden.write_text(text)
    assert text == golden.read_text()
    # protected + each rule's count; keep-yearly finds one year besides the covered 2026
    assert len(lines) == 1 + 3 + 2 + 7 + 4 + 6 + 1
