"""Pack files and index objects: formats, tampering, rebuilding the index from the packs,
and the repair that salvages a damaged pack's intact chunks."""

from __future__ import annotations

import os
import threading
import time

import pytest

from vzbackup.errors import IntegrityError, NoSpace
from vzbackup.repo.codec import Codec
from vzbackup.repo.format import pack_key, read_generation
from vzbackup.repo.index import ChunkIndex, decode_index, encode_index
from vzbackup.repo.keys import RepoKeys
from vzbackup.repo.packer import PackSink
from vzbackup.repo.packs import FOOTER, OpenPack, PackEntry, check_pack, read_trailer, tail_id
from vzbackup.repo.repository import open_chunk_repository

from .conftest import backup, make_repo, pack_files, restore, stored_chunks

CODECS = {"plain": Codec(level=1), "sealed": Codec(level=1, keys=RepoKeys.generate())}


def a_pack(codec: Codec, chunks: list[bytes]) -> tuple[bytes, bytes, list[PackEntry]]:
    pack = OpenPack(1 << 20)
    for data in chunks:
        chunk_id = codec.chunk_id(data)
        pack.add(chunk_id, codec.encode_parts(chunk_id, memoryview(data)), len(data))
    entries = pack.entries
    pack_id, view = pack.seal(codec)
    blob = bytes(view)
    pack.reset()
    return pack_id, blob, entries


@pytest.mark.parametrize("kind", sorted(CODECS))
def test_pack_trailer_round_trip(kind):
    codec = CODECS[kind]
    chunks = [os.urandom(5000), b"text " * 2000, b"", bytes(10_000)]
    pack_id, blob, entries = a_pack(codec, chunks)
    assert check_pack(codec, pack_id, blob, "pack") == entries
    assert read_trailer(codec, blob, "pack") == entries
    for data, e in zip(chunks, entries):
        assert (e.chunk_id, e.size) == (codec.chunk_id(data), len(data))
        assert codec.decode_chunk(e.chunk_id, blob[e.offset:e.offset + e.length], e.size) == data
    if kind == "sealed":  # chunk ids stay hidden in an encrypted repository
        assert not any(e.chunk_id in blob for e in entries)


@pytest.mark.parametrize("kind", sorted(CODECS))
def test_pack_tampering_is_detected(kind):
    codec = CODECS[kind]
    pack_id, blob, entries = a_pack(codec, [os.urandom(3000), os.urandom(3000)])
    trailer_at = len(blob) - FOOTER.size - FOOTER.unpack_from(blob, len(blob) - FOOTER.size)[0]
    for pos in (trailer_at + 1, len(blob) - 6):  # the tail: its hash is the pack id
        bad = bytearray(blob)
        bad[pos] ^= 0x01
        with pytest.raises(IntegrityError, match="does not match its id"):
            check_pack(codec, pack_id, bytes(bad), "pack")
    for pos in (0, 3, entries[1].offset + 5, trailer_at - 1):  # a blob: its chunk id
        bad = bytearray(blob)
        bad[pos] ^= 0x01
        with pytest.raises(IntegrityError, match="^pack: chunk [0-9a-f]{64}: "):
            check_pack(codec, pack_id, bytes(bad), "pack")
    for pos in (trailer_at, trailer_at + 20, len(blob) - 1, len(blob) - 5):
        bad = bytearray(blob)
        bad[pos] ^= 0x01
        if kind == "plain" and trailer_at + 20 <= pos < len(blob) - FOOTER.size:
            continue  # a raw trailer's entries: caught by the pack id, not by the trailer
        with pytest.raises(IntegrityError):
            read_trailer(codec, bytes(bad), "pack")
    with pytest.raises(IntegrityError, match="too short"):
        read_trailer(codec, blob[:3], "pack")


