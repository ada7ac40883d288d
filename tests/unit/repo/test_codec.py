from __future__ import annotations

import hashlib
import os

import pytest

from vzbackup.errors import IntegrityError
from vzbackup.repo.codec import Codec
from vzbackup.repo.keys import RepoKeys

KEYS = RepoKeys.generate()


@pytest.fixture(params=["plain", "encrypted"])
def codec(request):
    return Codec(level=3, keys=KEYS if request.param == "encrypted" else None)


@pytest.mark.parametrize("data", [b"", b"x", b"text " * 5000, os.urandom(70000)])
def test_roundtrip(codec, data):
    cid = codec.chunk_id(data)
    assert codec.decode_chunk(cid, codec.encode(cid, data), len(data)) == data


def test_chunk_ids():
    assert Codec().chunk_id(b"abc") == hashlib.sha256(b"abc").digest()
    keyed = Codec(keys=KEYS).chunk_id(b"abc")
    assert keyed != hashlib.sha256(b"abc").digest() and len(keyed) == 32
    assert Codec(keys=RepoKeys.generate()).chunk_id(b"abc") != keyed


def test_header_is_self_describing():
    data = b"compressible " * 1000
    assert Codec().encode(b"i", data)[:4] == b"VZ\x01\x01"
    assert Codec().encode(b"i", os.urandom(1000))[:4] == b"VZ\x01\x00"  # stored raw
    assert Codec(keys=KEYS).encode(b"i", data)[:4] == b"VZ\x01\x03"


def test_every_flipped_byte_is_caught_and_names_the_chunk(codec):
    data = os.urandom(300) + b"abc" * 300
    cid = codec.chunk_id(data)
    blob = codec.encode(cid, data)
    for pos in range(len(blob)):
        bad = bytearray(blob)
        bad[pos] ^= 0x40
        with pytest.raises(IntegrityError, match=cid.hex()):
            codec.decode_chunk(cid, bytes(bad), len(data))


def test_wrong_size_or_id_is_caught(codec):
    data = b"hello world" * 10
    cid = codec.chunk_id(data)
    blob = codec.encode(cid, data)
    with pytest.raises(IntegrityError, match="bytes instead of"):
        codec.decode_chunk(cid, blob, len(data) + 1)
    other = codec.chunk_id(b"other")
    with pytest.raises(IntegrityError, match=other.hex()):
        codec.decode_chunk(other, blob, len(data))


def test_wrong_key_fails_authentication():
    data = b"secret data" * 100
    sealed = Codec(keys=KEYS)
    cid = sealed.chunk_id(data)
    blob = sealed.encode(cid, data)
    with pytest.raises(IntegrityError, match="authentication failed"):
        Codec(keys=RepoKeys(os.urandom(32), KEYS.id_key)).decode_chunk(cid, blob, len(data))
    with pytest.raises(IntegrityError, match="unexpected flags"):
        Codec().decode_chunk(cid, blob, len(data))  # an encrypted object in a plain repo


def test_nonces_differ():
    codec = Codec(keys=KEYS)
    assert codec.encode(b"i", b"same") != codec.encode(b"i", b"same")


def test_zstd_contexts_are_reused_per_thread():
    codec = Codec()
    codec.encode(b"i", b"a" * 100)
    first = codec._local.pair
    codec.encode(b"i", b"b" * 100)
    assert codec._local.pair is first
