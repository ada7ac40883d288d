"""Cron schedules in a time zone, with cron's own rules at DST changes:

- a time that does not exist (clocks jump forward) runs once that night, at the same
  instant of the new time (02:30 CET that never comes runs at 03:30 CEST);
- a fixed time that exists twice (clocks go back) runs once, at its first occurrence;
- a schedule with ``*`` in its minute or hour runs at every real instant (an hourly job
  runs at 02:00 CEST and at 02:00 CET).

APScheduler 3.11's ``CronTrigger`` computes the next time from a previous fire time in a
way that can return the same instant forever at a fall-back (agronholm/apscheduler#1021):
its scheduler then hangs. ``CronSchedule`` asks it only "the first time after instant T"
(no previous fire time), with T strictly after the previous fire, so time always moves on.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from apscheduler.triggers.base import BaseTrigger

from ..config.jobs import cron_trigger

STEP = timedelta(seconds=1)


class CronSchedule(BaseTrigger):
    def __init__(self, expression: str, tz: str):
        self.expression, self.tz = expression, tz
        self.cron = cron_trigger(expression, tz)
        minute, hour = expression.split()[:2]
        self.fixed = "*" not in minute and "*" not in hour

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        start = now.astimezone(timezone.utc)
        if previous_fire_time is not None:
            start = max(start, previous_fire_time.astimezone(timezone.utc) + STEP)
        fire = self.cron.get_next_fire_time(None, start)
        if self.fixed and previous_fire_time is not None and fire is not None \
                and _wall(fire, self.cron.timezone) == _wall(previous_fire_time, self.cron.timezone):
            fire = self.cron.get_next_fire_time(None, fire.astimezone(timezone.utc) + STEP)
        # In UTC: a time that does not exist comes back with its wall time as given (02:30
        # "CET" on the night of the change), and datetimes sharing a zone compare by wall
        # time, so 02:00 CET (the repeated hour) would look earlier than 02:40 CEST.
        return fire.astimezone(timezone.utc) if fire else None

    def __str__(self) -> str:
        return f"cron[{self.expression} ({self.tz})]"

    def __repr__(self) -> str:
        return f"<CronSchedule {self.expression!r} {self.tz}>"


def _wall(when: datetime, tz) -> datetime:  # noqa: ANN001
    return when.astimezone(tz).replace(tzinfo=None, fold=0)
