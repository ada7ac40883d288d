"""Promise 5 end to end: a restore point holding a hostile or broken stream restores
nothing, writes nothing outside its target, and says so (exit codes 9 and 16)."""

from __future__ import annotations

import io
import tarfile
from datetime import datetime, timezone

import pytest

from vzbackup.config import load_config
from vzbackup.domain.guests import GuestRef
from vzbackup.ports import GuestInfo, PointDraft
from vzbackup.wiring import App


class Silent:
    def info(self, m): ...
    def warning(self, m): ...
    def progress(self, d, t):
        from contextlib import nullcontext
        return nullcontext(lambda n: None)


def store_point(lab, vmid: int, stream: bytes) -> str:
    """Put ``stream`` in the repository as a restore point of ct<vmid> and catalogue it."""
    app = App(load_config(lab.config), Silent())
    repo = app.repository("main")
    ref = GuestRef("ct", vmid)
    writer = repo.new_point(PointDraft(ref, f"evil{vmid}", "directory", "node1",
                                       datetime.now(timezone.utc), {"hostname": f"evil{vmid}"}))
    writer.write(io.BytesIO(stream))
    manifest = writer.commit()
    app.catalog.upsert_guest(GuestInfo(ref, f"evil{vmid}", "node1"))
    app.catalog.record_point(manifest, manifest.id, "main")
    return manifest.id


def tar_of(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def member(name: str, *, data: bytes = b"x", kind=tarfile.REGTYPE, linkname: str = ""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, (data if kind == tarfile.REGTYPE else None)


HOSTILE = {
    "absolute": [member("/etc/evil-abs")],
    "dotdot": [member("./etc/ok"), member("../../evil-dotdot")],
    "symlink-escape": [member("./link", kind=tarfile.SYMTYPE, linkname="../../../.."),
                       member("./link/evil-symlink")],
    "absolute-symlink-then-write": [member("./etcl", kind=tarfile.SYMTYPE, linkname="/"),
                                    member("./etcl/evil-abs-symlink")],
    "hardlink-out": [member("./h", kind=tarfile.LNKTYPE, linkname="../../outside-file")],
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_9_hostile_stream_writes_nothing_outside_and_installs_nothing(backed_up, case):
    lab = backed_up
    (lab.root / "outside-file").write_text("precious")
    before = sorted(p.relative_to(lab.root.parent) for p in lab.root.parent.rglob("*")
                    if "repo" not in p.parts and "state" not in p.parts)
    store_point(lab, 666, tar_of(*HOSTILE[case]))
    r = lab.run("restore", "ct666", "--to", "node2")
    assert r.code == 9, r
    assert "ct666" in r.err
    after = sorted(p.relative_to(lab.root.parent) for p in lab.root.parent.rglob("*")
                   if "repo" not in p.parts and "state" not in p.parts)
    assert after == before  # nothing new anywhere: no evil file, no guest, no staging left
    assert (lab.root / "outside-file").read_text() == "precious"


def test_16_stream_that_is_not_an_archive_fails_cleanly(backed_up):
    lab = backed_up
    store_point(lab, 667, b"this is not a tar archive at all" * 100)
    r = lab.run("restore", "ct667", "--to", "node2")
    assert r.code == 16, r
    assert "ct667" in r.err and not (lab.node("node2") / "ct667").exists()
    assert [p.name for p in lab.node("node2").iterdir()] == []
