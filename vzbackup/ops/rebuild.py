"""``vzbackup catalog rebuild``: recreate guests, restore points and copies from what the
repositories hold (promise 6: the catalogue is an index, never the only truth).

Idempotent: a point already catalogued only gains the copies it lacked.
"""

from __future__ import annotations

from collections.abc import Mapping

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
    found = {k: d for k, d in _latest_notes(repos, "clone", reporter, "clone lineage records").items()
             if not d.get("gone")}
    known = {str(c.clone) for c in catalog.clones()}
    restored = 0
    for key, doc in sorted(found.items()):
        if key in known:
            continue
        catalog.record_clone(CloneRecord.from_dict(doc["record"]))
        restored += 1
    if restored:
        reporter.info(f"{restored} clone lineage record(s) restored from the repositories' notes")
    return restored


def _restore_branches(repos: Mapping[str, Repository], catalog: Catalog,
                      reporter: Reporter) -> int:
    """Branches from the notes the repositories hold: the latest note per branch across
    them (a destroyed branch's latest note is ``gone``)."""
    latest = _latest_notes(repos, "branch", reporter, "branches")
    known = {b.name for b in catalog.branches()}
    restored = 0
    for name, doc in sorted(latest.items()):
        if name in known or doc.get("gone"):
            continue
        catalog.record_branch(BranchRecord.from_dict(doc["record"]))
        restored += 1
    if restored:
        reporter.info(f"{restored} branch record(s) restored from the repositories' notes")
    return restored


def _restore_checkpoints(repos: Mapping[str, Repository], catalog: Catalog,
                         reporter: Reporter) -> int:
    """Checkpoint rows from the notes (the snapshots themselves are on the nodes)."""
    latest = _latest_notes(repos, "checkpoint", reporter, "checkpoints")
    known = {f"{c.guest}/{c.label}" for c in catalog.checkpoints()}
    restored = 0
    for key, doc in sorted(latest.items()):
        if key in known or doc.get("gone"):
            continue
        catalog.record_checkpoint(Checkpoint.from_dict(doc["record"]))
        restored += 1
    if restored:
        reporter.info(f"{restored} checkpoint(s) restored from the repositories' notes")
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
