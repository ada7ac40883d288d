"""vzdump archives in (``vzbackup import``) and out (``vzbackup export``)."""

from __future__ import annotations

import json
import subprocess
import tarfile

import zstandard

from tests.fakes import vzdump_files as vz
from vzbackup.archives.vma import vma_configs
from vzbackup.domain.vzdump import ARCHIVE_NAME

LXC = "vzdump-lxc-301-2024_01_02-03_04_05.tar.zst"
LOG = "2024-01-02 03:04:05 INFO: Starting Backup of VM 301 (lxc)\n2024-01-02 03:04:09 INFO: Finished Backup of VM 301 (00:00:04)\n"


def dump_folder(lab):
    d = lab.root / "dump"
    vz.write(d, LXC, vz.lxc_tar("web3"), notes="before the upgrade\nsecond line", protected=True, log=LOG)
    vz.write(d, "vzdump-lxc-301-2024_01_03-03_04_05.tar.gz", vz.lxc_tar("web3"))
    vz.write(d, "vzdump-lxc-302-2024_01_02-03_04_05.tar.bz2", vz.lxc_tar("web4", seed=7))
    vz.write(d, "vzdump-lxc-303-2024_01_02-03_04_05.tar", vz.lxc_tar("web5", seed=8))
    vz.write(d, "vzdump-qemu-400-2024_01_02-03_04_05.vma.lzo", vz.vma("app4"))
    vz.write(d, "vzdump-openvz-500-2012_01_02-03_04_05.tgz", vz.openvz_tar("old5"))
    vz.write(d, "vzdump-openvz-501-2013_01_02-03_04_05.tar.lzo", vz.openvz_tar("old6", seed=9))
    return d


def by_archive(lab) -> dict:
    return {p["labels"].get("vzdump.archive"): p for p in lab.ok("points", "--json").json()}


def test_import_a_dump_folder(lab):
    lab.ok("repo", "init")
    d = dump_folder(lab)
    r = lab.ok("import", str(d), "--node", "pve1", "--json")
    items = r.json()["items"]
    assert len(items) == 7 and {i["status"] for i in items} == {"ok"}
    points = by_archive(lab)
    p = points[LXC]
    assert (p["guest"], p["guest_name"], p["source_node"]) == ({"kind": "ct", "vmid": 301}, "web3", "pve1")
    assert p["labels"] == {"vzdump.archive": LXC, "notes": "before the upgrade\nsecond line",
                           "protected": "1", "vzdump.log": LOG}
    assert points["vzdump-qemu-400-2024_01_02-03_04_05.vma.lzo"]["guest"] == {"kind": "vm", "vmid": 400}
    assert points["vzdump-qemu-400-2024_01_02-03_04_05.vma.lzo"]["guest_name"] == "app4"
    assert points["vzdump-openvz-500-2012_01_02-03_04_05.tgz"]["guest_name"] == "old5"
    # the same container, gzip then zstd: stored decompressed, the second costs nothing
    again = {i["guest"]: i for i in items if i["guest"] == "ct301"}
    assert len(again) == 1
    news = sorted(i["new_bytes"] for i in items if i["guest"] == "ct301")
    assert news[0] < 2000 < news[1]
    table = lab.ok("points", "ct301").out
    assert "yes" in table and "before the upgrade" in table and "second line" not in table


def test_import_again_stores_nothing(lab):
    lab.ok("repo", "init")
    d = dump_folder(lab)
    lab.ok("import", str(d))
    first = lab.ok("points", "--json").json()
    r = lab.ok("import", str(d), "--json")
    assert all(i["new_bytes"] == 0 for i in r.json()["items"])
    assert lab.ok("points", "--json").json() == first


