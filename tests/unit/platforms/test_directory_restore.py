"""Restore puts a guest in place only after the whole stream was read and checked."""

from __future__ import annotations

import io
import os

import pytest

from vzbackup.domain.guests import GuestRef
from vzbackup.errors import GuestExists, IntegrityError
from vzbackup.platforms import install
from vzbackup.platforms.directory import DirectoryPlatform

from .conftest import make_container
from .test_directory_roundtrip import dump_bytes

CT = GuestRef("ct", 101)


class FailingAtEof(io.RawIOBase):
    """A point reader whose whole-stream checksum fails when EOF is reached."""

    def __init__(self, data: bytes):
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        chunk = self._data.read(n)
        if not chunk:
            raise IntegrityError("point abc: the stream's SHA-256 does not match")
        return chunk


@pytest.fixture
def stream_of_ct101(platform, sandbox, nosnap) -> bytes:
    make_container(sandbox.root, 101, small_files=50, hostname="new")
    data, _ = dump_bytes(platform, CT, nosnap)
    os.rename(sandbox.root / "ct101", sandbox.base / "source-ct101")
    return data


def old_guest(sandbox) -> None:
    (sandbox.root / "ct101/rootfs/etc").mkdir(parents=True)
    (sandbox.root / "ct101/rootfs/etc/hostname").write_text("old\n")
    (sandbox.root / "ct101/guest.conf").write_text("hostname: old\n")


def test_existing_guest_is_refused_before_reading(platform, sandbox, stream_of_ct101):
    old_guest(sandbox)
    stream = io.BytesIO(stream_of_ct101)
    with pytest.raises(GuestExists, match="ct101 on node lab1"):
        platform.restore(CT, stream, name="new", config={})
    assert stream.tell() == 0
    assert sandbox.entries() == ["ct101"]


def test_force_replaces_the_guest(platform, sandbox, stream_of_ct101):
    old_guest(sandbox)
    info = platform.restore(CT, io.BytesIO(stream_of_ct101), name="new",
                            config={"hostname": "old", "memory": "1024"}, force=True)
    assert sandbox.entries() == ["ct101"]
    assert (sandbox.root / "ct101/rootfs/etc/hostname").read_text() == "new\n"
    assert info.name == "new" and info.config == {"hostname": "new", "memory": "1024"}


def test_force_without_renameat2_uses_two_renames(platform, sandbox, stream_of_ct101,
                                                  monkeypatch):
    monkeypatch.setattr(install, "_renameat2", None)
    old_guest(sandbox)
    platform.restore(CT, io.BytesIO(stream_of_ct101), name="new", config={}, force=True)
    assert sandbox.entries() == ["ct101"]
    assert (sandbox.root / "ct101/rootfs/etc/hostname").read_text() == "new\n"


def test_integrity_error_at_eof_installs_nothing(platform, sandbox, stream_of_ct101):
    old_guest(sandbox)
    with pytest.raises(IntegrityError):
        platform.restore(CT, FailingAtEof(stream_of_ct101), name="new", config={}, force=True)
    assert sandbox.entries() == ["ct101"]
    assert (sandbox.root / "ct101/rootfs/etc/hostname").read_text() == "old\n"


def test_integrity_error_on_a_new_guest_leaves_no_folder(platform, sandbox, stream_of_ct101):
    with pytest.raises(IntegrityError):
        platform.restore(CT, FailingAtEof(stream_of_ct101), name="new", config={})
    assert sandbox.entries() == []


def test_crash_leftovers_are_cleaned_and_never_listed(platform, sandbox, stream_of_ct101):
    leftover = sandbox.root / ".restore-ct101-crash1"
    (leftover / "rootfs/dir").mkdir(parents=True)
    os.chmod(leftover / "rootfs/dir", 0o500)
    other = sandbox.root / ".restore-ct102-crash2"
    other.mkdir()
    assert platform.list_guests() == []
    platform.restore(CT, io.BytesIO(stream_of_ct101), name="new", config={})
    assert sandbox.entries() == [".restore-ct102-crash2", "ct101"]  # only ct101's are removed
    assert platform.cleanup_staging() == [other]


def test_crash_between_fallback_renames_is_rolled_back(platform, sandbox):
    old_guest(sandbox)
    os.rename(sandbox.root / "ct101", sandbox.root / ".replaced-ct101-dead")
    platform.cleanup_staging()
    assert sandbox.entries() == ["ct101"]
    assert platform.find_guest(CT).name == "old"


def test_restore_under_another_vmid_rewrites_the_config(platform, sandbox, stream_of_ct101):
    config = {"hostname": "new", "vmid": "101", "net0": "name=eth0,ip=dhcp"}
    info = platform.restore(GuestRef("ct", 250), io.BytesIO(stream_of_ct101), name="copy",
                            config=config)
    assert info.config == {"hostname": "copy", "vmid": "250", "net0": "name=eth0,ip=dhcp"}
    text = (sandbox.root / "ct250/guest.conf").read_text()
    assert text == "hostname: copy\nvmid: 250\nnet0: name=eth0,ip=dhcp\n"


def test_vm_archive_cannot_plant_a_config_symlink(sandbox):
    import tarfile

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        link = tarfile.TarInfo("guest.conf")
        link.type, link.linkname = tarfile.SYMTYPE, "../../passwd"
        tf.addfile(link)
    platform = DirectoryPlatform(sandbox.root, "lab1")
    platform.restore(GuestRef("vm", 300), io.BytesIO(out.getvalue()), name="v", config={})
    conf = sandbox.root / "vm300/guest.conf"
    assert not conf.is_symlink() and conf.read_text() == "name: v\n"
    sandbox.assert_untouched()


@pytest.mark.parametrize("with_renameat2", [True, False])
def test_install_never_replaces_without_replace(tmp_path, monkeypatch, with_renameat2):
    if not with_renameat2:
        monkeypatch.setattr(install, "_renameat2", None)
    new, dest = tmp_path / "new", tmp_path / "dest"
    new.mkdir()
    (new / "n").touch()
    dest.mkdir()
    (dest / "o").touch()
    with pytest.raises(FileExistsError):
        install.install_folder(new, dest, replace=False)
    old = install.install_folder(new, dest, replace=True)
    assert (dest / "n").exists() and (old / "o").exists()
