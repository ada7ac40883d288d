"""Which jobs cover a guest the catalogue knows, without asking the nodes: a job's named
guests, its nodes, ``all``, and every guest its recent runs took (tags and pools are only
known to the nodes, so a guest selected by them is known from the runs that took it)."""

from __future__ import annotations

from collections.abc import Mapping

from ..config.model import JobConfig
from ..domain.guests import GuestRef, parse_guest
from ..ports import Catalog, GuestInfo

RECENT_JOB_RUNS = 200


def covering_jobs(jobs: Mapping[str, JobConfig], catalog: Catalog) -> dict[GuestRef, list[JobConfig]]:
    """Each catalogued guest -> the jobs covering it, by name."""
    taken: dict[str, set[str]] = {}
    for run in catalog.runs(RECENT_JOB_RUNS, kind="job"):
        taken.setdefault(str(run.args.get("job")), set()).update(o.guest for o in run.items)
    out: dict[GuestRef, list[JobConfig]] = {}
    for guest in catalog.guests():
        out[guest.ref] = [job for name, job in sorted(jobs.items())
                          if covers(job, guest) or str(guest.ref) in taken.get(name, set())]
    return out


def covers(job: JobConfig, guest: GuestInfo) -> bool:
    """What the config alone says (exclusions win)."""
    def named(texts: tuple[str, ...]) -> bool:
        return any(_matches(t, guest) for t in texts)

    if named(job.exclude):
        return False
    return job.all or guest.node in job.nodes or named(job.guests)


def _matches(text: str, guest: GuestInfo) -> bool:
    try:
        return parse_guest(text).matches(guest.ref, guest.name)
    except ValueError:
        return False
