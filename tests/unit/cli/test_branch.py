"""``vzbackup branch`` through the command line, on the directory platform: create, list,
show, refresh, destroy, export and import (with production unreachable), tampered bundles."""

from __future__ import annotations

import io
import tarfile
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from demo.guestdata import make_container
from demo.treedigest import describe, differences
from tests.unit.cli.conftest import Lab
from vzbackup.domain.clone import macs
from vzbackup.errors import BadBundle, BranchFailed, KeyUnavailable
from vzbackup.platforms.guestconf import read_config

NETS = {101: "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:2A:3B:4C,ip=10.0.0.5/24,gw=10.0.0.1,type=veth",
        102: "name=eth0,bridge=vmbr1,hwaddr=BC:24:11:2A:3B:4D,ip=10.0.1.6/24,type=veth",
        200: "virtio=BC:24:11:2A:3B:4E,bridge=vmbr0"}
GUESTS = ("ct101", "ct102", "vm200")
SCRUB = """#!/bin/sh
set -e
[ -n "$1" ] || exit 0
rm -rf "$1/home/demo"
echo "$VZBACKUP_BRANCH $VZBACKUP_SOURCE $VZBACKUP_GUEST $VZBACKUP_HOSTNAME" > "$1/SANITIZED"
"""


def production(lab: Lab) -> dict:
    """Every production guest's files (with mtimes) and config, to compare before/after."""
    return {g: (describe(lab.node("node1") / g), (lab.node("node1") / g / "guest.conf").read_text())
            for g in GUESTS}


def content(folder: Path) -> dict:
    return describe(folder / "rootfs") if (folder / "rootfs").is_dir() else {
        k: v for k, v in describe(folder).items() if k != "guest.conf"}


@pytest.fixture
def three(lab) -> Lab:
    make_container(lab.node("node1"), 102, "db", files=40, mib=1, seed=3)
    for vmid, net in NETS.items():
        folder = lab.node("node1") / (f"ct{vmid}" if vmid < 200 else f"vm{vmid}")
        conf = folder / "guest.conf"
        conf.write_text(conf.read_text() + f"net0: {net}\n")
    lab.ok("repo", "init")
    lab.ok("backup", "--all")
    return lab


def script(lab: Lab, text: str, name: str = "scrub.sh") -> str:
    path = lab.root / name
    path.write_text(text)
    path.chmod(0o755)
    return str(path)


def test_a_branch_of_three_lands_with_new_ids_macs_isolated_network_production_unchanged(three):
    lab = three
    before = production(lab)
    made = lab.ok("branch", "create", "expo-2026", "--guests", "ct101,ct102,vm200", "--to",
                  "node2", "--json").json()
    members = {m["source"]: m for m in made["members"]}
    assert [members[g]["clone"] for g in GUESTS] == ["ct201", "ct202", "vm203"]
    assert made["network"] == "isolated" and made["node"] == "node2"
    for source, m in members.items():
        clone = lab.node("node2") / m["clone"]
        conf = read_config(clone)
        assert differences(content(lab.node("node1") / source), content(clone)) == []
        assert macs(conf) and macs(conf).isdisjoint(set().union(*(macs({"n": n}) for n in NETS.values())))
        assert "bridge=" not in conf["net0"] and "ip=10." not in conf["net0"] and "gw=" not in conf["net0"]
        assert m["point"] == m["shipped_point"]  # no sanitize script: ships the source point
    assert read_config(lab.node("node2") / "ct201")["hostname"] == "web1-expo-2026"
    assert read_config(lab.node("node2") / "vm203")["name"] == "app-expo-2026"
    assert production(lab) == before  # contents (mtimes too) and configs

    listed = lab.ok("branch", "list", "--json").json()
    assert [(b["name"], b["node"], len(b["members"])) for b in listed] == [("expo-2026", "node2", 3)]
    assert "web1-expo-2026" in lab.ok("branch", "show", "expo-2026").out
    point = members["ct101"]["point"]
    lab.config.write_text(lab.config.read_text() + "[retention.main]\nkeep_last = 1\n")
    lab.ok("backup", "ct101")  # a newer point: retention alone would drop the branch's
    before = production(lab)
    pins = [i for i in lab.ok("prune", "--dry-run", "ct101", "--json").json() if i["point"] == point]
    assert pins and "branch expo-2026 depends on it" in pins[0]["reason"]

    again = lab.run("branch", "create", "expo-2026", "--guests", "ct101", "--to", "node2")
    assert again.code == BranchFailed.exit_code and "already exists" in again.err
    bridge = lab.run("branch", "create", "other", "--guests", "ct101", "--to", "node2",
                     "--network", "vmbr0")
    assert bridge.code != 0 and "production bridge" in bridge.err

    lab.ok("branch", "destroy", "expo-2026")
    assert not list(lab.node("node2").glob("*[0-9]"))
    assert lab.ok("branch", "list", "--json").json() == [] and production(lab) == before


