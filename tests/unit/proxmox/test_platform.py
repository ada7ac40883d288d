"""The proxmox platform against the PVE emulators: guests, dumps, restores (cut streams
included), snapshots, start/stop/status."""

from __future__ import annotations

import io
import json

import pytest

from tests.fakes.pve.cluster import BIN
from vzbackup.config.model import ProxmoxConfig
from vzbackup.domain.guests import GuestRef
from vzbackup.errors import (DumpFailed, GuestCommandFailed, GuestExists, GuestNotFound,
                             IntegrityError, RestoreFailed)
from vzbackup.platforms import proxmox
from vzbackup.platforms.proxmox import ProxmoxPlatform, _guest
from vzbackup.snapshots.none import NoSnapshot

CT101, VM200, CT102 = GuestRef("ct", 101), GuestRef("vm", 200), GuestRef("ct", 102)


@pytest.fixture
def platform(pve) -> ProxmoxPlatform:
    return ProxmoxPlatform("pve1", pve.etc_pve("pve1"), ProxmoxConfig(bin_dir=str(BIN)))


def dump_bytes(platform, ref) -> tuple[bytes, dict]:
    guest = platform.find_guest(ref)
    with platform.dump(guest, NoSnapshot()) as d:
        return d.stream.read(), d.config


class Failing(io.RawIOBase):
    """A verified stream that fails after ``good`` bytes, as a damaged chunk does."""

    def __init__(self, data: bytes, good: int):
        self.data, self.good, self.pos = data, good, 0

    def read(self, n: int = -1) -> bytes:
        if self.pos >= self.good:
            raise IntegrityError("restore point x: chunk y does not match its id")
        out = self.data[self.pos:min(self.good, self.pos + (n if n > 0 else len(self.data)))]
        self.pos += len(out)
        return out


def test_guests_of_this_node_with_tags_pool_and_status(pve, platform):
    conf = pve.conf_path("pve1", "ct", 101)
    conf.write_text(conf.read_text() + "tags: web;prod\n")
    (pve.shared / "user.cfg").write_text("pool:frontend:Front end:101::\n")
    guests = platform.list_guests()
    assert [(str(g.ref), g.name, g.node, g.status) for g in guests] == [
        ("ct101", "web1", "pve1", "running"), ("vm200", "app", "pve1", "stopped")]
    assert guests[0].config == {"pool": "frontend", "tags": "web;prod"}
    assert platform.holder(102).node == "pve2"


def test_resource_entries_of_every_documented_shape():
    assert str(_guest({"id": "lxc/101", "vmid": "101", "node": "n", "type": "lxc"}).ref) == "ct101"
    old = _guest({"id": "openvz/105", "vmid": 105, "node": "n", "type": "openvz"})
    assert (str(old.ref), old.name, old.status) == ("ct105", "CT105", "unknown")
    assert _guest({"id": "qemu/300", "node": "n", "type": "qemu", "status": "running",
                   "tags": "a,b c"}).config == {"tags": "a;b;c"}
    assert _guest({"id": "storage/n/local", "node": "n", "type": "storage"}) is None


def test_dump_is_vzdump_stdout_and_config_goes_to_the_manifest(platform):
    data, config = dump_bytes(platform, CT101)
    import tarfile
    assert tarfile.open(fileobj=io.BytesIO(data)).getnames()[0] == "./etc/vzdump/pct.conf"
    assert config["hostname"] == "web1" and config["rootfs"].startswith("local-lvm:vm-101-disk-0")
    data, config = dump_bytes(platform, VM200)
    assert data[:4] == b"VMA\0" and config["name"] == "app"


def test_dump_passes_the_node_options(pve, platform):
    platform.options = ProxmoxConfig(bin_dir=str(BIN), dump_mode="stop", bwlimit=100000,
                                     exclude_path=("/home/demo/f00*",), stdexcludes=False)
    args = platform.vzdump_args(CT101)
    assert args[:7] == ["101", "--stdout", "1", "--compress", "0", "--mode", "stop"]
    data, _ = dump_bytes(platform, CT101)
    import tarfile
    names = tarfile.open(fileobj=io.BytesIO(data)).getnames()
    assert "./tmp/scratch" in names and "./home/demo/f000.txt" not in names
    assert pve.status(101) == "running"  # stop mode restarted it


