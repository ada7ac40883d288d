"""``vzbackup import``: vzdump archives already on disk become restore points.

Each archive is stored decompressed (so that it deduplicates against every other point),
with its original name, its notes, its protection and its ``.log`` as labels
(``vzdump.archive``, ``notes``, ``protected``, ``vzdump.log``). An archive already
imported (same guest, same original name) is not stored again. A file that looks like a
vzdump archive but cannot be imported is a failed item naming it; the others go on.
"""

from __future__ import annotations

from datetime import timezone
from pathlib import Path

from ..domain.points import ARCHIVE
from ..domain.vzdump import NotAnArchiveName, parse_archive_name
from ..errors import BadArchive
from ..ports import Archives, Catalog, Clock, PointDraft, Repository, Reporter
from ..results import RunResult
from .outcome import Attempt, attempt, recorded_run


def import_archives(paths: list[Path], repo: Repository, catalog: Catalog, archives: Archives,
                    reporter: Reporter, clock: Clock, *, source_node: str,
                    labels: dict[str, str] | None = None) -> RunResult:
    found, problems = archives.find(paths)
    args = {"paths": [str(p) for p in paths], "repository": repo.name, "node": source_node}
    with recorded_run(catalog, clock, "import", args) as run:
        for path, why in problems:
            with attempt(_guest_of(path), source_node) as a:
                raise BadArchive(f"{path}: {why}")
            _report(reporter, run.add(a), path)
        for path in found:
            with attempt(_guest_of(path), source_node) as a:
                _import_one(a, path, repo, catalog, archives, reporter, source_node, labels or {})
            _report(reporter, run.add(a), path)
    return run.result({"repository": repo.name})


def _guest_of(path: Path) -> str:
    try:
        return str(parse_archive_name(path.name).guest)
    except NotAnArchiveName:
        return "?"


def _import_one(a: Attempt, path: Path, repo: Repository, catalog: Catalog, archives: Archives,
                reporter: Reporter, source_node: str, labels: dict[str, str]) -> None:
    ref = parse_archive_name(path.name).guest
    done = [p for p in catalog.points(ref) if p.labels.get(ARCHIVE) == path.name
            and any(c.repository == repo.name for c in p.copies)]
    if done:
        a.tally.point_id = done[0].id
        a.tally.extra["already"] = True
        return
    writer = None
    try:
        with archives.open(path) as arc, reporter.progress(f"import {path.name}", None) as advance:
            writer = repo.new_point(PointDraft(
                guest=arc.guest, guest_name=arc.guest_name, platform=arc.platform,
                source_node=source_node, created=arc.created.astimezone(timezone.utc),
                guest_config=arc.config, labels={**labels, **arc.labels}))
            writer.write(arc.stream, advance)
            a.tally.warnings += arc.warnings
        manifest = writer.commit()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    catalog.record_point(manifest, manifest.id, repo.name)
    a.tally.point_id = manifest.id
    a.tally.bytes_in = writer.stats.bytes_in
    a.tally.new_bytes = writer.stats.new_bytes_stored


def _report(reporter: Reporter, o, path: Path) -> None:  # noqa: ANN001
    if o.status == "ok":
        reporter.info(f"{path.name}: restore point {o.point_id and o.point_id[:12]}"
                      + (" (imported before)" if not o.bytes_in else ""))
        for w in o.warnings:
            reporter.warning(f"{path.name}: {w}")
    else:
        reporter.warning(o.message or f"{path.name}: failed")
