"""A chunk repository on an S3 bucket (moto): the same data path as on a directory."""

from __future__ import annotations

import io
import os

import pytest

from tests.lab.s3 import reset_moto
from vzbackup.errors import IntegrityError, RepositoryError
from vzbackup.repo.backends import open_backend
from vzbackup.repo.repository import init_chunk_repository, open_chunk_repository

from .conftest import FAST_KDF, SMALL_CHUNKS, draft


@pytest.fixture
def s3(moto_endpoint):
    reset_moto(moto_endpoint)
    backend = open_backend("s3://vzrepo/main", endpoint_url=moto_endpoint, access_key="AKIATEST",
                           secret_key="very-secret-key-123")
    backend.create_bucket()
    return backend


def test_encrypted_roundtrip_dedup_and_damage_on_s3(s3, tmp_path):
    init_chunk_repository(s3, encryption="aes-256-gcm", passphrase="pass phrase",
                          chunker=SMALL_CHUNKS, kdf_cost=FAST_KDF)
    repo = open_chunk_repository("offsite", s3, passphrase="pass phrase", cache_dir=tmp_path / "c")
    data = os.urandom(300_000) + bytes(200_000) + b"text " * 40_000
    writer = repo.new_point(draft())
    writer.write(io.BytesIO(data))
    point = writer.commit().id
    assert repo.open_point(point).read() == data
    again = repo.new_point(draft())
    again.write(io.BytesIO(data))
    again.commit()
    assert again.stats.new_chunks == 0

    assert not any(True for _ in s3.list("chunks/"))
    victim = next(i.key for i in s3.list("packs/"))
    blob = bytearray(s3.get(victim))
    blob[len(blob) // 3] ^= 1  # in a chunk's stored form
    s3.put(victim, bytes(blob))
    assert not repo.verify_point(point).ok
    with pytest.raises(IntegrityError, match=point[:12]):
        repo.open_point(point).read()


def test_secrets_stay_out_of_urls_reprs_and_errors(s3, moto_endpoint):
    assert "very-secret" not in s3.url + repr(s3) + repr(s3._settings)
    missing = open_backend("s3://no-such-bucket/x", endpoint_url=moto_endpoint,
                           access_key="AKIATEST", secret_key="very-secret-key-123")
    with pytest.raises(RepositoryError) as e:
        missing.put("config", b"x")
    assert "no-such-bucket does not exist" in str(e.value)
    assert "very-secret" not in str(e.value) + str(e.value.hint)


def test_unreachable_endpoint_is_a_clear_error():
    dead = open_backend("s3://vzrepo/x", endpoint_url="http://127.0.0.1:9", access_key="a",
                        secret_key="b")
    with pytest.raises(RepositoryError, match="the endpoint does not answer"):
        dead.stat("config")


def test_wrong_credentials_are_a_clear_error_without_the_secret(seaweed_endpoint):
    from tests.lab.s3 import SEAWEED_ACCESS
    wrong = open_backend("s3://vzwrongcreds/x", endpoint_url=seaweed_endpoint,
                         access_key=SEAWEED_ACCESS, secret_key="not-the-right-secret-42")
    with pytest.raises(RepositoryError) as e:
        wrong.create_bucket()
    text = str(e.value) + str(e.value.hint)
    assert "refused the credentials" in text and "not-the-right-secret-42" not in text