def test_failing_vzdump_is_dump_failed_naming_guest_node_and_cause(pve, platform):
    conf = pve.conf_path("pve1", "ct", 101)
    conf.write_text(conf.read_text() + "lock: snapshot\n")
    with pytest.raises(DumpFailed) as e:
        dump_bytes(platform, CT101)
    assert "ct101 on node pve1" in e.value.message and "exit 255" in e.value.message
    assert e.value.message.endswith("vzdump failed (exit 255): CT is locked (snapshot)")
    assert "pct unlock 101" in e.value.hint


def test_a_guest_on_another_node_is_not_dumped_here(platform):
    from vzbackup.ports import GuestInfo
    with pytest.raises(GuestNotFound, match="VMID 102 is ct102 on node pve2"):
        with platform.dump(GuestInfo(CT102, "db", "pve1"), NoSnapshot()):
            pass


def test_restore_roundtrip_under_a_new_id(pve, platform):
    data, config = dump_bytes(platform, CT101)
    guest = platform.restore(GuestRef("ct", 150), io.BytesIO(data), name="web150", config=config)
    assert (guest.name, guest.node) == ("web150", "pve1")
    assert pve.conf("pve1", "ct", 150)["rootfs"] == "local-lvm:vm-150-disk-0,size=8G"
    data, config = dump_bytes(platform, VM200)
    platform.restore(GuestRef("vm", 250), io.BytesIO(data), name="app", config=config)
    assert pve.volume("pve1", "local-lvm:vm-250-disk-0").read_bytes() == \
        pve.volume("pve1", "local-lvm:vm-200-disk-0").read_bytes()


@pytest.mark.parametrize("ref", [GuestRef("ct", 160), GuestRef("vm", 260)])
def test_a_stream_failing_verification_leaves_no_guest(pve, platform, ref, monkeypatch):
    monkeypatch.setattr(proxmox, "TAIL", 4096)  # small test streams: still cut mid-way
    data, config = dump_bytes(platform, CT101 if ref.kind == "ct" else VM200)
    stream = Failing(data, len(data) - 5000)
    with pytest.raises(IntegrityError):
        platform.restore(ref, stream, name="x", config=config)
    assert not pve.conf_path("pve1", ref.kind, ref.vmid).exists()
    assert not pve.volume("pve1", f"local-lvm:vm-{ref.vmid}-disk-0").exists()


def test_the_tail_is_held_until_the_stream_is_verified(pve, platform):
    """GNU tar accepts a tar cut at a member boundary: the tool must never see the end."""
    data, config = dump_bytes(platform, CT101)
    with pytest.raises(IntegrityError):
        platform.restore(GuestRef("ct", 170), Failing(data, len(data)), name="x", config=config)
    assert not pve.conf_path("pve1", "ct", 170).exists()


def test_existing_guests(pve, platform):
    data, config = dump_bytes(platform, CT101)
    with pytest.raises(GuestExists, match="VMID 101 already exists"):
        platform.restore(CT101, io.BytesIO(data), name="web1", config=config)
    with pytest.raises(GuestExists, match="is vm200"):
        platform.restore(GuestRef("ct", 200), io.BytesIO(data), name="x", config=config, force=True)
    with pytest.raises(RestoreFailed, match="can't overwrite running container"):
        platform.restore(CT101, io.BytesIO(data), name="web1", config=config, force=True)
    assert pve.conf("pve1", "ct", 101)["hostname"] == "web1"  # untouched
    pve.set_status(101, "stopped")
    platform.restore(CT101, io.BytesIO(data), name="web1", config=config, force=True)


