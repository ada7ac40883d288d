"""``vzbackup backup``: dump guests and store each as a restore point.

Order per guest: lock, dump stream -> chunks, close the dump (its exit is checked), then
the manifest is committed, then the catalogue records it. A crash anywhere before the
commit leaves chunks for GC, never a half restore point.

Where the dump is taken: on this host, or on a node over SSH. When that node can open the
repository by itself (SFTP, S3, its own disk), the whole job runs there and the data goes
node -> repository; otherwise the dump streams through this process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from ..domain.manifest import Manifest
from ..ports import (Advance, Catalog, Clock, DumpSlots, GuestInfo, Locks, Node, PointDraft,
                     Repository, RepositoryAccess, Reporter, WriteStats)
from ..results import GuestOutcome, RunResult
from .outcome import Attempt, attempt, recorded_run
from .selection import Selection, Target


def backup(selection: Selection, repo: Repository, catalog: Catalog, locks: Locks,
           reporter: Reporter, clock: Clock, labels: dict[str, str] | None = None,
           access: RepositoryAccess | None = None, *, slots: DumpSlots | None = None,
           run_args: dict[str, Any] | None = None) -> RunResult:
    """Back up every selected guest; a node that could not be searched is a failed item.
    With ``slots``, guests are dumped in parallel within its limits (overall, per node)."""
    args = {"guests": [str(t.guest.ref) for t in selection.targets], "repository": repo.name,
            **(run_args or {})}
    with recorded_run(catalog, clock, "backup", args) as run:
        for node, error in selection.unreachable:
            with attempt("*", node) as a:
                raise error
            _report(reporter, run.add(a))
        for guest, error in selection.missing:
            with attempt(guest, None) as a:
                raise error
            _report(reporter, run.add(a))

        def one(target: Target) -> GuestOutcome:
            with attempt(str(target.guest.ref), target.node.name) as a:
                _backup_one(a, target, repo, catalog, locks, reporter, clock, labels or {},
                            access)
            outcome = run.add(a)
            _report(reporter, outcome)
            return outcome

        if slots is None:
            for target in selection.targets:
                one(target)
        else:
            in_parallel(selection.targets, one, slots)
    return run.result({"repository": repo.name})


def in_parallel(targets: list[Target], one: Callable[[Target], GuestOutcome],
                slots: DumpSlots) -> None:
    """``one`` for every target, each in a dump slot of its node. An interruption
    (SystemExit: SIGTERM) in one worker cancels what has not started and is raised here."""
    def held(target: Target) -> GuestOutcome:
        with slots.hold(target.node.name):
            return one(target)

    pool = ThreadPoolExecutor(max(1, min(len(targets), slots.overall)),
                              thread_name_prefix=f"{threading.current_thread().name}-dump")
    try:
        for future in [pool.submit(held, t) for t in targets]:
            future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _backup_one(a: Attempt, target: Target, repo: Repository, catalog: Catalog, locks: Locks,
                reporter: Reporter, clock: Clock, labels: dict[str, str],
                access: RepositoryAccess | None) -> None:
    node, guest = target.node, target.guest
    with locks.guest(guest.ref, "backup"):
        catalog.upsert_guest(guest)
        spec = access.spec_for(repo.name, node.name) if access and node.agent else None
        with reporter.progress(f"backup {guest.ref} on {node.name}", None) as advance:
            if spec is not None and node.agent is not None:
                done = node.agent.run({"op": "backup", "guest": guest.to_dict(),
                                       "repository": spec, "created": clock.now().isoformat(),
                                       "labels": labels}, advance)
                manifest = repo.load_manifest(done["point_id"])  # and check it is there
                stats = WriteStats(**done["stats"])
                warnings = list(done.get("warnings", []))
            else:
                manifest, stats, warnings = store_dump(node, guest, repo, clock.now(), labels,
                                                       advance)
    point = catalog.record_point(manifest, manifest.id, repo.name)
    a.tally.point_id = point.id
    a.tally.bytes_in = stats.bytes_in
    a.tally.new_bytes = stats.new_bytes_stored
    a.tally.warnings += warnings


def store_dump(node: Node, guest: GuestInfo, repo: Repository, created: datetime,
               labels: dict[str, str], advance: Advance | None
               ) -> tuple[Manifest, WriteStats, list[str]]:
    """Dump ``guest`` on ``node`` into ``repo`` and commit the point (also what the agent
    runs on a node). The manifest is written only after the dumper exited cleanly."""
    writer = None
    try:
        with node.dump(guest) as dump:
            writer = repo.new_point(PointDraft(
                guest=guest.ref, guest_name=guest.name, platform=node.platform_name,
                source_node=node.name, created=created, guest_config=dump.config,
                labels=labels))
            writer.write(dump.stream, advance)
        manifest = writer.commit()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    return manifest, writer.stats, list(dump.warnings)


def _report(reporter: Reporter, o: GuestOutcome) -> None:
    if o.status == "ok":
        reporter.info(f"{o.guest} on {o.node}: restore point {o.point_id and o.point_id[:12]}")
        for warning in o.warnings:
            reporter.warning(f"{o.guest} on {o.node}: {warning}")
    else:
        reporter.warning(f"{o.guest} on {o.node}: {o.message}")
