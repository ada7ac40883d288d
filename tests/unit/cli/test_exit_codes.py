"""Every exit code of docs/reference/exit-codes.md, reached the way a user reaches it."""

from __future__ import annotations

import os
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from freezegun import freeze_time

from tests.support import is_root, require
from vzbackup.domain.guests import GuestRef
from vzbackup.errors import all_error_classes
from vzbackup.locks import FileLocks

TOP = Path(__file__).resolve().parents[3]


def flip_byte_in_a_pack(repo: Path) -> tuple[Path, str]:
    """Flip the middle byte of the largest pack; the pack and the id of the chunk hit."""
    from vzbackup.repo.codec import Codec
    from vzbackup.repo.packs import read_trailer

    pack = max((p for p in (repo / "packs").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    data = bytearray(pack.read_bytes())
    at = len(data) // 2
    (hit,) = [e for e in read_trailer(Codec(), data, pack.name) if e.offset <= at < e.offset + e.length]
    data[at] ^= 0x01
    pack.write_bytes(bytes(data))
    return pack, hit.chunk_id.hex()


def test_0_success(backed_up):
    assert backed_up.run("points").code == 0


def test_1_files_changed_while_read_is_a_warning_and_the_point_is_kept(backed_up, tmp_path,
                                                                       monkeypatch):
    fake = tmp_path / "bin" / "tar"  # GNU tar as it behaves when a file changes under it
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\n/usr/bin/tar "$@" || exit $?\n'
                    'echo "tar: ./var/log/app/access.log: file changed as we read it" >&2\nexit 1\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    r = backed_up.run("backup", "ct101", "--json")
    assert r.code == 1, r
    item = r.json()["items"][0]
    assert item["status"] == "ok" and "file changed as we read it" in item["warnings"][0]
    assert "warning: ct101 on node1: files changed while they were read" in r.err
    assert len(backed_up.ok("points", "ct101", "--json").json()) == 2


def test_3_config_error_lists_every_problem(lab):
    lab.config.write_text(lab.config.read_text() + "[nodes.node9]\nplatfrom = 'x'\n")
    r = lab.run("config", "check")
    assert r.code == 3
    assert "nodes.node9.platfrom: unknown key" in r.err and "nodes.node9.root: required" in r.err
    assert "next step:" in r.err


def test_4_unknown_guest(backed_up):
    r = backed_up.run("backup", "ct999")
    assert r.code == 4 and "guest ct999 not found on node1, node2" in r.err


def test_5_unreachable_node(backed_up):
    (backed_up.node("node2")).rmdir()
    r = backed_up.run("backup", "--node", "node2")
    assert r.code == 5 and "node node2" in r.err


def test_6_repository_not_initialised(lab):
    r = lab.run("backup", "ct101")
    assert r.code == 6 and "repo" in r.err.lower()


def test_7_flipped_byte_fails_verify_and_restore_naming_point_and_chunk(backed_up):
    lab = backed_up
    _, chunk = flip_byte_in_a_pack(lab.root / "repo")
    r = lab.run("verify", "--all")
    assert r.code == 7, r
    assert chunk[:12] in r.out + r.err
    point = next(p for p in lab.ok("points", "--json").json()
                 if any(c["state"] == "corrupt" for c in p["copies"]))
    guest = f"{point['guest']['kind']}{point['guest']['vmid']}"
    r = lab.run("restore", guest, "--to", "node2")
    assert r.code == 7, r
    assert point["id"][:12] in r.out + r.err and chunk[:12] in r.out + r.err
    assert not (lab.node("node2") / guest).exists()


def test_8_existing_guest_refused_without_force(backed_up):
    r = backed_up.run("restore", "ct101", "--to", "node1")
    assert r.code == 8 and "ct101" in r.out + r.err
    assert backed_up.run("restore", "ct101", "--to", "node1", "--force").code == 0


def test_10_unknown_point(backed_up):
    r = backed_up.run("restore", "ct101", "--to", "node2", "--point", "abcdef123456")
    assert r.code == 10 and "abcdef123456" in r.err


def test_11_lock_held_by_another_run(backed_up):
    locks = FileLocks(backed_up.root / "state")
    with locks.guest(GuestRef("ct", 101), "backup"):
        r = backed_up.run("backup", "ct101")
    assert r.code == 11 and "ct101" in r.out + r.err


def test_12_passphrase_missing(lab):
    lab.config.write_text(lab.config.read_text()
                          + 'encryption = "aes-256-gcm"\npassphrase_env = "VZBACKUP_TEST_PASS"\n')
    r = lab.run("repo", "init")
    assert r.code == 12 and "VZBACKUP_TEST_PASS" in r.err


def test_13_disk_full(lab, tmp_path):
    require(is_root(), "needs root to mount a small tmpfs")
    repo = lab.root / "repo"
    repo.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(repo)], check=True)
    try:
        lab.ok("repo", "init")
        r = lab.run("backup", "ct101")
        assert r.code == 13, r
        assert "ct101" in r.out + r.err and "no space" in (r.out + r.err).lower()
        assert lab.ok("points", "--json").json() == []
    finally:
        subprocess.run(["umount", "-l", str(repo)], check=True)


def test_14_catalogue_unreachable_without_leaking_password(lab):
    lab.config.write_text(lab.config.read_text().replace(
        '[state]', '[catalog]\nurl = "postgresql+psycopg://vz:s3cretpw@127.0.0.1:1/vz"\n[state]'))
    r = lab.run("points")
    assert r.code == 14 and "127.0.0.1" in r.err
    assert "s3cretpw" not in r.out + r.err