def test_forced_restore_cut_mid_way_says_the_old_guest_is_gone(pve, platform, monkeypatch):
    monkeypatch.setattr(proxmox, "TAIL", 4096)
    pve.set_status(101, "stopped")
    data, config = dump_bytes(platform, CT101)
    with pytest.raises(IntegrityError):
        platform.restore(CT101, Failing(data, len(data) // 2), name="web1", config=config, force=True)
    assert pve.conf_path("pve1", "ct", 101).exists()  # never destroyed by vzbackup


def test_vmid_on_another_node_and_the_dead_node_procedure(pve, platform):
    data, config = dump_bytes(platform, CT101)
    with pytest.raises(GuestExists) as e:
        platform.restore(CT102, io.BytesIO(data), name="db", config=config)
    assert "lives on node pve2" in e.value.message and "dead-node procedure" in e.value.hint
    pve.set_status(102, "running")
    with pytest.raises(GuestExists, match="reports it running"):
        platform.restore(CT102, io.BytesIO(data), name="db", config=config, force=True)
    pve.set_offline("pve2")
    (pve.shared / "ha").mkdir()
    (pve.shared / "ha/resources.cfg").write_text("ct: 102\n\tstate started\n")
    with pytest.raises(GuestExists, match="HA-managed"):
        platform.restore(CT102, io.BytesIO(data), name="db", config=config, force=True)
    (pve.shared / "ha/resources.cfg").unlink()
    guest = platform.restore(CT102, io.BytesIO(data), name="db", config=config, force=True)
    assert guest.node == "pve1"
    assert not pve.conf_path("pve2", "ct", 102).exists()
    assert pve.conf("pve1", "ct", 102)["hostname"] == "db"


def test_snapshot_rollback_delete_start_stop_status(pve, platform):
    f = pve.volume("pve1", "local-lvm:vm-101-disk-0") / "home/demo/f000.txt"
    before = f.read_bytes()
    platform.snapshot(CT101, "before_upgrade", "pre-upgrade checkpoint")
    f.write_bytes(b"upgraded")
    platform.rollback(CT101, "before_upgrade")
    assert f.read_bytes() == before and platform.status(CT101) == "stopped"
    platform.start(CT101)
    assert platform.status(CT101) == "running"
    with pytest.raises(GuestCommandFailed, match="already running"):
        platform.start(CT101)
    platform.stop(CT101)
    platform.delete_snapshot(CT101, "before_upgrade")
    with pytest.raises(GuestCommandFailed, match="snapshot 'before_upgrade' does not exist"):
        platform.rollback(CT101, "before_upgrade")
    with pytest.raises(GuestCommandFailed, match="reserved name"):
        platform.snapshot(CT101, "vzdump")
    platform.snapshot(VM200, "vmsnap")
    platform.rollback(VM200, "vmsnap", start=True)
    assert platform.status(VM200) == "running"
    with pytest.raises(GuestNotFound):
        platform.start(GuestRef("ct", 999))


def test_pvesh_failure_names_the_node(pve, platform, tmp_path):
    platform.tools.bin_dir = str(tmp_path)  # no tools there
    with pytest.raises(GuestCommandFailed, match="node pve1: cannot list the cluster's guests"):
        platform.list_guests()


def test_vmid_string_from_old_versions_is_tolerated(pve, platform):
    (pve.shared / ".fake/version").write_text("7.4\n")
    out = platform.tools.run("pvesh", "get", "/nodes/pve1/lxc", "--output-format", "json").out
    assert json.loads(out)[0]["vmid"] == "101"
    assert [str(g.ref) for g in platform.list_guests()] == ["ct101", "vm200"]


def test_node_defaults_in_vzdump_conf_do_not_change_the_stream(pve, platform):
    (pve.root("pve1") / "etc/vzdump.conf").write_text("compress: gzip\nmode: suspend\n")
    data, _ = dump_bytes(platform, CT101)
    import tarfile
    assert tarfile.open(fileobj=io.BytesIO(data)).getnames()[0] == "./etc/vzdump/pct.conf"
