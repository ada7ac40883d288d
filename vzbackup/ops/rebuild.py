"""``vzbackup catalog rebuild``: recreate guests, restore points and copies from what the
repositories hold (promise 6: the catalogue is an index, never the only truth).

Idempotent: a point already catalogued only gains the copies it lacked.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..domain.guests import GuestRef
from ..domain.manifest import Manifest
from ..ports import Catalog, Clock, GuestInfo, Reporter, Repository
from ..results import GuestOutcome, RunResult, overall
from .outcome import attempt


def rebuild_catalog(repos: Mapping[str, Repository], catalog: Catalog, reporter: Reporter,
                    clock: Clock) -> RunResult:
    run_id = catalog.start_run("rebuild", {"repositories": sorted(repos)}, clock.now())
    items: list[GuestOutcome] = []
    newest: dict[GuestRef, Manifest] = {}
    try:
        for repo in repos.values():
            found = 0
            for point_id in repo.point_ids():
                with attempt(point_id[:12], repo.name) as a:
                    manifest = repo.load_manifest(point_id)
                    catalog.record_point(manifest, point_id, repo.name)
                    a.tally.point_id, a.tally.bytes_in = point_id, manifest.size
                    _keep_newest(newest, manifest)
                    found += 1
                assert a.outcome is not None
                items.append(a.outcome)
            reporter.info(f"{repo.name}: {found} restore points catalogued")
        for manifest in newest.values():
            _restore_guest(catalog, manifest)
    except BaseException:
        catalog.finish_run(run_id, "aborted", clock.now())
        raise
    failed = [i for i in items if i.status == "failed"]
    for item in failed:
        catalog.record_item(run_id, item)
    status = overall(items) if items else "success"
    catalog.finish_run(run_id, status, clock.now())
    return RunResult("rebuild", status, tuple(failed), run_id,
                     {"points": len(items) - len(failed), "guests": len(newest)})


def _keep_newest(newest: dict[GuestRef, Manifest], manifest: Manifest) -> None:
    known = newest.get(manifest.guest)
    if known is None or manifest.created > known.created:
        newest[manifest.guest] = manifest


def _restore_guest(catalog: Catalog, manifest: Manifest) -> None:
    """A guest the catalogue lost comes back on the node of its newest restore point."""
    if any(g.ref == manifest.guest for g in catalog.guests()):
        return
    catalog.upsert_guest(GuestInfo(manifest.guest, manifest.guest_name, manifest.source_node,
                                   config=dict(manifest.guest_config)))
