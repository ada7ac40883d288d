"""Lost index objects: 'repo reindex' names the packs again, checked against their ids."""

from __future__ import annotations

import shutil


def test_reindex_brings_back_points_whose_index_was_lost(backed_up):
    lab = backed_up
    repo = lab.root / "repo"
    shutil.rmtree(repo / "index")
    shutil.rmtree(lab.root / "state" / "cache")
    assert lab.run("verify", "--all").code == 7  # the chunks cannot be found
    r = lab.ok("repo", "reindex")
    assert "0 damaged pack(s) left out" in r.err and "chunk(s) indexed again" in r.err
    assert lab.ok("verify", "--all", "--json").json()["status"] == "success"
    again = lab.ok("repo", "reindex")
    assert "0 pack(s)" in again.err  # nothing left to name


def test_a_torn_pack_is_left_out_and_said(backed_up):
    lab = backed_up
    repo = lab.root / "repo"
    shutil.rmtree(repo / "index")
    pack = max((p for p in (repo / "packs").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    pack.write_bytes(pack.read_bytes()[: pack.stat().st_size // 2])
    r = lab.run("repo", "reindex")
    assert r.code == 7 and "1 damaged pack(s) left out" in r.err
