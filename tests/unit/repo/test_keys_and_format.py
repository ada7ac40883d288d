from __future__ import annotations

import json
import logging
import pickle

import pytest

from vzbackup.errors import KeyUnavailable, RepositoryError
from vzbackup.repo.backends import open_backend
from vzbackup.repo.format import CONFIG_KEY, init_repository, open_repository
from vzbackup.repo.keys import KEY_OBJECT, Passphrase, RepoKeys, open_keys, seal_keys
from vzbackup.repo.repository import open_chunk_repository

from .conftest import FAST_KDF, make_repo

SECRET = "correct horse battery staple"


def test_passphrase_from_file_and_env(tmp_path, monkeypatch):
    path = tmp_path / "pass"
    path.write_text(SECRET + "\n")
    assert Passphrase.from_file(path).reveal() == SECRET.encode()
    monkeypatch.setenv("VZBACKUP_TEST_PASS", SECRET)
    assert Passphrase.from_env("VZBACKUP_TEST_PASS").reveal() == SECRET.encode()


def test_passphrase_sources_fail_clearly(tmp_path):
    with pytest.raises(KeyUnavailable, match="NO_SUCH_VAR"):
        Passphrase.from_env("NO_SUCH_VAR")
    with pytest.raises(KeyUnavailable, match="cannot read the passphrase file"):
        Passphrase.from_file(tmp_path / "missing")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(KeyUnavailable, match="empty"):
        Passphrase.from_file(tmp_path / "empty")


def test_secrets_never_show(tmp_path, caplog):
    secret = Passphrase(SECRET)
    keys = RepoKeys.generate()
    for text in (repr(secret), str(secret), f"{secret}", repr(keys), str(keys)):
        assert SECRET not in text and keys.enc_key.hex() not in text and "redacted" in text
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    caplog.set_level(logging.DEBUG)
    repo = make_repo(tmp_path, encryption="aes-256-gcm", passphrase=SECRET)
    assert SECRET not in repr(repo) and SECRET not in repr(repo.codec)
    assert SECRET not in caplog.text


def test_wrong_passphrase(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    make_repo(tmp_path, encryption="aes-256-gcm", passphrase=SECRET)
    backend = open_backend((tmp_path / "repo").as_uri())
    with pytest.raises(KeyUnavailable, match="wrong passphrase") as info:
        open_chunk_repository("t", backend, passphrase="not " + SECRET, cache_dir=None)
    text = f"{info.value} {info.value!r} {info.value.hint} {info.getrepr()}"
    assert SECRET not in text and "not " + SECRET not in text
    assert SECRET not in caplog.text


def test_encrypted_repository_needs_a_passphrase(tmp_path):
    make_repo(tmp_path, encryption="aes-256-gcm", passphrase=SECRET)
    backend = open_backend((tmp_path / "repo").as_uri())
    with pytest.raises(KeyUnavailable, match="no passphrase"):
        open_chunk_repository("t", backend, passphrase=None, cache_dir=None)
    with pytest.raises(KeyUnavailable, match="needs a passphrase"):
        init_repository(open_backend((tmp_path / "other").as_uri()), encryption="aes-256-gcm")


def test_key_object_roundtrip_and_damage():
    keys = RepoKeys.generate()
    sealed = seal_keys(keys, Passphrase(SECRET), kdf_cost=FAST_KDF)
    assert open_keys(sealed, Passphrase(SECRET), "here") == keys
    assert SECRET.encode() not in sealed and keys.enc_key not in sealed
    with pytest.raises(RepositoryError, match="damaged"):
        open_keys(b"{not json", Passphrase(SECRET), "here")


def test_init_refuses_existing_repository(tmp_path):
    make_repo(tmp_path)
    with pytest.raises(RepositoryError, match="already exists"):
        make_repo(tmp_path)


def test_config_is_self_describing(tmp_path):
    repo = make_repo(tmp_path, encryption="aes-256-gcm", passphrase=SECRET)
    doc = json.loads(repo.backend.get(CONFIG_KEY))
    assert doc["format"] == "vzbackup-repository" and doc["version"] == 3
    assert doc["encryption"] == "aes-256-gcm" and doc["chunk_id"] == "hmac-sha256"
    assert doc["chunker"]["avg_size"] == 8192 and doc["compression"]["level"] == 3
    assert doc["id"] == repo.repo_id and len(repo.repo_id) == 32
    assert repo.backend.stat(KEY_OBJECT) is not None


def test_unknown_format_version_is_refused(tmp_path):
    repo = make_repo(tmp_path)
    doc = json.loads(repo.backend.get(CONFIG_KEY))
    doc["version"] = 99
    repo.backend.put(CONFIG_KEY, json.dumps(doc).encode())
    with pytest.raises(RepositoryError, match="format version 99 is not supported") as info:
        open_repository(repo.backend, None)
    assert "Upgrade vzbackup" in info.value.hint


@pytest.mark.parametrize("version", [1, 2])
def test_a_development_format_repository_must_be_re_created(tmp_path, version):
    # 1: one object per chunk; 2: packs named by the hash of all their bytes
    repo = make_repo(tmp_path)
    doc = json.loads(repo.backend.get(CONFIG_KEY))
    doc["version"] = version
    repo.backend.put(CONFIG_KEY, json.dumps(doc).encode())
    with pytest.raises(RepositoryError, match=f"development version of vzbackup \\(format "
                                              f"{version}, .*reads format 3") as info:
        open_repository(repo.backend, None)
    assert "repo init" in info.value.hint


def test_not_a_repository(tmp_path):
    with pytest.raises(RepositoryError, match="no vzbackup repository here"):
        open_chunk_repository("t", open_backend((tmp_path / "x").as_uri()), passphrase=None,
                              cache_dir=None)


def test_init_refuses_a_non_empty_location(tmp_path):
    backend = open_backend((tmp_path / "repo").as_uri())
    backend.put("home/user/file", b"precious")
    with pytest.raises(RepositoryError, match="not empty"):
        init_repository(backend)
    assert backend.get("home/user/file") == b"precious"