def test_points_are_chosen_at_one_time_and_a_branch_bridge_replaces_every_bridge(three):
    lab = three
    time.sleep(0.05)
    at = datetime.now(timezone.utc).isoformat()
    time.sleep(0.05)
    (lab.node("node1") / "ct102" / "rootfs" / "etc" / "later").write_text("after --at\n")
    lab.ok("backup", "ct102")
    made = lab.ok("branch", "create", "demo", "--guests", "ct101,ct102", "--to", "node2",
                  "--network", "vmbr99", "--at", at, "--json").json()
    clone = lab.node("node2") / made["members"][1]["clone"]
    assert not (clone / "rootfs" / "etc" / "later").exists()  # ct102's point before --at
    for m in made["members"]:
        net = read_config(lab.node("node2") / m["clone"])["net0"]
        assert "bridge=vmbr99" in net and "ip=10." not in net

    old = {m["clone"] for m in made["members"]}
    fresh = lab.ok("branch", "refresh", "demo", "--json").json()  # newest points: with later
    new = {m["clone"] for m in fresh["members"]}
    assert new.isdisjoint(old) and not any((lab.node("node2") / c).exists() for c in old)
    ct102 = next(m for m in fresh["members"] if m["source"] == "ct102")
    assert (lab.node("node2") / ct102["clone"] / "rootfs" / "etc" / "later").is_file()
    assert ct102["hostname"] == "db-demo"


def test_sanitize_scrubs_every_member_and_the_branch_ships_the_scrubbed_points(three):
    lab = three
    before = production(lab)
    made = lab.ok("branch", "create", "expo", "--guests", "ct101,ct102,vm200", "--to", "node2",
                  "--sanitize", script(lab, SCRUB), "--json").json()
    for m in made["members"]:
        clone = lab.node("node2") / m["clone"]
        if m["clone"].startswith("ct"):
            assert not (clone / "rootfs" / "home" / "demo").exists()
            assert (clone / "rootfs" / "SANITIZED").read_text().split() == [
                "expo", m["source"], m["clone"], m["hostname"]]
        assert m["shipped_point"] != m["point"]
    shipped = lab.ok("points", "ct201", "--json").json()
    assert [p["id"] for p in shipped] == [made["members"][0]["shipped_point"]]
    assert shipped[0]["labels"]["branch"] == "expo"
    assert production(lab) == before


def test_a_member_that_fails_undoes_the_whole_branch_and_names_guest_and_node(three):
    lab = three
    failing = script(lab, '#!/bin/sh\n[ "$VZBACKUP_SOURCE" = ct102 ] && { echo "no db scrub"; '
                          'exit 3; }\nexit 0\n', "fail.sh")
    r = lab.run("branch", "create", "expo", "--guests", "ct101,ct102,vm200", "--to", "node2",
                "--sanitize", failing)
    assert r.code == BranchFailed.exit_code
    assert "ct102 (as ct202) on node node2" in r.err and "no db scrub" in r.err
    assert "were removed and nothing was recorded" in r.err
    assert not list(lab.node("node2").glob("*[0-9]"))
    assert lab.ok("branch", "list", "--json").json() == []
    assert not [g for g in lab.ok("points", "--json").json() if g.get("guest") == "ct201"]


def laptop(lab: Lab, tmp_path: Path, *, encrypted: bool = False) -> Lab:
    """A config on the laptop: node 'laptop'; production nodes and repositories dead."""
    root = tmp_path / "laptop"
    (root / "disk").mkdir(parents=True)
    config = root / "vzbackup.toml"
    config.write_text(f"""
[state]
dir = "state"
[backup]
repository = "main"
[nodes.laptop]
root = "disk"
[nodes.node1]
root = "{lab.root / 'gone-node1'}"
[nodes.node2]
transport = "ssh"
host = "192.0.2.1"
root = "/srv/guests"
connect_timeout = 1
[repositories.main]
url = "sftp://vzbackup@192.0.2.1:22/srv/repo"
connect_timeout = 1
{'encryption = "aes-256-gcm"' if encrypted else ''}
{'passphrase_file = "/nonexistent"' if encrypted else ''}
""")
    return Lab(root, config, lab.capsys)


