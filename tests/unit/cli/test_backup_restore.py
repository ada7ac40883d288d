"""The core promise through the command line: back up, list, restore identical, verify."""

from __future__ import annotations

import shutil

from demo.treedigest import allocated_bytes, describe, differences


def test_backup_points_restore_roundtrip(backed_up):
    lab = backed_up
    original = describe(lab.node("node1") / "ct101" / "rootfs")
    points = lab.ok("points", "--json").json()
    assert sorted(p["guest"]["kind"] + str(p["guest"]["vmid"]) for p in points) == ["ct101", "vm200"]
    assert all(p["copies"][0]["repository"] == "main" for p in points)

    shutil.rmtree(lab.node("node1") / "ct101")
    lab.ok("restore", "ct101", "--to", "node2")
    restored = describe(lab.node("node2") / "ct101" / "rootfs")
    assert differences(original, restored) == []
    assert "hostname: web1\n" in (lab.node("node2") / "ct101" / "guest.conf").read_text()


def test_second_backup_of_unchanged_guests_stores_almost_nothing(backed_up):
    lab = backed_up
    second = lab.ok("backup", "--all", "--json").json()
    assert second["status"] == "success"
    assert sum(i["new_bytes"] for i in second["items"]) < 64 * 1024  # manifests' worth
    assert len(lab.ok("points", "ct101", "--json").json()) == 2


def test_vm_image_restored_sparse_and_identical(backed_up):
    lab = backed_up
    image = lab.node("node1") / "vm200" / "disk-0.raw"
    data = image.read_bytes()
    lab.ok("restore", "vm200", "--to", "node2")
    copy = lab.node("node2") / "vm200" / "disk-0.raw"
    assert copy.read_bytes() == data
    assert allocated_bytes(copy) <= allocated_bytes(image) + 1024 * 1024


def test_restore_by_bare_id_hostname_point_prefix_and_time(backed_up):
    lab = backed_up
    point = lab.ok("points", "ct101", "--json").json()[0]
    lab.ok("restore", "web1", "--to", "node2", "--as", "302", "--point", point["id"][:8])
    lab.ok("restore", "101", "--to", "node2", "--as", "301")
    r = lab.run("restore", "web1", "--to", "node2", "--as", "304")
    assert r.code == 18 and "web1 is ambiguous: ct101, ct301, ct302" in r.err
    lab.ok("restore", "ct101", "--to", "node2", "--as", "303", "--at", point["created"])
    for vmid in (301, 302, 303):
        assert (lab.node("node2") / f"ct{vmid}" / "rootfs" / "usr/bin/app").is_file()


def test_dry_run_changes_nothing(backed_up):
    lab = backed_up
    r = lab.ok("restore", "ct101", "--to", "node2", "--dry-run")
    assert "restore ct101 point" in r.out and "on node2 from main" in r.out
    assert not (lab.node("node2") / "ct101").exists()


def test_verify_all_passes_and_records(backed_up):
    lab = backed_up
    r = lab.ok("verify", "--all", "--json").json()
    assert r["status"] == "success" and len(r["items"]) == 2
    copies = [c for p in lab.ok("points", "--json").json() for c in p["copies"]]
    assert {c["state"] for c in copies} == {"ok"} and all(c["verified_at"] for c in copies)


def test_json_output_is_an_envelope_and_progress_stays_off_stdout(backed_up):
    import json
    r = backed_up.ok("points", "--json")
    doc = json.loads(r.out)
    assert doc["command"] == "points" and doc["schema"] == 1 and "vzbackup" in doc


def test_repair_quarantines_damaged_chunks_and_next_backup_heals_old_points(backed_up):
    from tests.unit.cli.test_exit_codes import flip_byte_in_a_pack
    lab = backed_up
    pack, _ = flip_byte_in_a_pack(lab.root / "repo")
    assert lab.run("backup", "--all").code == 0
    assert lab.run("verify", "--all").code == 7  # the new points reused the damaged chunk
    assert lab.run("verify", "--all", "--repair").code == 7
    assert not pack.exists() and (lab.root / "repo" / "quarantine" / pack.name).exists()
    lab.ok("backup", "--all")  # the guests still hold the data: the chunk is stored anew
    r = lab.ok("verify", "--all", "--json").json()
    assert r["status"] == "success" and len(r["items"]) == 6


def test_catalog_rebuild_brings_points_back_identical(backed_up):
    lab = backed_up
    lab.ok("backup", "ct101", "--label", "why=second")
    lab.ok("verify", "--all")
    before = lab.ok("points").out
    before_json = lab.ok("points", "--json").json()
    (lab.root / "state" / "catalog.db").unlink()
    for leftover in (lab.root / "state").glob("catalog.db-*"):
        leftover.unlink()
    assert lab.ok("points", "--json").json() == []
    r = lab.ok("catalog", "rebuild")
    assert "catalogued 3 restore points of 2 guests" in r.err
    after_json = lab.ok("points", "--json").json()
    strip = [{**p, "copies": [{"repository": c["repository"]} for c in p["copies"]]} for p in before_json]
    assert [{**p, "copies": [{"repository": c["repository"]} for c in p["copies"]]}
            for p in after_json] == strip
    assert lab.ok("points").out == before  # the text a user reads is the same
    lab.ok("catalog", "rebuild")  # again: nothing changes
    assert lab.ok("points", "--json").json() == after_json
    lab.ok("restore", "web1", "--to", "node2")
