"""``vzbackup replicate``: copy restore points to other repositories (a peer node's disk,
an S3 bucket), so that they survive the loss of a node, of the backup server, of the site.

For each point the target lacks, the copy is read from a repository that holds it, its
missing chunks are sent, then its manifest; the catalogue records the new copy.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..domain.points import RestorePoint
from ..errors import RepositoryError
from ..ports import Catalog, Clock, Reporter, Repository
from ..results import RunResult
from .outcome import attempt, recorded_run


def replicate(points: list[RestorePoint], repos: Mapping[str, Repository], target: Repository,
              catalog: Catalog, reporter: Reporter, clock: Clock) -> RunResult:
    args = {"to": target.name, "points": [p.id for p in points]}
    with recorded_run(catalog, clock, "replicate", args) as run:
        for point in points:
            if any(c.repository == target.name for c in point.copies):
                continue
            with attempt(str(point.guest), target.name) as a:
                source = _source_of(point, repos, target)
                with reporter.progress(f"replicate {point.guest} {point.id[:12]} to {target.name}",
                                       point.size) as advance:
                    stats = source.copy_point(point.id, target, advance)
                catalog.record_point(target.load_manifest(point.id), point.id, target.name)
                a.tally.point_id, a.tally.bytes_in = point.id, point.size
                a.tally.new_bytes = stats.bytes_sent
            run.add(a)
    return run.result({"to": target.name})


def _source_of(point: RestorePoint, repos: Mapping[str, Repository], target: Repository) -> Repository:
    """The first healthy copy the configuration can read."""
    for copy in point.copies:
        if copy.repository in repos and copy.repository != target.name and copy.state in ("ok", "unverified"):
            return repos[copy.repository]
    raise RepositoryError(f"restore point {point.id[:12]} of {point.guest} has no healthy copy "
                          "in a configured repository to replicate from",
                          hint="Run 'vzbackup verify' on it, or configure the repository holding it.")