def test_export_then_import_with_production_unreachable_gives_guests_identical_to_their_points(three, tmp_path):
    lab = three
    lab.ok("branch", "create", "expo", "--guests", "ct101,ct102,vm200", "--to", "node2")
    bundle = tmp_path / "expo.vzb"
    exported = lab.ok("branch", "export", "expo", str(bundle), "--json").json()
    assert exported["points"] == 3 and not exported["encrypted"] and bundle.is_file()

    away = laptop(lab, tmp_path)
    done = away.ok("branch", "import", str(bundle), "--to", "laptop", "--expect",
                   exported["digest"], "--json").json()
    assert done["digest"] == exported["digest"]
    members = {m["source"]: m for m in done["branch"]["members"]}
    assert [members[g]["clone"] for g in GUESTS] == ["ct201", "ct202", "vm203"]
    for source, m in members.items():  # production is unchanged: its state is the points'
        clone = away.node("disk") / m["clone"]
        assert differences(content(lab.node("node1") / source), content(clone)) == []
        conf = read_config(clone)
        assert "bridge=" not in conf["net0"] and macs(conf).isdisjoint(
            macs(read_config(lab.node("node2") / m["clone"])))
    listed = away.ok("branch", "list", "--json").json()
    assert listed[0]["origin"] == f"bundle {exported['digest'][:16]}"
    twice = away.ok("branch", "import", str(bundle), "--to", "laptop", "--name", "expo2",
                    "--network", "vmbr5", "--json").json()["branch"]
    assert [m["clone"] for m in twice["members"]] == ["ct204", "ct205", "vm206"]  # 201-203 taken
    assert "bridge=vmbr5" in read_config(away.node("disk") / "ct204")["net0"]
    away.ok("branch", "destroy", "expo2")
    assert away.run("branch", "refresh", "expo").code == BranchFailed.exit_code
    away.ok("branch", "destroy", "expo")
    assert not list(away.node("disk").glob("*[0-9]"))
    assert not (away.root / "state" / "bundles" / "expo").exists()


def test_an_encrypted_branch_bundle_needs_the_passphrase(lab, tmp_path, monkeypatch):
    monkeypatch.setenv("VZBACKUP_TEST_PASS", "correct horse battery")
    lab.config.write_text(lab.config.read_text()
                          + 'encryption = "aes-256-gcm"\npassphrase_env = "VZBACKUP_TEST_PASS"\n')
    lab.ok("repo", "init")
    lab.ok("backup", "ct101")
    lab.ok("branch", "create", "sec", "--guests", "ct101", "--to", "node2")
    bundle = tmp_path / "sec.vzb"
    assert lab.ok("branch", "export", "sec", str(bundle), "--json").json()["encrypted"]
    assert b"correct horse" not in bundle.read_bytes()

    away = laptop(lab, tmp_path, encrypted=True)
    r = away.run("branch", "import", str(bundle), "--to", "laptop")
    assert r.code == KeyUnavailable.exit_code and "passphrase" in r.err
    monkeypatch.setenv("WRONG", "not it")
    assert away.run("branch", "import", str(bundle), "--to", "laptop", "--passphrase-env",
                    "WRONG").code == KeyUnavailable.exit_code
    assert not list(away.node("disk").iterdir())
    away.ok("branch", "import", str(bundle), "--to", "laptop", "--passphrase-env",
            "VZBACKUP_TEST_PASS")
    assert differences(content(lab.node("node1") / "ct101"),
                       content(away.node("disk") / "ct201")) == []


def _flip(data: bytes, at: int) -> bytes:
    out = bytearray(data)
    out[at] ^= 0x01
    return bytes(out)