def test_15_dump_failure_names_guest_and_node(backed_up):
    os.rename(backed_up.node("node1") / "ct101" / "rootfs", backed_up.node("node1") / "ct101" / "gone")
    r = backed_up.run("backup", "ct101")
    assert r.code == 15, r
    assert "ct101" in r.out + r.err and "node1" in r.out + r.err


def test_17_pure_python_chunker_refused(lab, monkeypatch):
    import vzbackup.repo.chunker as chunker
    monkeypatch.setattr(chunker, "_compiled_fastcdc", _broken)
    r = lab.run("repo", "init")
    assert r.code == 17 and "FastCDC" in r.out + r.err


def _broken():
    from vzbackup.errors import EnvironmentBroken
    raise EnvironmentBroken("the compiled FastCDC is not available")


def test_18_usage_errors(backed_up):
    assert backed_up.run("backup").code == 18
    assert backed_up.run("backup", "--no-such-flag").code == 18
    assert backed_up.run("restore", "ct101", "--to", "node9").code == 18
    assert backed_up.run("backup", "ct101", "--label", "nolabel").code == 18


def test_20_mixed_failures(backed_up):
    lab = backed_up
    (lab.node("node2")).rmdir()
    os.rename(lab.node("node1") / "ct101" / "rootfs", lab.node("node1") / "ct101" / "gone")
    r = lab.run("backup", "--all", "--json")
    assert r.code == 20
    items = {i["guest"]: i for i in r.json()["items"]}
    assert items["vm200"]["status"] == "ok"
    assert items["*"]["exit_code"] == 5


def test_101_status_with_a_guest_past_its_rpo(backed_up):
    backed_up.config.write_text(backed_up.config.read_text()
                                + '[jobs.nightly]\nschedule = "0 1 * * *"\nall = true\n')
    assert backed_up.run("status").code == 0
    with freeze_time(datetime.now(timezone.utc) + timedelta(days=2)):
        r = backed_up.run("status")
    assert r.code == 101 and "2 guest(s) past their RPO: ct101, vm200" in r.err


def test_143_sigterm_during_backup_is_recorded_aborted(lab):
    lab.add_random_vm("node1", 300, 300)
    base, env = lab.subprocess_argv()
    subprocess.run(base + ["repo", "init"], check=True, env=env, capture_output=True)
    proc = subprocess.Popen(base + ["backup", "vm300"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    packs = lab.root / "repo" / "packs"
    deadline = time.monotonic() + 20
    while not any(p.is_file() for p in packs.rglob("*")) and time.monotonic() < deadline:
        time.sleep(0.02)  # terminate once the dump is streaming into the repository
    proc.terminate()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    out = subprocess.run(base + ["points", "--json"], env=env, capture_output=True, text=True)
    assert '"data": []' in out.stdout
    from vzbackup.catalog import open_catalog
    runs = open_catalog(f"sqlite:///{lab.root / 'state' / 'catalog.db'}").runs()
    assert runs[0].status == "aborted"
    leftovers = subprocess.run(["pgrep", "-f", "tar --create"], capture_output=True, text=True).stdout
    assert str(lab.node("node1")) not in leftovers


def test_22_a_platform_command_fails_naming_the_node(lab, tmp_path):
    (tmp_path / "etc-pve").mkdir()
    lab.config.write_text(lab.config.read_text() + f"""
[nodes.pve9]
platform = "proxmox"
root = "{tmp_path / 'etc-pve'}"
pve_bin_dir = "{tmp_path / 'no-tools'}"
""")
    r = lab.run("backup", "--node", "pve9")
    assert r.code == 22
    assert "node pve9: cannot list the cluster's guests" in r.err


def test_exit_code_reference_is_current():
    from scripts.gen_exit_codes import render
    assert (TOP / "docs/reference/exit-codes.md").read_text() == render(), "run 'make docs'"


def test_cli_reference_is_current():
    from scripts.gen_cli_reference import render
    assert (TOP / "docs/reference/cli.md").read_text() == render(), "run 'make docs'"


def test_every_exit_code_has_a_test():
    tested = {int(n.split("_")[1]) for n in globals() if n.startswith("test_") and n.split("_")[1].isdigit()}
    documented = {c.exit_code for c in all_error_classes()} - {2}
    untested = documented - tested - {9, 16}  # 9, 16: tests/unit/ops/test_restore_safety.py
    assert not untested, f"exit codes without a test here: {sorted(untested)}"


def test_21_bad_archive(lab):
    lab.ok("repo", "init")
    (lab.root / "vzdump-lxc-101-2024_01_02-03_04_05.tar").write_bytes(b"not a tar" * 100)
    r = lab.run("import", str(lab.root / "vzdump-lxc-101-2024_01_02-03_04_05.tar"))
    assert r.code == 21 and "vzdump-lxc-101-2024_01_02-03_04_05.tar" in r.err


def test_23_checkpoint_failed(lab):
    r = lab.run("checkpoint", "ct101", "--label", "pre-upgrade")  # snapshotter none: cannot
    assert r.code == 23 and "ct101" in r.err and "node1" in r.err and "pre-upgrade" in r.err


def test_24_branch_failed(backed_up):
    r = backed_up.run("branch", "create", "demo", "--guests", "ct101,ct150", "--to", "node2")
    assert r.code == 24 and "ct150" in r.err and "--fresh" in r.err
    assert not list(backed_up.node("node2").iterdir())


def test_25_bad_bundle(backed_up, tmp_path):
    fake = tmp_path / "not-a-bundle.vzb"
    fake.write_bytes(b"hello" * 1000)
    r = backed_up.run("branch", "import", str(fake), "--to", "node2")
    assert r.code == 25 and str(fake) in r.err and "Nothing was written" in r.err
    assert not list(backed_up.node("node2").iterdir())
