"""Notes: records for 'catalog rebuild' kept in the repository, sealed like manifests."""

from __future__ import annotations

from pathlib import Path

import pytest

from vzbackup.repo.repository import open_chunk_repository

from .conftest import make_repo


def note(key: str, time: str, **extra):
    return {"kind": "clone", "key": key, "time": time, **extra}


def test_the_latest_note_per_key_wins_and_gone_ones_drop_out(tmp_path):
    repo = make_repo(tmp_path)
    repo.put_note(note("ct201", "2026-01-01T00:00:00", v=1))
    repo.put_note(note("ct201", "2026-01-02T00:00:00", v=2))
    repo.put_note(note("ct202", "2026-01-01T00:00:00", v=1))
    repo.put_note(note("ct202", "2026-01-03T00:00:00", gone=True))
    assert repo.notes() == {("clone", "ct201"): note("ct201", "2026-01-02T00:00:00", v=2)}


def test_notes_are_sealed_in_an_encrypted_repository(tmp_path):
    repo = make_repo(tmp_path, encryption="aes-256-gcm", passphrase="pw")
    repo.put_note(note("ct201", "2026-01-01T00:00:00", hostname="secret-host"))
    raw = b"".join(p.read_bytes() for p in (Path(repo.backend.root) / "notes").iterdir())
    assert b"secret-host" not in raw and b"ct201" not in raw
    fresh = open_chunk_repository("t", repo.backend, passphrase="pw", cache_dir=None)
    assert fresh.notes()[("clone", "ct201")]["hostname"] == "secret-host"


def test_a_damaged_note_is_left_out_and_the_others_read(tmp_path, caplog):
    repo = make_repo(tmp_path)
    repo.put_note(note("ct201", "2026-01-01T00:00:00"))
    victim_id = repo.put_note(note("ct202", "2026-01-01T00:00:00"))
    victim = Path(repo.backend.root) / "notes" / victim_id
    victim.write_bytes(victim.read_bytes()[:-1] + b"!")
    assert set(repo.notes()) == {("clone", "ct201")}
    assert "left out" in caplog.text


def test_a_note_needs_kind_key_and_time(tmp_path):
    with pytest.raises(ValueError, match="'time'"):
        make_repo(tmp_path).put_note({"kind": "clone", "key": "ct201"})
