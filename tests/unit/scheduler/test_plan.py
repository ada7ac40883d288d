"""Cron schedules across DST changes and the run a downtime missed, against golden files."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from freezegun import freeze_time

from vzbackup.config.jobs import cron_trigger
from vzbackup.scheduler.cron import CronSchedule
from vzbackup.scheduler.plan import Action, missed

GOLDEN = Path(__file__).parent / "golden"
BERLIN = ZoneInfo("Europe/Berlin")


def fires(cron: str, tz: str, start: str, end: str) -> list[datetime]:
    """Fire times in [start, end) (UTC), as the daemon's scheduler computes them."""
    trigger = CronSchedule(cron, tz)
    out, now = [], datetime.fromisoformat(start).replace(tzinfo=timezone.utc)
    stop = datetime.fromisoformat(end).replace(tzinfo=timezone.utc)
    fire = trigger.get_next_fire_time(None, now)
    while fire is not None and fire < stop:
        out.append(fire)
        fire = trigger.get_next_fire_time(fire, fire)  # as the scheduler asks, right on time
    return out


def check_golden(name: str, text: str) -> None:
    golden = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert text == golden.read_text()


CASES = [
    # (cron, zone, from, to): nightly jobs at hours DST skips or repeats, and hourly ones
    ("30 2 * * *", "Europe/Berlin", "2026-03-27T00:00", "2026-04-01T00:00"),
    ("30 2 * * *", "Europe/Berlin", "2026-10-23T00:00", "2026-10-28T00:00"),
    ("0 1 * * *", "Europe/Berlin", "2026-03-28T00:00", "2026-03-31T00:00"),
    ("0 * * * *", "Europe/Berlin", "2026-03-28T23:00", "2026-03-29T04:00"),
    ("0 * * * *", "Europe/Berlin", "2026-10-24T23:00", "2026-10-25T04:00"),
    ("15 3 * * 0", "America/New_York", "2026-03-01T00:00", "2026-03-20T00:00"),
    ("45 1 * * *", "America/New_York", "2026-10-31T00:00", "2026-11-04T00:00"),
    ("0 2 1 * *", "UTC", "2026-01-01T00:00", "2026-05-01T00:00"),
]


def test_cron_across_dst_changes_matches_the_golden_file():
    lines = []
    for cron, tz, start, end in CASES:
        lines.append(f"# {cron} ({tz}), {start} to {end} UTC")
        zone = ZoneInfo(tz)
        for f in fires(cron, tz, start, end):
            lines.append(f"{f.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC = "
                         f"{f.astimezone(zone):%Y-%m-%d %H:%M %Z}")
    check_golden("cron_dst.txt", "\n".join(lines) + "\n")


def test_each_night_runs_once_even_when_its_hour_is_skipped_or_repeated():
    spring = fires("30 2 * * *", "Europe/Berlin", "2026-03-28T00:00", "2026-03-31T00:00")
    autumn = fires("30 2 * * *", "Europe/Berlin", "2026-10-24T00:00", "2026-10-27T00:00")
    assert len(spring) == 3 and len(autumn) == 3


NIGHTLY = Action("job:nightly:backup", "nightly", "backup", "30 2 * * *", "Europe/Berlin")
MISSES = [
    # (last run started, now, grace in hours): what runs at start
    ("2026-11-20T01:30", "2026-11-21T01:00", 6),   # not due yet
    ("2026-11-20T01:30", "2026-11-21T04:00", 6),   # missed 02:30 by 2.5 h: run once
    ("2026-11-20T01:30", "2026-11-21T09:00", 6),   # missed by 7.5 h: skip until tonight
    ("2026-11-18T01:30", "2026-11-21T03:00", 6),   # three nights missed: one run
    ("2026-11-18T01:30", "2026-11-21T01:00", 30),  # last due yesterday, within 30 h
    ("2026-03-28T01:30", "2026-03-29T05:00", 6),   # the night DST began
    (None, "2026-11-21T04:00", 6),                 # never ran: a new daemon does not catch up
]


def test_misfire_after_downtime_matches_the_golden_file():
    lines = ["# nightly 30 2 * * * Europe/Berlin: last run (UTC), daemon starts (UTC), grace"
             " -> the run made at start"]
    for last, now, grace in MISSES:
        with freeze_time(now):
            start = datetime.now(timezone.utc)
            due = missed(NIGHTLY, datetime.fromisoformat(last).replace(tzinfo=timezone.utc)
                         if last else None, start, timedelta(hours=grace))
        shown = f"run now for {due.astimezone(BERLIN):%Y-%m-%d %H:%M %Z}" if due else "none"
        lines.append(f"{last or 'never':16} {now} {grace:3} h -> {shown}")
    check_golden("misfire.txt", "\n".join(lines) + "\n")


@pytest.mark.parametrize("bad", ["* * *", "61 * * * *", "0 25 * * *", "0 2 * * funday"])
def test_bad_cron_expressions_are_refused(bad):
    with pytest.raises(ValueError):
        cron_trigger(bad, "UTC")


@pytest.mark.parametrize("cron", ["30 2 * * *", "0 * * * *", "*/20 2 * * *", "59 1 * * 0"])
def test_time_always_moves_on_as_the_scheduler_asks(cron):
    """APScheduler's own trigger can return the same instant forever at a fall-back
    (agronholm/apscheduler#1021), which hangs its scheduler; ours never does."""
    trigger = CronSchedule(cron, "Europe/Berlin")
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    fire = trigger.get_next_fire_time(None, now)
    for _ in range(2000):
        later = trigger.get_next_fire_time(fire, fire + timedelta(milliseconds=10))
        assert later > fire
        fire = later
