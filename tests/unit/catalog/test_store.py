"""The ``ports.Catalog`` contract of ``SqlCatalog``, on SQLite and PostgreSQL (see conftest)."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

from vzbackup.catalog import AmbiguousPoint, SqlCatalog, open_catalog
from vzbackup.domain.guests import GuestRef
from vzbackup.domain.manifest import ChunkRef, Manifest
from vzbackup.domain.points import RestorePoint
from vzbackup.errors import CatalogError, PointNotFound
from vzbackup.ports import GuestInfo
from vzbackup.results import GuestOutcome

T0 = datetime(2026, 3, 29, 0, 30, tzinfo=timezone.utc)
CT101 = GuestRef("ct", 101)
VM200 = GuestRef("vm", 200)


def manifest(guest: GuestRef = CT101, created: datetime = T0, **kw) -> Manifest:
    fields = dict(
        guest=guest, guest_name=f"web{guest.vmid}", platform="proxmox", source_node="node1",
        created=created, size=1000, sha256="ab" * 32, chunks=(ChunkRef(b"\x01" * 32, 1000),),
        labels={"why": "nightly"}, stats={"new_bytes_stored": 400},
    )
    return Manifest(**{**fields, **kw})


def record(catalog: SqlCatalog, m: Manifest, repository: str = "local") -> RestorePoint:
    return catalog.record_point(m, m.id, repository)


def is_aware_utc(when: datetime | None) -> bool:
    return when is not None and when.tzinfo is not None and when.utcoffset() == timedelta(0)


# ---- guests --------------------------------------------------------------------------


def test_upsert_guest_then_list(catalog):
    catalog.upsert_guest(GuestInfo(VM200, "db", "node2"))
    catalog.upsert_guest(GuestInfo(CT101, "web", "node1"))
    assert [(g.ref, g.name, g.node) for g in catalog.guests()] == [
        (CT101, "web", "node1"), (VM200, "db", "node2")]


def test_guest_moving_to_another_node_follows(catalog):
    catalog.upsert_guest(GuestInfo(CT101, "web", "node1"))
    catalog.upsert_guest(GuestInfo(CT101, "web-renamed", "node7"))
    catalog.upsert_guest(GuestInfo(CT101, "web-renamed", ""))  # node unknown: keep the last
    assert [(g.name, g.node) for g in catalog.guests()] == [("web-renamed", "node7")]


# ---- restore points --------------------------------------------------------------------


def test_record_point_returns_it_with_its_copy(catalog):
    m = manifest()
    point = record(catalog, m)
    assert point.id == m.id and point.guest == CT101 and point.guest_name == "web101"
    assert (point.size, point.new_bytes, point.source_node) == (1000, 400, "node1")
    assert point.labels == {"why": "nightly"}
    assert [(c.repository, c.state, c.verified_at) for c in point.copies] == [("local", "ok", None)]
    assert point.created == T0 and is_aware_utc(point.created)


def test_record_point_twice_is_idempotent(catalog):
    m = manifest()
    assert record(catalog, m) == record(catalog, m)
    assert len(catalog.points()) == 1
    assert len(catalog.point(m.id).copies) == 1


def test_second_repository_adds_a_copy(catalog):
    m = manifest()
    record(catalog, m, "local")
    point = record(catalog, m, "offsite")
    assert [c.repository for c in point.copies] == ["local", "offsite"]
    assert [c.repository for c in catalog.points()[0].copies] == ["local", "offsite"]


def test_first_point_of_unknown_guest_creates_it(catalog):
    record(catalog, manifest(VM200, source_node="node4"))
    assert [(g.ref, g.name, g.node) for g in catalog.guests()] == [(VM200, "web200", "node4")]


def test_points_by_guest_then_oldest_first(catalog):
    later = T0 + timedelta(days=1)
    for m in (manifest(VM200, later), manifest(CT101, later), manifest(VM200, T0), manifest(CT101, T0)):
        record(catalog, m)
    assert [(p.guest, p.created) for p in catalog.points()] == [
        (CT101, T0), (CT101, later), (VM200, T0), (VM200, later)]
    assert [p.created for p in catalog.points(VM200)] == [T0, later]
    assert catalog.points(GuestRef("vm", 101)) == []  # same VMID, other kind


def test_points_keep_their_kind_when_a_vmid_is_reused(catalog):
    old = manifest(CT101)
    record(catalog, old)
    catalog.upsert_guest(GuestInfo(GuestRef("vm", 101), "new-vm", "node2"))  # VMID reused
    record(catalog, manifest(GuestRef("vm", 101), T0 + timedelta(days=9)))
    assert [g.ref for g in catalog.guests()] == [GuestRef("vm", 101)]
    assert [p.id for p in catalog.points(CT101)] == [old.id]
    assert catalog.point(old.id).guest == CT101
    assert [p.guest for p in catalog.points()] == [CT101, GuestRef("vm", 101)]


def test_datetimes_come_back_aware_utc(catalog):
    local = datetime(2026, 10, 25, 2, 30, tzinfo=timezone(timedelta(hours=2)))
    m = manifest(created=local)
    record(catalog, m)
    catalog.record_copy_state(m.id, "local", "ok", local, verified_level="full")
    point = catalog.point(m.id)
    assert point.created == local and is_aware_utc(point.created)
    assert point.created.hour == 0
    assert is_aware_utc(point.copies[0].verified_at)


def test_naive_datetimes_are_refused(catalog):
    with pytest.raises(ValueError, match="naive"):
        catalog.start_run("backup", {}, datetime(2026, 1, 1))


# ---- finding a point by id or prefix ----------------------------------------------------------


def test_point_by_full_id_or_prefix(catalog):
    m = manifest()
    record(catalog, m)
    assert catalog.point(m.id).id == m.id
    assert catalog.point(m.id[:6]).id == m.id
    assert catalog.point(m.id[:12].upper()).id == m.id


def test_ambiguous_prefix_lists_candidates(catalog):
    ids = ["abcdef" + "0" * 57 + d for d in "12"]
    for point_id in ids:
        catalog.record_point(manifest(), point_id, "local")
    with pytest.raises(AmbiguousPoint) as caught:
        catalog.point("abcdef")
    assert isinstance(caught.value, PointNotFound)
    assert caught.value.candidates == tuple(ids)
    assert "abcdef000000" in str(caught.value) and "more hex digits" in caught.value.hint
    assert catalog.point(ids[1]).id == ids[1]


@pytest.mark.parametrize("asked", ["abc12", "not-hex-at-all", "f" * 65])
def test_malformed_point_ids_are_not_found(catalog, asked):
    with pytest.raises(PointNotFound, match="hex digits"):
        catalog.point(asked)


def test_unknown_point_names_what_was_asked(catalog):
    record(catalog, manifest())
    with pytest.raises(PointNotFound, match="'0123456789'") as caught:
        catalog.point("0123456789")
    assert not isinstance(caught.value, AmbiguousPoint)


# ---- copies -----------------------------------------------------------------------------


def test_record_copy_state(catalog):
    m = manifest()
    record(catalog, m)
    when = T0 + timedelta(hours=5)
    catalog.record_copy_state(m.id, "local", "corrupt", when, verified_level="full")
    catalog.record_copy_state(m.id, "offsite", "missing", when)  # a copy found by a check
    copies = {c.repository: c for c in catalog.point(m.id).copies}
    assert (copies["local"].state, copies["local"].verified_at) == ("corrupt", when)
    assert copies["offsite"].state == "missing"


def test_copy_state_checks(catalog):
    m = manifest()
    record(catalog, m)
    with pytest.raises(ValueError, match="copy state"):
        catalog.record_copy_state(m.id, "local", "fine", T0)
    with pytest.raises(ValueError, match="verify level"):
        catalog.record_copy_state(m.id, "local", "ok", T0, verified_level="deep")
    with pytest.raises(PointNotFound):
        catalog.record_copy_state("0" * 64, "local", "ok", T0)


def test_forget_copy_then_point(catalog):
    m = manifest()
    record(catalog, m, "local")
    record(catalog, m, "offsite")
    catalog.forget_copy(m.id, "local")
    assert [c.repository for c in catalog.point(m.id).copies] == ["offsite"]
    catalog.forget_copy(m.id, "offsite")
    catalog.forget_copy(m.id, "offsite")  # again: nothing to do, no error
    assert catalog.points() == []
    assert [g.ref for g in catalog.guests()] == [CT101]  # the guest stays


# ---- runs -----------------------------------------------------------------------------


def test_runs_and_items_round_trip(catalog):
    run_id = catalog.start_run("backup", {"guests": ["ct101", "vm200"], "all": False}, T0)
    assert catalog.run(run_id).status == "running"
    ok = GuestOutcome("ct101", "node1", "ok", point_id="ab" * 32, bytes_in=10**12,
                      new_bytes=5 * 10**9, seconds=12.5)
    failed = GuestOutcome("vm200", None, "failed", error="DumpFailed", exit_code=15,
                          message="vzdump exited 2", hint="look at the node")
    catalog.record_item(run_id, ok)
    catalog.record_item(run_id, failed)
    catalog.finish_run(run_id, "partial", T0 + timedelta(minutes=3))
    run = catalog.run(run_id)
    assert (run.kind, run.status) == ("backup", "partial")
    assert run.args == {"guests": ["ct101", "vm200"], "all": False}
    assert run.items == (ok, failed)
    assert is_aware_utc(run.started) and run.finished == T0 + timedelta(minutes=3)


def test_runs_newest_first_limited(catalog):
    ids = [catalog.start_run("verify", {}, T0 + timedelta(hours=h)) for h in range(5)]
    assert [r.id for r in catalog.runs(limit=3)] == ids[::-1][:3]


def test_run_errors(catalog):
    with pytest.raises(CatalogError, match="no run 999"):
        catalog.run(999)
    with pytest.raises(CatalogError, match="no run 999"):
        catalog.record_item(999, GuestOutcome("ct101", "node1", "ok"))
    run_id = catalog.start_run("backup", {}, T0)
    with pytest.raises(ValueError, match="run status"):
        catalog.finish_run(run_id, "done", T0)


# ---- several writers ----------------------------------------------------------------------


def test_concurrent_writers_do_not_fail(catalog_url):
    """Two writers (each with its own engine, as two processes would) hammer the catalogue."""
    catalogs = [open_catalog(catalog_url) for _ in range(2)]
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def writer(n: int, cat: SqlCatalog) -> None:
        try:
            start.wait()
            for i in range(40):
                run_id = cat.start_run("backup", {"writer": n}, T0)
                m = manifest(GuestRef("ct", 100 + i % 5), T0 + timedelta(minutes=i))
                cat.record_point(m, m.id, f"repo{n}")  # same points from both: unique races
                cat.upsert_guest(GuestInfo(m.guest, m.guest_name, f"node{n}"))
                cat.record_item(run_id, GuestOutcome(str(m.guest), "node1", "ok", point_id=m.id))
                cat.finish_run(run_id, "success", T0)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n, c), daemon=True) for n, c in enumerate(catalogs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "writers deadlocked"
    for cat in catalogs:
        cat.close()
    assert errors == []
    check = open_catalog(catalog_url)
    assert len(check.points()) == 40
    assert all(len(p.copies) == 2 for p in check.points())
    assert len(check.runs(limit=1000)) == 80
    check.close()


def test_clone_lineage_is_recorded_listed_by_source_and_replaced_by_vmid(catalog):
    from vzbackup.domain.clone import CloneRecord

    c = CloneRecord(CT101, "a" * 64, GuestRef("ct", 201), "node3", "staging", "vmbr0=vmbr9", T0)
    catalog.record_clone(c)
    catalog.record_clone(CloneRecord(GuestRef("vm", 200), "b" * 64, GuestRef("vm", 202), "node3",
                                     "app2", "isolated", T0 + timedelta(hours=1)))
    assert catalog.clones(CT101) == [c] and is_aware_utc(catalog.clones()[0].created)
    again = CloneRecord(CT101, "c" * 64, GuestRef("ct", 201), "node4", "staging", "", T0)
    catalog.record_clone(again)
    assert [x.point_id[0] for x in catalog.clones()] == ["c", "b"]


def test_checkpoints_are_recorded_listed_unique_per_guest_and_label_and_forgotten(catalog):
    from vzbackup.domain.checkpoints import Checkpoint

    a = Checkpoint(CT101, "pre-upgrade", "node1", T0, T0 + timedelta(days=7))
    b = Checkpoint(GuestRef("vm", 200), "pre-upgrade", "node1", T0)
    catalog.record_checkpoint(a)
    catalog.record_checkpoint(b)
    assert catalog.checkpoints() == [a, b] and is_aware_utc(catalog.checkpoints()[0].expires)
    with pytest.raises(CatalogError):
        catalog.record_checkpoint(a)
    catalog.forget_checkpoint(CT101, "pre-upgrade")
    assert catalog.checkpoints() == [b]


def test_branches_are_recorded_with_members_replaced_by_name_and_forgotten(catalog):
    from vzbackup.domain.branch import BranchMember, BranchRecord

    members = (BranchMember(CT101, "a" * 64, GuestRef("ct", 301), "web-expo", "a" * 64),
               BranchMember(VM200, "b" * 64, GuestRef("vm", 302), "app-expo", "c" * 64))
    b = BranchRecord("expo-2026", "node3", T0, T0 - timedelta(hours=1), "isolated",
                     ("/root/scrub.sh",), members)
    catalog.record_branch(b)
    assert catalog.branches() == [b] and is_aware_utc(catalog.branches()[0].at)
    assert BranchRecord.from_dict(b.to_dict()) == b
    refreshed = b.with_members((BranchMember(CT101, "d" * 64, GuestRef("ct", 303), "web-expo",
                                             "d" * 64),), T0 + timedelta(days=1))
    catalog.record_branch(refreshed)
    other = BranchRecord("demo", "node4", T0, None, "vmbr99", (), (), "bundle 1234")
    catalog.record_branch(other)
    assert catalog.branches() == [other, refreshed]
    catalog.forget_branch("expo-2026")
    assert catalog.branches() == [other]
