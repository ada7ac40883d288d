"""OpenVZ through the command line: a dump is an LVM snapshot of the volume holding the
private areas, mounted read-only, tarred with the config as ./etc/vzdump/vps.conf (what
vzdump's OpenVZ mode wrote), then unmounted and removed, whatever happens."""

from __future__ import annotations

import tarfile

CT = "ct1101"


def test_backup_restore_roundtrip(ovz):
    lab = ovz.lab
    lab.ok("repo", "init")
    r = lab.ok("backup", CT, "--json")
    [item] = r.json()["items"]
    assert (item["guest"], item["node"], item["status"]) == (CT, "node3", "ok")
    assert ovz.snapshot_lvs() == [] and list(ovz.mnt.iterdir()) == []
    lab.ok("restore", CT, "--to", "node3", "--as", "1150")
    restored = ovz.vz / "private" / "1150"
    assert (restored / "etc" / "hostname").read_text() == "web-ovz\n"
    assert not (restored / "etc" / "vzdump").exists()
    assert sorted(p.name for p in (restored / "var/www").iterdir()) == sorted(
        p.name for p in (ovz.vz / "private" / "1101" / "var/www").iterdir())
    conf = (ovz.vz_state / "etc/vz/conf/1150.conf").read_text()
    assert f'VE_PRIVATE="{restored}"' in conf and 'HOSTNAME="web-ovz"' in conf
    listed = lab.ok("points", "--json").json()
    assert [(p["guest"]["kind"], p["guest"]["vmid"]) for p in listed] == [("ct", 1101)]


def test_stream_is_a_vzdump_openvz_archive(ovz, tmp_path):
    lab = ovz.lab
    lab.ok("repo", "init")
    lab.ok("backup", CT)
    point = lab.ok("points", CT, "--json").json()[0]["id"]
    lab.ok("export", point, "--to", str(tmp_path / "out"))
    [archive] = (tmp_path / "out").iterdir()
    assert archive.name.startswith("vzdump-openvz-1101-") and archive.name.endswith(".tar")
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert names[0] == "./etc/vzdump/vps.conf"
    assert "./var/www/page0.html" in names


def test_overflow_fails_the_guest_and_removes_the_snapshot(ovz, monkeypatch):
    lab = ovz.lab
    lab.ok("repo", "init")
    monkeypatch.setenv("FAKE_LVM_WRITES_AFTER_MOUNT", "vg0/vz=80M")
    r = lab.run("backup", CT)
    assert r.code == 15, r
    assert "the LVM snapshot vg0/vzbackup-node3-ct1101-" in r.out + r.err
    assert "overflowed: its 64M copy-on-write area filled up" in r.out + r.err
    assert ovz.snapshot_lvs() == [] and list(ovz.mnt.iterdir()) == []
    assert lab.ok("points", "--json").json() == []


def test_no_free_extents_names_guest_and_node(ovz):
    lab = ovz.lab
    lab.ok("repo", "init")
    text = lab.config.read_text().replace('lvm_snapshot_size = "64M"', 'lvm_snapshot_size = "200G"')
    lab.config.write_text(text)
    r = lab.run("backup", CT, "--json")
    [item] = r.json()["items"]
    assert item["status"] == "failed" and item["exit_code"] == 15
    assert "node node3: cannot snapshot vg0/vz" in item["message"]
    assert "insufficient free space" in item["message"]


def test_a_branch_onto_an_openvz_node_is_refused_before_anything_is_made(ovz):
    lab = ovz.lab
    lab.ok("repo", "init")
    lab.ok("backup", CT)
    r = lab.run("branch", "create", "expo", "--guests", CT, "--to", "node3")
    assert r.code == 24 and "node3 is an OpenVZ node" in r.err
    assert sorted(p.name for p in (ovz.vz / "private").iterdir()) == ["1101"]
    assert lab.ok("branch", "list", "--json").json() == []