def _tampered(bundle: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(bundle)) as tar:
        members = tar.getmembers()
    pack = next(m for m in members if "/packs/" in m.name)
    seal = members[-1]
    extra = io.BytesIO(bundle)
    with tarfile.open(fileobj=extra, mode="a") as tar:
        info = tarfile.TarInfo("vzbackup-bundle/repo/manifests/" + "0" * 64)
        tar.addfile(info, io.BytesIO(b""))
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("vzbackup-bundle/../../escaped")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    return {
        "first byte": _flip(bundle, 0),
        "description": _flip(bundle, members[0].offset_data + 5),
        "pack data": _flip(bundle, pack.offset_data + pack.size // 2),
        "header padding": _flip(bundle, pack.offset + 300),
        "seal": _flip(bundle, seal.offset_data + 40),
        "end blocks": _flip(bundle, len(bundle) - 3),
        "truncated": bundle[:len(bundle) // 2],
        "truncated at the seal": bundle[:seal.offset_data + seal.size],
        "extra member": extra.getvalue(),
        "path traversal": evil.getvalue(),
        "empty": b"",
    }


def test_a_tampered_bundle_is_refused_and_nothing_is_written(three, tmp_path):
    lab = three
    lab.ok("branch", "create", "expo", "--guests", "ct101,vm200", "--to", "node2")
    bundle = tmp_path / "expo.vzb"
    lab.ok("branch", "export", "expo", str(bundle))
    good = bundle.read_bytes()
    away = laptop(lab, tmp_path)
    for what, data in _tampered(good).items():
        bad = tmp_path / "bad.vzb"
        bad.write_bytes(data)
        r = away.run("branch", "import", str(bad), "--to", "laptop")
        assert r.code == BadBundle.exit_code, (what, r)
        assert "Nothing was written" in r.err or "nothing was" in r.err, (what, r.err)
        assert not list(away.node("disk").iterdir()), what
        assert not [p for p in (away.root / "state" / "bundles").glob("*")], what
        assert away.ok("branch", "list", "--json").json() == [], what
    assert not (tmp_path / "escaped").exists() and not (away.root / "escaped").exists()
    r = away.run("branch", "import", str(bundle), "--to", "laptop", "--expect", "ab" * 32)
    assert r.code == BadBundle.exit_code and "not the expected" in r.err
    away.ok("branch", "import", str(bundle), "--to", "laptop")  # the original still imports


def test_a_create_killed_midway_leaves_a_record_that_destroy_cleans_up(three):
    import subprocess

    lab = three
    killer = script(lab, '#!/bin/sh\n[ "$VZBACKUP_SOURCE" = ct102 ] && kill -9 $PPID\nexit 0\n',
                    "kill.sh")
    argv, env = lab.subprocess_argv("branch", "create", "expo", "--guests", "ct101,ct102,vm200",
                                    "--to", "node2", "--sanitize", killer)
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    (left,) = lab.ok("branch", "list", "--json").json()
    assert left["origin"] == "in progress" and len(left["members"]) == 3
    assert (lab.node("node2") / "ct201").is_dir() and (lab.node("node2") / "ct202").is_dir()
    assert lab.run("branch", "export", "expo", str(lab.root / "x.vzb")).code == BranchFailed.exit_code
    again = lab.run("branch", "create", "expo", "--guests", "ct101", "--to", "node2")
    assert again.code == BranchFailed.exit_code and "destroy" in again.err
    lab.ok("branch", "destroy", "expo")
    assert not list(lab.node("node2").glob("*[0-9]")) and lab.ok("branch", "list", "--json").json() == []


def test_members_by_tag_from_fresh_backups(three):
    lab = three
    for g in ("ct101", "vm200"):
        conf = lab.node("node1") / g / "guest.conf"
        conf.write_text(conf.read_text() + "tags: web;prod\n")
    (lab.node("node1") / "ct101" / "rootfs" / "etc" / "fresh").write_text("new\n")
    r = lab.ok("branch", "create", "web", "--tag", "web", "--to", "node2", "--dry-run")
    assert "2 guests" in r.out and not list(lab.node("node2").iterdir())
    made = lab.ok("branch", "create", "web", "--tag", "web", "--to", "node2", "--fresh",
                  "--json").json()
    assert sorted(m["source"] for m in made["members"]) == ["ct101", "vm200"]
    ct = next(m for m in made["members"] if m["source"] == "ct101")
    assert (lab.node("node2") / ct["clone"] / "rootfs" / "etc" / "fresh").is_file()
    assert len(lab.ok("points", "ct101", "--json").json()) == 2


def _lose_catalogue(lab: Lab) -> None:
    (lab.root / "state" / "catalog.db").unlink()
    for leftover in (lab.root / "state").glob("catalog.db-*"):
        leftover.unlink()


def test_a_rebuilt_catalogue_brings_branches_back_with_their_pins_but_not_destroyed_ones(three):
    """Promise 6: a branch is also a note in the repositories holding its points."""
    lab = three
    lab.config.write_text(lab.config.read_text() + "[retention.main]\nkeep_last = 1\n")
    kept = lab.ok("branch", "create", "expo", "--guests", "ct101,ct102", "--to", "node2",
                  "--json").json()
    lab.ok("branch", "create", "gone", "--guests", "vm200", "--to", "node2")
    lab.ok("branch", "destroy", "gone")
    lab.ok("backup", "ct101")
    _lose_catalogue(lab)
    assert lab.ok("branch", "list", "--json").json() == []
    r = lab.ok("catalog", "rebuild")
    assert "1 branch record(s) restored" in r.err
    assert lab.ok("branch", "list", "--json").json() == [kept]
    lab.ok("catalog", "rebuild")  # again: nothing doubled
    assert lab.ok("branch", "list", "--json").json() == [kept]
    point = kept["members"][0]["point"]
    plan = [i for i in lab.ok("prune", "--dry-run", "ct101", "--json").json() if i["point"] == point]
    assert plan and plan[0]["decision"] == "keep" and "branch expo" in plan[0]["reason"]
