"""The vzlist and vzctl emulators answer as vzctl 4.x does (shared/reference/pve.md 12)."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.fakes import vz_tools
from tests.fakes.lvm_lab import BIN


@pytest.fixture
def vz(tmp_path, monkeypatch):
    monkeypatch.setenv(vz_tools.ROOT_ENV, str(tmp_path))
    vz_tools.make_ct(tmp_path, 101, "web1", tmp_path / "vz/private/101")
    vz_tools.make_ct(tmp_path, 102, "db1", tmp_path / "vz/private/102", "stopped")
    return tmp_path


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True)


def test_vzlist_json_has_typed_fields_and_lists_running_only_without_a(vz):
    done = run("vzlist", "-a", "-j")
    cts = json.loads(done.stdout)
    assert [c["ctid"] for c in cts] == [101, 102]
    assert cts[0]["private"] == str(vz / "vz/private/101")  # $VEID expanded
    assert (cts[0]["status"], cts[0]["ip"], cts[0]["onboot"]) == ("running", ["10.0.0.101"], True)
    assert cts[0]["diskspace"] == {"usage": 0, "softlimit": 2097152, "hardlimit": 2306867}
    assert cts[1]["laverage"] is None and cts[1]["name"] is None
    assert done.stdout.splitlines()[2] == '    "ctid": 101,'  # a field per line, 4 spaces
    assert [c["ctid"] for c in json.loads(run("vzlist", "-j").stdout)] == [101]


def test_vzlist_columns_and_vzctl3_without_json(vz, monkeypatch):
    done = run("vzlist", "-a", "-H", "-o", "ctid,hostname,status,private")
    assert done.stdout.split() == ["101", "web1", "running", str(vz / "vz/private/101"),
                                   "102", "db1", "stopped", str(vz / "vz/private/102")]
    monkeypatch.setenv("FAKE_VZCTL_VERSION", "3.0.30")
    done = run("vzlist", "-a", "-j")
    assert done.returncode == 1 and done.stderr.startswith("vzlist: invalid option -- 'j'")
    done = run("vzlist", "-o", "bogus")
    assert (done.returncode, done.stderr) == (1, "Unknown field: bogus\n")


def test_vzctl_status_start_stop_and_their_exit_codes(vz):
    assert run("vzctl", "status", "101").stdout == "CTID 101 exist mounted running\n"
    assert run("vzctl", "status", "102").stdout == "CTID 102 exist unmounted down\n"
    assert run("vzctl", "status", "999").stdout == "CTID 999 deleted unmounted down\n"
    assert run("vzctl", "stop", "102").returncode == 31  # not running
    assert run("vzctl", "start", "101").returncode == 32  # running
    (vz / "run" / "102.lck").write_text("")
    done = run("vzctl", "start", "102")
    assert (done.returncode, done.stderr) == (9, "Container already locked\n")
    (vz / "run" / "102.lck").unlink()
    assert run("vzctl", "start", "102").returncode == 0
    assert run("vzctl", "status", "102").stdout == "CTID 102 exist mounted running\n"