def test_names_vzdump_never_writes_are_refused_by_name(lab):
    lab.ok("repo", "init")
    d = lab.root / "dump"
    vz.write(d, LXC, vz.lxc_tar("web3"))
    vz.write(d, "vzdump-101.tgz", vz.lxc_tar("x"))  # vzdump 1.x
    vz.write(d, "vzdump-lxc-101-yesterday.tar", vz.lxc_tar("x"))  # renamed
    vz.write(d, "vzdump-lxc-102-2024_01_02-03_04_05.tar.dat", b"partial")  # vzdump killed
    vz.write(d, "vzdump-lxc-103-2024_13_02-03_04_05.tar", vz.lxc_tar("x"))  # no such month
    r = lab.run("import", str(d), "--json")
    assert r.code == 21
    items = {i["message"].split(":")[0].rsplit("/", 1)[-1]: i for i in r.json()["items"]
             if i["status"] == "failed"}
    assert "couldn't determine archive info from 'vzdump-101.tgz'" in items["vzdump-101.tgz"]["message"]
    assert "renamed vzdump archive" in items["vzdump-lxc-101-yesterday.tar"]["message"]
    assert "unfinished vzdump archive" in items["vzdump-lxc-102-2024_01_02-03_04_05.tar.dat"]["message"]
    assert "month must be in 1..12" in items["vzdump-lxc-103-2024_13_02-03_04_05.tar"]["message"]
    assert [p["labels"]["vzdump.archive"] for p in lab.ok("points", "--json").json()] == [LXC]


