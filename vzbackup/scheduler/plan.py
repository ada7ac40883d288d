"""What the daemon schedules: one action per job (its backup) and one per verification
schedule, under ids that depend only on the config, so reconciling on start and SIGHUP
keeps what did not change. Also which run a downtime missed (``missed``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ..config.model import Config
from .cron import CronSchedule


@dataclass(frozen=True)
class Action:
    id: str  # "job:nightly:backup", "job:nightly:verify"
    job: str
    action: str  # backup | verify
    cron: str
    timezone: str

    @property
    def spec(self) -> str:
        """What decides when it runs; a changed spec means a new schedule."""
        return f"{self.cron} ({self.timezone})"

    def trigger(self) -> CronSchedule:
        return CronSchedule(self.cron, self.timezone)


def planned(config: Config) -> list[Action]:
    out = []
    for name, job in sorted(config.jobs.items()):
        if not job.enabled:
            continue
        out.append(Action(f"job:{name}:backup", name, "backup", job.schedule, job.timezone))
        if job.verify_schedule:
            out.append(Action(f"job:{name}:verify", name, "verify", job.verify_schedule,
                              job.timezone))
    return out


def missed(action: Action, last_started: datetime | None, now: datetime,
           grace: timedelta) -> datetime | None:
    """The newest time ``action`` was due after its last run and by ``now``, if that is at
    most ``grace`` ago: the one run a downtime missed (several missed runs are one, as
    coalescing does). None when nothing was missed, the miss is too old, or the action
    never ran (a new daemon does not run what was due before it existed)."""
    if last_started is None:
        return None
    trigger = action.trigger()
    due = None
    fire = trigger.get_next_fire_time(None, max(last_started, now - grace - timedelta(days=1)))
    while fire is not None and fire <= now:
        if fire > last_started:
            due = fire
        fire = trigger.get_next_fire_time(fire, fire)
    if due is None or now - due > grace:
        return None
    return due
