"""``vzbackup backup``: dump guests and store each as a restore point.

Order per guest: lock, dump stream -> chunks, close the dump (its exit is checked), then
the manifest is committed, then the catalogue records it. A crash anywhere before the
commit leaves chunks for GC, never a half restore point.
"""

from __future__ import annotations

from ..ports import Catalog, Clock, Locks, PointDraft, Repository, Reporter
from ..results import GuestOutcome, RunResult
from .outcome import Attempt, attempt, recorded_run
from .selection import Selection, Target


def backup(selection: Selection, repo: Repository, catalog: Catalog, locks: Locks,
           reporter: Reporter, clock: Clock, labels: dict[str, str] | None = None) -> RunResult:
    """Back up every selected guest; a node that could not be searched is a failed item."""
    args = {"guests": [str(t.guest.ref) for t in selection.targets], "repository": repo.name}
    with recorded_run(catalog, clock, "backup", args) as run:
        for node, error in selection.unreachable:
            with attempt("*", node) as a:
                raise error
            _report(reporter, run.add(a))
        for target in selection.targets:
            with attempt(str(target.guest.ref), target.node.name) as a:
                _backup_one(a, target, repo, catalog, locks, reporter, clock, labels or {})
            _report(reporter, run.add(a))
    return run.result({"repository": repo.name})


def _backup_one(a: Attempt, target: Target, repo: Repository, catalog: Catalog, locks: Locks,
                reporter: Reporter, clock: Clock, labels: dict[str, str]) -> None:
    node, guest = target.node, target.guest
    with locks.guest(guest.ref, "backup"):
        catalog.upsert_guest(guest)
        writer = None
        try:
            with node.platform.dump(guest, node.snapshotter) as dump:
                writer = repo.new_point(PointDraft(
                    guest=guest.ref, guest_name=guest.name, platform=node.platform.name,
                    source_node=node.name, created=clock.now(), guest_config=dump.config,
                    labels=labels))
                with reporter.progress(f"backup {guest.ref} on {node.name}", None) as advance:
                    writer.write(dump.stream, advance)
            manifest = writer.commit()  # only after the dumper exited cleanly
            a.tally.warnings += dump.warnings
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
    point = catalog.record_point(manifest, manifest.id, repo.name)
    a.tally.point_id = point.id
    a.tally.bytes_in = writer.stats.bytes_in
    a.tally.new_bytes = writer.stats.new_bytes_stored


def _report(reporter: Reporter, o: GuestOutcome) -> None:
    if o.status == "ok":
        reporter.info(f"{o.guest} on {o.node}: restore point {o.point_id and o.point_id[:12]}")
        for warning in o.warnings:
            reporter.warning(f"{o.guest} on {o.node}: {warning}")
    else:
        reporter.warning(f"{o.guest} on {o.node}: {o.message}")
