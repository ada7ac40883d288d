"""``vzbackup verify``: re-read restore points' copies and record what was found.

A copy on an SSH node's own disk is re-read by that node (``vzbackup agent``): only the
report crosses the network, not the data."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..domain.points import RestorePoint
from ..errors import IntegrityError
from ..ports import (Advance, Catalog, Clock, Node, Reporter, Repository, RepositoryAccess,
                     VerifyReport)
from ..results import RunResult
from .outcome import COPY_ERRORS, attempt, copy_state_after, home_node, recorded_run


def verify(points: list[RestorePoint], repos: Mapping[str, Repository], catalog: Catalog,
           reporter: Reporter, clock: Clock, *, full: bool = True, repair: bool = False,
           nodes: Mapping[str, Node] | None = None,
           access: RepositoryAccess | None = None,
           run_args: dict[str, Any] | None = None) -> RunResult:
    """Verify every copy of ``points``. With ``repair``, damaged chunks are quarantined so
    that the next backup of the same data stores them again."""
    args = {"points": [p.id for p in points], "full": full, **(run_args or {})}
    with recorded_run(catalog, clock, "verify", args) as run:
        for point in points:
            for copy in point.copies:
                repo = repos.get(copy.repository)
                if repo is None:
                    continue  # a copy in a repository this config does not name
                with attempt(str(point.guest), copy.repository) as a:
                    _verify_copy(point, repo, catalog, reporter, clock, full, repair,
                                 home_node(repo, nodes or {}, access))
                    a.tally.point_id = point.id
                    a.tally.bytes_in = point.size
                run.add(a)
    return run.result({"level": "full" if full else "quick"})


def _verify_copy(point: RestorePoint, repo: Repository, catalog: Catalog, reporter: Reporter,
                 clock: Clock, full: bool, repair: bool,
                 on: tuple[Node, dict] | None) -> None:
    label = f"verify {point.guest} {point.id[:12]} in {repo.name}"
    level = "full" if full else "quick"
    try:
        with reporter.progress(label, point.size if full else None) as advance:
            if on is None:
                report = repo.verify_point(point.id, full=full, advance=advance)
            else:
                report = _verify_on(on, point.id, full, advance)
    except COPY_ERRORS as e:
        state = copy_state_after(e)
        if state is not None:
            catalog.record_copy_state(point.id, repo.name, state, clock.now(), level)
        raise
    if not report.ok:
        catalog.record_copy_state(point.id, repo.name, "corrupt", clock.now(), level)
        if repair and report.damaged_chunks:
            moved = repo.quarantine_chunks(report.damaged_chunks)
            reporter.warning(f"{repo.name}: {moved} damaged chunk(s) of {point.id[:12]} taken out "
                             "(their pack moved to quarantine, its intact chunks kept); back up "
                             "the guest again to store them anew")
        shown = "; ".join(report.problems[:5])
        more = f" (and {len(report.problems) - 5} more)" if len(report.problems) > 5 else ""
        raise IntegrityError(f"restore point {point.id[:12]} of {point.guest} in {repo.name}: "
                             f"{shown}{more}")
    catalog.record_copy_state(point.id, repo.name, "ok", clock.now(), level)


def _verify_on(on: tuple[Node, dict], point_id: str, full: bool,
               advance: Advance | None) -> VerifyReport:
    node, spec = on
    done = node.agent.run({"op": "verify", "repository": spec, "point": point_id,  # type: ignore[union-attr]
                           "full": full}, advance)
    return VerifyReport(point_id, done["ok"], done["chunks_checked"], tuple(done["problems"]),
                        tuple(bytes.fromhex(c) for c in done["damaged_chunks"]))
