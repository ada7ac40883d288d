"""Hostile tar streams: refused with UnsafeArchive, nothing written outside the target,
nothing installed (promise 5)."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from vzbackup.domain.guests import GuestRef
from vzbackup.errors import RestoreFailed, UnsafeArchive
from vzbackup.platforms.directory import DirectoryPlatform
from vzbackup.platforms.tarsafe import extract_stream, split_name

CT = GuestRef("ct", 101)


def member(name: str, type_: bytes = tarfile.REGTYPE, data: bytes = b"", linkname: str = "",
           mode: int = 0o644, **kw) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.size = type_, linkname, mode, len(data)
    for key, value in kw.items():
        setattr(info, key, value)
    if type_ != tarfile.REGTYPE:
        info.size = 0
    return info, data


def archive(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if info.size else None)
    return out.getvalue()


def file(name: str, data: bytes = b"pwned\n") -> tuple[tarfile.TarInfo, bytes]:
    return member(name, data=data)


def symlink(name: str, target: str) -> tuple[tarfile.TarInfo, bytes]:
    return member(name, tarfile.SYMTYPE, linkname=target)


def hardlink(name: str, target: str) -> tuple[tarfile.TarInfo, bytes]:
    return member(name, tarfile.LNKTYPE, linkname=target)


def directory(name: str) -> tuple[tarfile.TarInfo, bytes]:
    return member(name, tarfile.DIRTYPE, mode=0o755)


def hostile(case: str, sandbox: Path) -> bytes:
    """Each stream aims at the sandbox around the node root (``<rootfs>/../../..``), so
    that a regression writes where ``assert_untouched`` looks, never into the real /."""
    up = "../../.."  # from <node>/.restore-ct101-X/rootfs to the sandbox
    rel = str(sandbox).lstrip("/")  # the sandbox as seen through a link to /
    cases = {
        "absolute": [file(f"{sandbox}/sentinel/evil")],
        "dotdot": [file(f"{up}/sentinel/evil")],
        "dotdot-inside": [directory("a"), file(f"a/../{up}/sentinel/evil")],
        "dotdot-deep": [file(f"./x/y/../../{up}/sentinel/keep.txt")],
        "symlink-to-root-then-through": [symlink("link", "/"), file(f"link/{rel}/evil")],
        "symlink-up-then-through": [symlink("up", up), file("up/sentinel/new")],
        "hardlink-absolute": [hardlink("pw", "/etc/passwd")],
        "hardlink-dotdot": [hardlink("pw", f"{up}/passwd")],
        "hardlink-not-extracted": [hardlink("pw", "etc/shadow")],
        "symlink-replaces-dir": [directory("etc"), file("etc/a"),
                                 symlink("etc", f"{sandbox}/sentinel"), file("etc/b")],
        "file-replaced-by-symlink-then-through": [file("d"), symlink("d", "/"),
                                                  file(f"d/{rel}/sentinel/evil")],
        "root-as-file": [file(".")],
        "nested-symlink-chain": [directory("a"), symlink("a/b", f"../{up}"),
                                 file("a/b/sentinel/evil")],
    }
    return archive(*cases[case])


HOSTILE = ["absolute", "dotdot", "dotdot-inside", "dotdot-deep", "symlink-to-root-then-through",
           "symlink-up-then-through", "hardlink-absolute", "hardlink-dotdot",
           "hardlink-not-extracted", "symlink-replaces-dir",
           "file-replaced-by-symlink-then-through", "root-as-file", "nested-symlink-chain"]


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_stream_installs_nothing(case, platform: DirectoryPlatform, sandbox):
    data = hostile(case, sandbox.base)
    with pytest.raises(UnsafeArchive) as err:
        platform.restore(CT, io.BytesIO(data), name="evil", config={"hostname": "x"})
    assert "ct101 on node lab1" in str(err.value) and "refusing" in str(err.value)
    assert sandbox.entries() == []  # no guest, no staging
    sandbox.assert_untouched()


def test_hostile_stream_keeps_the_existing_guest(platform, sandbox):
    (sandbox.root / "ct101" / "rootfs").mkdir(parents=True)
    (sandbox.root / "ct101" / "guest.conf").write_text("hostname: old\n")
    data = hostile("symlink-to-root-then-through", sandbox.base)
    with pytest.raises(UnsafeArchive):
        platform.restore(CT, io.BytesIO(data), name="evil", config={}, force=True)
    assert sandbox.entries() == ["ct101"]
    assert platform.find_guest(CT).name == "old"
    sandbox.assert_untouched()


def test_device_node_refused_when_not_root(sandbox):
    platform = DirectoryPlatform(sandbox.root, "lab1", as_root=False)
    dev = member("dev/null", tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3)
    with pytest.raises(UnsafeArchive, match="device node") as err:
        platform.restore(CT, io.BytesIO(archive(dev)), name="x", config={})
    assert "root" in err.value.hint
    assert sandbox.entries() == []


def test_member_name_rules():
    assert split_name("./a//b/./c") == ("a", "b", "c")
    assert split_name(".") == () and split_name("./") == ()
    assert split_name("/etc") is None
    assert split_name("a/../b") is None
    assert split_name("a\0b") is None
    assert split_name("..a/b..") == ("..a", "b..")


def test_symlinks_are_data_never_followed(tmp_path: Path):
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "target"  # a regression would write here, never into the real /etc
    data = archive(symlink("etc", "/etc"), symlink("up", "../outside"), file("f", b"x"),
                   hardlink("h", "f"), symlink("f", str(target)), file("f", b"again"),
                   file("up/evil"))
    with pytest.raises(UnsafeArchive, match="passes through the symlink 'up'"):
        extract_stream(io.BytesIO(data), root, target="t")
    assert os.readlink(root / "etc") == "/etc" and os.readlink(root / "up") == "../outside"
    assert (root / "h").read_bytes() == b"x"  # the replaced file's other name keeps its data
    assert (root / "f").read_bytes() == b"again" and not (root / "f").is_symlink()
    assert list(outside.iterdir()) == []


def test_a_directory_member_replaces_a_symlink_instead_of_following_it(platform, sandbox):
    data = archive(symlink("s", "../../sentinel"), directory("s"), file("s/x"))
    platform.restore(CT, io.BytesIO(data), name="x", config={})
    s = sandbox.root / "ct101/rootfs/s"
    assert s.is_dir() and not s.is_symlink() and (s / "x").read_bytes() == b"pwned\n"
    sandbox.assert_untouched()


def test_a_file_may_replace_a_file_but_not_a_directory(tmp_path: Path):
    root = tmp_path / "root"
    root.mkdir()
    extract_stream(io.BytesIO(archive(file("a", b"1"), file("a", b"2"))), root, target="t")
    assert (root / "a").read_bytes() == b"2"
    with pytest.raises(UnsafeArchive, match="replace a directory"):
        extract_stream(io.BytesIO(archive(directory("d"), file("d"))), tmp_path / "root",
                       target="t")


def test_garbage_is_restore_failed(platform, sandbox):
    with pytest.raises(RestoreFailed, match="not a valid tar"):
        platform.restore(CT, io.BytesIO(b"\x01" * 5000), name="x", config={})
    assert sandbox.entries() == []


def test_truncated_stream_is_restore_failed(platform, sandbox):
    data = archive(file("big", os.urandom(100_000)))
    with pytest.raises(RestoreFailed):
        platform.restore(CT, io.BytesIO(data[:50_000]), name="x", config={})
    assert sandbox.entries() == []


def test_stream_is_read_to_eof(tmp_path: Path):
    root = tmp_path / "root"
    root.mkdir()
    stream = io.BytesIO(archive(file("a")) + b"\0" * (3 << 20))
    stats = extract_stream(stream, root, target="t")
    assert stream.read() == b"" and stats.members == 1 and stats.trailing_bytes > 0


def test_hardlink_to_a_replaced_name_links_the_symlink_itself(tmp_path: Path):
    root = tmp_path / "root"
    root.mkdir()
    elsewhere = str(tmp_path / "elsewhere")
    data = archive(file("a", b"x"), symlink("a", elsewhere), hardlink("b", "a"))
    extract_stream(io.BytesIO(data), root, target="t")
    assert os.readlink(root / "b") == elsewhere
    assert os.lstat(root / "a").st_ino == os.lstat(root / "b").st_ino


def test_nul_in_a_link_target_is_refused(tmp_path: Path):
    root = tmp_path / "root"
    root.mkdir()
    link = symlink("l", "a")
    link[0].pax_headers = {"linkpath": "a\0/etc/passwd"}  # a pax value may hold any byte
    data = archive(link)
    assert "\0" in next(iter(tarfile.open(fileobj=io.BytesIO(data)))).linkname
    with pytest.raises(UnsafeArchive, match="NUL"):
        extract_stream(io.BytesIO(data), root, target="t")
    assert list(root.iterdir()) == []
