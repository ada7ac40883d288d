from __future__ import annotations

import io
import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vzbackup.errors import EnvironmentBroken
from vzbackup.repo import chunker as chunker_module
from vzbackup.repo.chunker import Chunker, ChunkerParams

TINY = ChunkerParams(min_size=64, avg_size=256, max_size=1024)


class TrickleStream(io.RawIOBase):
    """A stream that returns short reads of random sizes, like a pipe."""

    def __init__(self, data: bytes, seed: int):
        self._data, self._pos, self._rnd = data, 0, random.Random(seed)

    def readable(self):
        return True

    def readinto(self, buf):
        n = min(len(buf), self._rnd.randint(1, 3000), len(self._data) - self._pos)
        buf[:n] = self._data[self._pos:self._pos + n]
        self._pos += n
        return n


def whole(chunker, data):
    return [bytes(c) for c in chunker.cut_bytes(data)]


def streamed(chunker, stream):
    return [bytes(c) for block in chunker.cut_stream(stream) for c in block]


@settings(max_examples=150, deadline=None)
@given(data=st.one_of(st.binary(max_size=12000), st.integers(0, 12000).map(os.urandom)),
       block=st.integers(1024, 5000), seed=st.integers(0, 2**32), gear_seed=st.sampled_from([0, 12345]))
def test_stream_cuts_equal_whole_cuts(data, block, seed, gear_seed):
    chunker = Chunker(TINY, block_size=block, seed=gear_seed)
    expected = whole(chunker, data)
    assert streamed(chunker, io.BytesIO(data)) == expected
    assert streamed(chunker, TrickleStream(data, seed)) == expected
    assert b"".join(expected) == data


def test_sizes_within_bounds_and_deterministic():
    data = os.urandom(3 * 1024 * 1024)
    chunker = Chunker(ChunkerParams(), block_size=1024 * 1024)
    chunks = streamed(chunker, io.BytesIO(data))
    assert all(16 * 1024 <= len(c) <= 256 * 1024 for c in chunks[:-1])
    assert len(chunks[-1]) <= 256 * 1024
    assert 8 < len(chunks) < 3 * 1024 * 1024 / (16 * 1024)
    assert chunks == streamed(Chunker(ChunkerParams()), io.BytesIO(data))


def test_stream_without_readinto():
    class ReadOnly:
        def __init__(self, data):
            self._f = io.BytesIO(data)

        def read(self, n):
            return self._f.read(min(n, 777))

    data = os.urandom(50_000)
    chunker = Chunker(TINY, block_size=2048)
    assert streamed(chunker, ReadOnly(data)) == whole(chunker, data)


def test_empty_stream_has_no_chunks():
    assert streamed(Chunker(TINY, block_size=2048), io.BytesIO(b"")) == []


def test_local_edit_changes_few_chunks():
    data = bytearray(os.urandom(2 * 1024 * 1024))
    chunker = Chunker(ChunkerParams())
    before = set(whole(chunker, bytes(data)))
    data[1_000_000:1_000_100] = os.urandom(100)
    after = whole(chunker, bytes(data))
    assert sum(c not in before for c in after) <= 3


def test_bad_parameters():
    with pytest.raises(ValueError):
        ChunkerParams(min_size=100, avg_size=50, max_size=200)
    with pytest.raises(ValueError):
        Chunker(ChunkerParams(), block_size=1024)


def test_pure_python_fallback_is_refused(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pyfastcdc.cy", None)  # import fails: only py is left
    with pytest.raises(EnvironmentBroken, match="300 times slower"):
        chunker_module.Chunker(TINY)