def test_hostile_and_damaged_archives_store_nothing(lab):
    lab.ok("repo", "init")
    d = lab.root / "dump"
    evil = vz.ct_tar("pct.conf", "hostname: evil\n", {"../../../etc/cron.d/x": b"* * * * * root sh\n"})
    vz.write(d, "vzdump-lxc-301-2024_01_02-03_04_05.tar.zst", evil)
    r = lab.run("import", str(d / "vzdump-lxc-301-2024_01_02-03_04_05.tar.zst"))
    assert r.code == 9, r
    assert "member './../../../etc/cron.d' would land outside the guest" in r.err
    good = vz.compress(vz.lxc_tar("web3"), ".zst")
    (d / "vzdump-lxc-302-2024_01_02-03_04_05.tar.zst").write_bytes(good[: len(good) // 2])
    r = lab.run("import", str(d / "vzdump-lxc-302-2024_01_02-03_04_05.tar.zst"))
    assert r.code == 21 and "vzdump-lxc-302-2024_01_02-03_04_05.tar.zst" in r.out + r.err
    vz.write(d, "vzdump-qemu-400-2024_01_02-03_04_05.vma", b"not a vma at all" * 100)
    r = lab.run("import", str(d / "vzdump-qemu-400-2024_01_02-03_04_05.vma"))
    assert r.code == 21 and "not a VMA archive" in r.out + r.err
    vz.write(d, "vzdump-lxc-303-2024_01_02-03_04_05.tar", vz.ct_tar("other.conf", "", {}))
    r = lab.run("import", str(d / "vzdump-lxc-303-2024_01_02-03_04_05.tar"))
    assert r.code == 21 and "not ./etc/vzdump/pct.conf" in r.out + r.err
    assert lab.ok("points", "--json").json() == []


def test_export_gives_back_the_archive_pct_restore_took(lab, tmp_path):
    lab.ok("repo", "init")
    d = dump_folder(lab)
    lab.ok("import", str(d))
    point = by_archive(lab)[LXC]["id"]
    out = tmp_path / "out"
    r = lab.ok("export", point[:12], "--to", str(out), "--compress", "zstd")
    assert r.out.strip() == str(out / LXC)  # the same name: local time, as vzdump's
    original = zstandard.ZstdDecompressor().stream_reader(open(d / LXC, "rb")).read()
    exported = zstandard.ZstdDecompressor().stream_reader(open(out / LXC, "rb")).read()
    assert exported == original
    assert (out / (LXC + ".notes")).read_text() == "before the upgrade\nsecond line"
    assert (out / (LXC + ".protected")).read_bytes() == b""
    assert (out / "vzdump-lxc-301-2024_01_02-03_04_05.log").read_text() == LOG
    listing = subprocess.run(["tar", "--zstd", "-tf", str(out / LXC)], capture_output=True,
                             text=True, check=True).stdout.splitlines()
    assert listing[0] == "./etc/vzdump/pct.conf"


def test_export_vma_with_each_compression(lab, tmp_path):
    lab.ok("repo", "init")
    dump_folder(lab)
    lab.ok("import", str(lab.root / "dump"))
    point = by_archive(lab)["vzdump-qemu-400-2024_01_02-03_04_05.vma.lzo"]["id"]
    for compress, ext in (("0", ".vma"), ("1", ".vma.lzo"), ("gzip", ".vma.gz")):
        r = lab.ok("export", point, "--to", str(tmp_path / compress), "--compress", compress, "--json")
        path = json.loads(r.out)["data"]["path"]
        assert path.endswith("vzdump-qemu-400-2024_01_02-03_04_05" + ext)
        assert ARCHIVE_NAME.match(path.rsplit("/", 1)[1])
    raw = (tmp_path / "0" / "vzdump-qemu-400-2024_01_02-03_04_05.vma").read_bytes()
    assert raw == vz.vma("app4") and b"name: app4" in vma_configs(raw)["qemu-server.conf"]


def test_export_a_directory_container_puts_pct_conf_first(lab, tmp_path):
    lab.ok("repo", "init")
    lab.ok("backup", "ct101")
    point = lab.ok("points", "ct101", "--json").json()[0]
    path = lab.ok("export", point["id"], "--to", str(tmp_path)).out.strip()
    name = path.rsplit("/", 1)[1]
    assert ARCHIVE_NAME.match(name) and name.startswith("vzdump-lxc-101-") and name.endswith(".tar")
    with tarfile.open(path) as tar:
        first = tar.next()
        assert first.name == "./etc/vzdump/pct.conf"
        conf = tar.extractfile(first).read().decode()
        names = tar.getnames()
    assert "hostname: web1\n" in conf and "arch: amd64\n" in conf
    assert any(n.endswith("usr/bin/app") for n in names)
    listing = subprocess.run(["tar", "-tf", path], capture_output=True, text=True, check=True)
    assert listing.stdout.splitlines()[0] == "./etc/vzdump/pct.conf"  # GNU tar, as pct runs it


def test_export_refuses_a_directory_vm(lab, tmp_path):
    lab.ok("repo", "init")
    lab.ok("backup", "vm200")
    point = lab.ok("points", "vm200", "--json").json()[0]
    r = lab.run("export", point["id"], "--to", str(tmp_path / "out"))
    assert r.code == 21 and "not a VMA stream: qmrestore cannot read it" in r.err
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_an_imported_container_restores_onto_a_directory_node(lab):
    lab.ok("repo", "init")
    dump_folder(lab)
    lab.ok("import", str(lab.root / "dump" / LXC))
    lab.ok("restore", "ct301", "--to", "node2")
    guest = lab.node("node2") / "ct301"
    assert (guest / "rootfs" / "etc" / "hostname").read_text() == "web\n"
    assert "hostname: web3\n" in (guest / "guest.conf").read_text()


def test_export_of_a_damaged_point_leaves_no_file(lab, tmp_path):
    from tests.unit.cli.test_exit_codes import flip_byte_in_a_pack

    lab.ok("repo", "init")
    vz.write(lab.root / "dump", "vzdump-lxc-303-2024_01_02-03_04_05.tar", vz.lxc_tar("web5", seed=8))
    lab.ok("import", str(lab.root / "dump"))
    flip_byte_in_a_pack(lab.root / "repo")
    point = lab.ok("points", "--json").json()[0]["id"]
    r = lab.run("export", point, "--to", str(tmp_path / "out"))
    assert r.code == 7, r
    assert list((tmp_path / "out").iterdir()) == []  # neither the archive nor its .dat


def test_protection_and_notes_survive_a_catalogue_rebuild(lab):
    lab.ok("repo", "init")
    vz.write(lab.root / "dump", LXC, vz.lxc_tar("web3"), notes="keep me", protected=True)
    lab.ok("import", str(lab.root / "dump"))
    (lab.root / "state" / "catalog.db").unlink()
    lab.ok("catalog", "rebuild")
    [p] = lab.ok("points", "--json").json()
    assert (p["labels"]["protected"], p["labels"]["notes"]) == ("1", "keep me")
