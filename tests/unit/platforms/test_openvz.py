"""The openvz platform against the vzlist/vzctl emulators: discovery (vzctl 4.x JSON and
3.x columns), dumps in vzdump's OpenVZ layout, restores that never replace a running CT."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from tests.fakes import vz_tools
from tests.fakes.lvm_lab import BIN
from vzbackup.domain.guests import GuestRef
from vzbackup.errors import GuestExists, RestoreFailed
from vzbackup.platforms.openvz import OpenVzPlatform
from vzbackup.snapshots.none import NoSnapshot


@pytest.fixture
def ovz(tmp_path, monkeypatch) -> OpenVzPlatform:
    monkeypatch.setenv(vz_tools.ROOT_ENV, str(tmp_path))
    monkeypatch.setenv("PATH", f"{BIN}:{os.environ['PATH']}")
    private = tmp_path / "vz/private/101"
    (private / "etc").mkdir(parents=True)
    (private / "etc/hostname").write_text("web1\n")
    vz_tools.make_ct(tmp_path, 101, "web1", private)
    return OpenVzPlatform(tmp_path / "vz", "ovz1", conf_dir=vz_tools.conf_dir(tmp_path))


def test_guests_from_json_and_from_vzctl3_columns(ovz, monkeypatch):
    [g] = ovz.list_guests()
    assert (g.ref, g.name, g.status, g.config["HOSTNAME"]) == (GuestRef("ct", 101), "web1", "running", "web1")
    monkeypatch.setenv("FAKE_VZCTL_VERSION", "3.0.30")
    assert ovz.list_guests() == [g]
    assert ovz.find_guest(GuestRef("vm", 101)) is None


def dump_bytes(ovz: OpenVzPlatform) -> tuple[bytes, dict]:
    guest = ovz.find_guest(GuestRef("ct", 101))
    with ovz.dump(guest, NoSnapshot()) as dump:
        return dump.stream.read(), dump.config


def test_dump_puts_vps_conf_first_then_the_private_area(ovz):
    data, config = dump_bytes(ovz)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = tar.getnames()
        conf = tar.extractfile("./etc/vzdump/vps.conf").read().decode()
    assert names[0] == "./etc/vzdump/vps.conf" and "./etc/hostname" in names
    assert 'HOSTNAME="web1"' in conf and config["HOSTNAME"] == "web1"


def test_restore_refuses_existing_and_running_then_replaces_a_stopped_one(ovz, tmp_path):
    data, config = dump_bytes(ovz)
    with pytest.raises(GuestExists):
        ovz.restore(GuestRef("ct", 101), io.BytesIO(data), name="web1", config=config)
    with pytest.raises(RestoreFailed, match="is running") as e:
        ovz.restore(GuestRef("ct", 101), io.BytesIO(data), name="web1", config=config, force=True)
    assert "vzctl stop 101" in e.value.hint
    vz_tools.set_status(tmp_path, 101, "stopped")
    (tmp_path / "vz/private/101/etc/hostname").write_text("changed\n")
    g = ovz.restore(GuestRef("ct", 101), io.BytesIO(data), name="web1", config=config, force=True)
    assert g.status == "stopped"
    assert (tmp_path / "vz/private/101/etc/hostname").read_text() == "web1\n"
    assert [p.name for p in (tmp_path / "vz/private").iterdir()] == ["101"]


def test_restore_of_a_vm_is_refused(ovz):
    with pytest.raises(RestoreFailed, match="containers only"):
        ovz.restore(GuestRef("vm", 300), io.BytesIO(b""), name="x", config={})