def test_a_pack_id_names_the_trailer_and_a_pack_must_be_tiled_by_its_chunks():
    codec = Codec(level=1)
    chunks = [os.urandom(3000), b"text " * 900]
    pack_id, blob, entries = a_pack(codec, chunks)
    trailer_at = len(blob) - FOOTER.size - FOOTER.unpack_from(blob, len(blob) - FOOTER.size)[0]
    assert pack_id == tail_id(blob[trailer_at:])
    # the same tail over other bytes: same id, but not what a writer sealed
    with pytest.raises(IntegrityError, match="bad header"):
        check_pack(codec, pack_id, b"\x00" * 7 + blob, "pack")
    first, second = entries
    stored = [blob[e.offset:e.offset + e.length] for e in entries]
    for junk, patch, why in ((b"", 1, "gap or an overlap at 0"),
                             (b"junk", 0, "4 bytes before the trailer belong to no chunk")):
        pack = OpenPack(1 << 20)
        pack.add(first.chunk_id, [stored[0]], first.size)
        pack.add(second.chunk_id, [stored[1], junk], second.size)
        pack.entries[0] = first._replace(offset=patch)
        pack.entries[1] = second
        other_id, view = pack.seal(codec)
        with pytest.raises(IntegrityError, match=why):
            check_pack(codec, other_id, bytes(view), "pack")


def test_a_trailer_naming_bytes_past_the_blobs_is_refused():
    codec = Codec(level=1)
    pack = OpenPack(1 << 20)
    pack.add(b"\x01" * 32, [b"VZ\x01\x00abc"], 3)
    pack.entries[0] = pack.entries[0]._replace(length=10_000)
    _, view = pack.seal(codec)
    with pytest.raises(IntegrityError, match="past the blobs"):
        read_trailer(codec, bytes(view), "pack")


