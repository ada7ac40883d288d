"""vzdump archive names: what PVE's archive_info accepts, and nothing else."""

from __future__ import annotations

from datetime import datetime

import pytest

from vzbackup.domain.guests import GuestRef
from vzbackup.domain.vzdump import NotAnArchiveName, archive_name, parse_archive_name

STAMP = "2024_01_02-03_04_05"


@pytest.mark.parametrize("ext, fmt, compression", [
    ("tar", "tar", None), ("tar.gz", "tar", "gzip"), ("tar.lzo", "tar", "lzo"),
    ("tar.zst", "tar", "zstd"), ("tar.bz2", "tar", "bzip2"), ("tgz", "tar", "gzip"),
    ("vma", "vma", None), ("vma.gz", "vma", "gzip"), ("vma.lzo", "vma", "lzo"),
    ("vma.zst", "vma", "zstd"), ("vma.bz2", "vma", "bzip2"),
])
def test_every_documented_extension(ext, fmt, compression):
    kind = "qemu" if fmt == "vma" else "lxc"
    a = parse_archive_name(f"vzdump-{kind}-101-{STAMP}.{ext}")
    assert (a.format, a.compression, a.vmid, a.when) == (fmt, compression, 101,
                                                         datetime(2024, 1, 2, 3, 4, 5))
    assert a.log_name == f"vzdump-{kind}-101-{STAMP}.log"
    assert a.notes_name == f"vzdump-{kind}-101-{STAMP}.{ext}.notes"


def test_kinds_and_in_progress_name():
    assert parse_archive_name(f"vzdump-openvz-101-{STAMP}.tgz").guest == GuestRef("ct", 101)
    assert parse_archive_name(f"vzdump-qemu-200-{STAMP}.vma.zst").guest == GuestRef("vm", 200)
    assert parse_archive_name(f"vzdump-lxc-101-{STAMP}.tar.zst").partial_name == (
        f"vzdump-lxc-101-{STAMP}.tar.dat")
    assert parse_archive_name(f"vzdump-qemu-101-{STAMP}.vma").partial_name == (
        f"vzdump-qemu-101-{STAMP}.dat")


@pytest.mark.parametrize("name, why", [
    ("vzdump-101.tgz", "vzdump archives are named"),
    (f"vzdump-lxc-99-{STAMP}.tar", "renamed"),  # VMIDs start at 100
    (f"vzdump-lxc-101-{STAMP}.tar.xz", "vzdump archives are named"),
    (f"vzdump-lxc-101-{STAMP}.zip", "vzdump archives are named"),
    ("vzdump-lxc-101-2024_02_30-03_04_05.tar", "day is out of range"),
    (f"vzdump-pbs-101-{STAMP}.tar", "vzdump archives are named"),
    (f"backup-lxc-101-{STAMP}.tar", "vzdump archives are named"),
])
def test_names_vzdump_never_writes(name, why):
    with pytest.raises(NotAnArchiveName, match=why) as e:
        parse_archive_name(name)
    assert f"couldn't determine archive info from '{name}'" in str(e.value)


def test_name_written_back_is_the_one_read():
    when = datetime(2024, 1, 2, 3, 4, 5)
    for compression, ext in ((None, ""), ("gzip", ".gz"), ("lzo", ".lzo"), ("zstd", ".zst")):
        name = archive_name("lxc", 101, when, "tar", compression)
        assert name == f"vzdump-lxc-101-{STAMP}.tar{ext}"
        assert parse_archive_name(name).when == when
