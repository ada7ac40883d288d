"""``vzbackup catalog rebuild``: recreate guests, restore points and copies from what the
repositories hold (promise 6: the catalogue is an index, never the only truth).

Idempotent: a point already catalogued only gains the copies it lacked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ..domain.branch import BranchRecord
from ..domain.checkpoints import Checkpoint
from ..domain.clone import CloneRecord
from ..domain.guests import GuestRef
from ..domain.manifest import Manifest
from ..errors import VzError
from ..ports import Catalog, Clock, GuestInfo, Reporter, Repository
from ..results import RunResult
from .outcome import attempt, recorded_run


def rebuild_catalog(repos: Mapping[str, Repository], catalog: Catalog, reporter: Reporter,
                    clock: Clock) -> RunResult:
    newest: dict[GuestRef, Manifest] = {}
    with recorded_run(catalog, clock, "rebuild", {"repositories": sorted(repos)}) as run:
        for repo in repos.values():
            found = 0
            for point_id in repo.point_ids():
                with attempt(point_id[:12], repo.name) as a:
                    manifest = repo.load_manifest(point_id)
                    catalog.record_point(manifest, point_id, repo.name)
                    a.tally.point_id, a.tally.bytes_in = point_id, manifest.size
                    _keep_newest(newest, manifest)
                    found += 1
                run.add(a)
            reporter.info(f"{repo.name}: {found} restore points catalogued")
        for manifest in newest.values():
            _restore_guest(catalog, manifest)
        lineage = _restore_lineage(repos, catalog, reporter)
        branches = _restore_branches(repos, catalog, reporter)
        checkpoints = _restore_checkpoints(repos, catalog, reporter)
    failed = [i for i in run.items if i.status == "failed"]
    return run.result({"points": len(run.items) - len(failed), "guests": len(newest),
                       "clones": lineage, "branches": branches, "checkpoints": checkpoints},
                      failed)


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


def _restore_lineage(repos: Mapping[str, Repository], catalog: Catalog,
                     reporter: Reporter) -> int:
    """Clones' lineage from the notes the repositories hold (the latest per clone)."""
    return _restore_noted(repos, reporter, "clone", "clone lineage record(s)",
                          {str(c.clone) for c in catalog.clones()},
                          lambda d: catalog.record_clone(CloneRecord.from_dict(d)))


def _restore_branches(repos: Mapping[str, Repository], catalog: Catalog,
                      reporter: Reporter) -> int:
    """Branches from the notes: the latest note per branch across the repositories (a
    destroyed branch's latest note is ``gone``)."""
    return _restore_noted(repos, reporter, "branch", "branch record(s)",
                          {b.name for b in catalog.branches()},
                          lambda d: catalog.record_branch(BranchRecord.from_dict(d)))


def _restore_checkpoints(repos: Mapping[str, Repository], catalog: Catalog,
                         reporter: Reporter) -> int:
    """Checkpoint rows from the notes (the snapshots themselves are on the nodes)."""
    return _restore_noted(repos, reporter, "checkpoint", "checkpoint(s)",
                          {f"{c.guest}/{c.label}" for c in catalog.checkpoints()},
                          lambda d: catalog.record_checkpoint(Checkpoint.from_dict(d)))


def _restore_noted(repos: Mapping[str, Repository], reporter: Reporter, kind: str, what: str,
                   known: set[str], record: Callable[[dict], None]) -> int:
    """Record each ``kind`` the notes hold that the catalogue lacks and that is not gone."""
    restored = 0
    for key, doc in sorted(_latest_notes(repos, kind, reporter, what).items()):
        if key in known or doc.get("gone"):
            continue
        record(doc["record"])
        restored += 1
    if restored:
        reporter.info(f"{restored} {what} restored from the repositories' notes")
    return restored


def _latest_notes(repos: Mapping[str, Repository], kind: str, reporter: Reporter,
                  what: str) -> dict[str, dict]:
    """key -> the latest note of ``kind`` across the repositories, ``gone`` ones included
    (one repository's removal outweighs another's older note)."""
    latest: dict[str, dict] = {}
    for repo in repos.values():
        try:
            notes = repo.notes(with_gone=True)
        except VzError as e:
            reporter.warning(f"{repo.name}: notes could not be read ({e}): {what} from it "
                             "are not restored")
            continue
        for (k, key), doc in notes.items():
            if k == kind and str(doc["time"]) >= str(latest.get(key, {}).get("time", "")):
                latest[key] = doc
    return latest
