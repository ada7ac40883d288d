"""``vzbackup replicate``: copy restore points to other repositories (a peer node's disk,
an S3 bucket), so that they survive the loss of a node, of the backup server, of the site.

For each point the target lacks, the copy is read from a repository that holds it, its
missing chunks are sent, then its manifest; the catalogue records the new copy.

Where the copy runs: on the node whose own disk holds the source (else the target), when
that node is reached over SSH and can open both repositories, so the data goes node to
node or node to S3; otherwise in this process.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..domain.points import RestorePoint
from ..errors import RepositoryError
from ..ports import Catalog, Clock, CopyStats, Node, Reporter, Repository, RepositoryAccess
from ..results import RunResult
from .outcome import attempt, recorded_run


def replicate(points: list[RestorePoint], repos: Mapping[str, Repository], target: Repository,
              catalog: Catalog, reporter: Reporter, clock: Clock,
              nodes: Mapping[str, Node] | None = None,
              access: RepositoryAccess | None = None,
              run_args: dict[str, Any] | None = None) -> RunResult:
    args = {"to": target.name, "points": [p.id for p in points], **(run_args or {})}
    ran_on: dict[str, None] = {}  # where the copies ran, in order
    with recorded_run(catalog, clock, "replicate", args) as run:
        for point in points:
            if any(c.repository == target.name for c in point.copies):
                continue
            with attempt(str(point.guest), target.name) as a:
                source = _source_of(point, repos, target)
                with reporter.progress(f"replicate {point.guest} {point.id[:12]} to {target.name}",
                                       point.size) as advance:
                    on = _copier(source, target, nodes or {}, access)
                    if on is None:
                        stats = source.copy_point(point.id, target, advance)
                    else:
                        node, job = on
                        done = node.agent.run({**job, "point": point.id}, advance)  # type: ignore[union-attr]
                        stats = CopyStats(**done)
                    ran_on["controller" if on is None else on[0].name] = None
                catalog.record_point(target.load_manifest(point.id), point.id, target.name)
                a.tally.point_id, a.tally.bytes_in = point.id, point.size
                a.tally.new_bytes = stats.bytes_sent
            run.add(a)
    return run.result({"to": target.name, "ran_on": list(ran_on)})


def _source_of(point: RestorePoint, repos: Mapping[str, Repository], target: Repository) -> Repository:
    """The first healthy copy the configuration can read."""
    for copy in point.copies:
        if copy.repository in repos and copy.repository != target.name and copy.state in ("ok", "unverified"):
            return repos[copy.repository]
    raise RepositoryError(f"restore point {point.id[:12]} of {point.guest} has no healthy copy "
                          "in a configured repository to replicate from",
                          hint="Run 'vzbackup verify' on it, or configure the repository holding it.")


def _copier(source: Repository, target: Repository, nodes: Mapping[str, Node],
            access: RepositoryAccess | None) -> tuple[Node, dict[str, Any]] | None:
    """The SSH node to run the copy on (the source's home, else the target's) and its job;
    None: copy here."""
    if access is None:
        return None
    for home in (access.home(source.name), access.home(target.name)):
        node = nodes.get(home or "")
        if node is None or node.agent is None:
            continue
        src, dst = access.spec_for(source.name, node.name), access.spec_for(target.name, node.name)
        if src is not None and dst is not None:
            return node, {"op": "replicate", "source": src, "target": dst}
    return None