@pytest.mark.parametrize("kind", sorted(CODECS))
def test_index_object_round_trip_and_tampering(kind):
    codec = CODECS[kind]
    packs = {os.urandom(32): [PackEntry(os.urandom(32), i * 100, 100, 4096) for i in range(5)],
             os.urandom(32): [PackEntry(os.urandom(32), 0, 7, 7)]}
    index_id, blob = encode_index(codec, packs)
    assert decode_index(codec, index_id, blob) == packs
    bad = bytearray(blob)
    bad[len(bad) // 2] ^= 0x01
    with pytest.raises(IntegrityError, match=index_id[:12]):
        decode_index(codec, index_id, bytes(bad))
    other_id, _ = encode_index(codec, {b"\x00" * 32: []})
    with pytest.raises(IntegrityError):
        decode_index(codec, other_id, blob)


def test_chunk_index_keeps_every_copy():
    index = ChunkIndex()
    one, two = os.urandom(32), os.urandom(32)
    chunk = os.urandom(32)
    index.add_pack(one, [PackEntry(chunk, 2**31 + 5, 77, 100)])
    index.add_pack(two, [PackEntry(chunk, 0, 70, 100)])
    index.add_pack(two, [PackEntry(chunk, 9, 9, 9)])  # a pack named twice: first one wins
    assert index.locate(chunk) == (one, 2**31 + 5, 77)
    assert index.locations(chunk) == [(one, 2**31 + 5, 77), (two, 0, 70)]
    assert index.has_pack(two) and len(index) == 1 and index.locate(os.urandom(32)) is None


def test_the_index_is_rebuilt_from_the_packs_alone(tmp_path):
    repo = make_repo(tmp_path, encryption="aes-256-gcm", passphrase="pw")
    repo.pack_size = 40_000
    data = os.urandom(200_000) + b"some text " * 20_000
    manifest, _ = backup(repo, data)
    packs = pack_files(repo)
    sound = {e.chunk_id for p, e in stored_chunks(repo) if p != packs[0]}
    for info in list(repo.backend.list("index/")):
        repo.backend.delete(info.key)  # every index object lost
    packs[0].write_bytes(packs[0].read_bytes()[:-1])  # and one pack torn
    lost = open_chunk_repository("t", repo.backend, passphrase="pw", cache_dir=None)
    assert not lost.verify_point(manifest.id, full=False).ok
    stats = lost.index_unnamed_packs()
    assert (stats.packs, stats.rejected) == (len(packs) - 1, 1)
    assert stats.chunks == len(sound)
    assert lost.index_unnamed_packs().packs == 0  # idempotent
    again = open_chunk_repository("t", repo.backend, passphrase="pw", cache_dir=None)
    assert {c.id for c in manifest.chunks if c.id in again.chunk_index()} == sound
    _, stats2 = backup(again, data)  # the torn pack's chunks are stored anew
    assert stats2.new_chunks == len({c.id for c in manifest.chunks} - sound)
    assert restore(again, manifest.id) == data


@pytest.mark.parametrize("encryption", ["none", "aes-256-gcm"])
def test_repair_salvages_the_intact_chunks_of_a_damaged_pack(tmp_path, encryption):
    repo = make_repo(tmp_path, encryption=encryption, passphrase="pw")
    repo.pack_size = 60_000
    data = os.urandom(300_000)
    manifest, _ = backup(repo, data)
    path, victim = stored_chunks(repo)[1]
    neighbours = [e.chunk_id for p, e in stored_chunks(repo) if p == path and e != victim]
    assert neighbours
    blob = bytearray(path.read_bytes())
    blob[victim.offset + victim.length // 2] ^= 0x01
    path.write_bytes(bytes(blob))
    report = repo.verify_point(manifest.id)
    assert report.damaged_chunks == (victim.chunk_id,)
    generation = read_generation(repo.backend)

    assert repo.quarantine_chunks(report.damaged_chunks) == 1
    assert not path.exists() and (tmp_path / "repo" / "quarantine" / path.name).exists()
    assert read_generation(repo.backend) != generation
    fresh = open_chunk_repository("t", repo.backend, passphrase="pw", cache_dir=None)
    for index in (repo.chunk_index(), fresh.chunk_index()):
        assert victim.chunk_id not in index
        assert all(index.locate(c).pack_id.hex() != path.name for c in neighbours)
    after = fresh.verify_point(manifest.id)
    assert len(after.problems) == 1 and victim.chunk_id.hex() in after.problems[0]
    assert "names no pack" in after.problems[0] and after.damaged_chunks == ()

    healed, stats = backup(fresh, data)  # the data is still there: stored anew
    assert stats.new_chunks == 1
    assert fresh.verify_point(manifest.id).ok and fresh.verify_point(healed.id).ok
    assert restore(repo, manifest.id) == data
    assert repo.quarantine_chunks((victim.chunk_id,)) == 0  # nothing damaged any more


class SlowBackend:
    """A local backend whose pack puts take a while and may fail: to watch background puts."""

    def __init__(self, inner, fail_at: int | None = None):
        self.inner, self.fail_at = inner, fail_at
        self.url = inner.url
        self.puts = self.busy = self.most_busy = 0
        self.lock = threading.Lock()

    def put(self, key, data):
        if not key.startswith("packs/"):
            return self.inner.put(key, data)
        with self.lock:
            self.puts += 1
            self.busy += 1
            self.most_busy = max(self.most_busy, self.busy)
            number = self.puts
        try:
            time.sleep(0.02)
            if number == self.fail_at:
                raise NoSpace(f"{self.url}: no space left on device (write {key})")
            self.inner.put(key, data)
        finally:
            with self.lock:
                self.busy -= 1

    def put_parts(self, key, parts):
        self.put(key, b"".join(parts))

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_background_puts_are_bounded_and_all_indexed(tmp_path):
    repo = make_repo(tmp_path)
    slow = SlowBackend(repo.backend)
    sink = PackSink(slow, repo.codec, repo.chunk_index(), pack_size=20_000, slots=1, background=2)
    chunks = [os.urandom(3000) for _ in range(60)]
    with sink.slot() as pack:
        for data in chunks:
            chunk_id = repo.codec.chunk_id(data)
            sink.append(pack, chunk_id, repo.codec.encode_parts(chunk_id, data), len(data))
    sink.seal_all()
    sink.checkpoint()
    sink.close()
    assert slow.puts == sink.packs_put >= 8 and slow.most_busy <= 2
    fresh = open_chunk_repository("t", repo.backend, passphrase=None, cache_dir=None)
    index = fresh.chunk_index()
    for data in chunks:
        where = index.locate(repo.codec.chunk_id(data))
        stored = repo.backend.get(pack_key(where.pack_id), where.offset, where.length)
        assert repo.codec.decode_chunk(repo.codec.chunk_id(data), stored, len(data)) == data


def test_a_failed_background_put_fails_the_writer_and_names_nothing(tmp_path):
    repo = make_repo(tmp_path)
    slow = SlowBackend(repo.backend, fail_at=2)
    sink = PackSink(slow, repo.codec, repo.chunk_index(), pack_size=20_000, slots=1, background=1)
    with pytest.raises(NoSpace, match="no space left"):
        with sink.slot() as pack:
            for _ in range(60):
                data = os.urandom(3000)
                chunk_id = repo.codec.chunk_id(data)
                sink.append(pack, chunk_id, repo.codec.encode_parts(chunk_id, data), len(data))
            sink.seal_all()
    sink.close()
    with pytest.raises(NoSpace):
        sink.drain()
    assert sink.packs_put == 1 and not list(repo.backend.list("index/"))
