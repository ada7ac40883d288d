"""A VMA-like stream (pve.md 4.7, after pve-qemu ``vma_spec.txt``), simplified.

Kept from the spec: big-endian; header magic ``VMA\\0``, version 1, a random 16-byte UUID,
ctime, an MD5 of the header; config blobs named ``qemu-server.conf`` (and ``.fw``); one
device per disk named ``drive-<key>``; extents with magic ``VMAE`` and the same UUID, each
with an MD5, holding up to 59 clusters of 64 KiB where only non-zero 4 KiB blocks are stored.

Simplified: the header's blob and device tables are one length-prefixed JSON document
instead of the spec's fixed 256-entry tables; an extent header is 40 bytes plus 11 per
cluster instead of 512; and an extent with no cluster ends the stream (the real format has no
end marker; ``vma extract`` notices missing clusters). Damage (bad magic, UUID, MD5, a cut
stream) is rejected as ``vma extract`` would, with a non-zero exit.
"""

from __future__ import annotations

import hashlib
import json
import struct
import time
import uuid
from collections.abc import Iterator
from typing import BinaryIO

MAGIC, EXTENT_MAGIC = b"VMA\0", b"VMAE"
CLUSTER, BLOCK, PER_EXTENT = 65536, 4096, 59
_HEAD = struct.Struct(">4sI16sQ16sI")  # magic, version, uuid, ctime, md5, json length
_EXT = struct.Struct(">4s16s16sH")  # magic, uuid, md5, cluster count
_CL = struct.Struct(">BQH")  # dev id, cluster number, block mask


class VmaError(Exception):
    pass


def write_vma(out: BinaryIO, configs: dict[str, bytes], devices: list[tuple[str, BinaryIO, int]]
              ) -> int:
    """Write a stream; ``devices`` are (name, file, size). Returns the bytes of data read."""
    uid = uuid.uuid4().bytes
    meta = json.dumps({"configs": {k: v.decode("utf-8") for k, v in configs.items()},
                       "devices": [{"name": n, "size": s} for n, _, s in devices]},
                      sort_keys=True).encode()
    head = _HEAD.pack(MAGIC, 1, uid, int(time.time()), b"\0" * 16, len(meta)) + meta
    md5 = hashlib.md5(head).digest()
    out.write(head[:32] + md5 + head[48:])
    total = 0
    batch: list[tuple[int, int, int, bytes]] = []
    for dev_id, (_name, f, size) in enumerate(devices, start=1):
        for n in range((size + CLUSTER - 1) // CLUSTER):
            data = f.read(CLUSTER).ljust(min(CLUSTER, size - n * CLUSTER), b"\0")
            total += len(data)
            data = data.ljust(CLUSTER, b"\0")
            mask, kept = 0, []
            for b in range(CLUSTER // BLOCK):
                block = data[b * BLOCK:(b + 1) * BLOCK]
                if block.count(0) != BLOCK:
                    mask |= 1 << b
                    kept.append(block)
            batch.append((dev_id, n, mask, b"".join(kept)))
            if len(batch) == PER_EXTENT:
                _extent(out, uid, batch)
                batch = []
    if batch:
        _extent(out, uid, batch)
    _extent(out, uid, [])
    return total


def _extent(out: BinaryIO, uid: bytes, clusters: list[tuple[int, int, int, bytes]]) -> None:
    body = b"".join(_CL.pack(d, n, m) for d, n, m, _ in clusters)
    body += b"".join(data for *_, data in clusters)
    head = _EXT.pack(EXTENT_MAGIC, uid, b"\0" * 16, len(clusters))
    md5 = hashlib.md5(head + body).digest()
    out.write(_EXT.pack(EXTENT_MAGIC, uid, md5, len(clusters)) + body)


def read_header(inp: BinaryIO) -> tuple[bytes, dict]:
    head = _exact(inp, _HEAD.size)
    magic, ver, uid, _ctime, md5, size = _HEAD.unpack(head)
    if magic != MAGIC:
        raise VmaError("not a vma file - wrong magic")
    if ver != 1:
        raise VmaError(f"wrong vma version {ver}")
    meta = _exact(inp, size)
    if hashlib.md5(head[:32] + b"\0" * 16 + head[48:] + meta).digest() != md5:
        raise VmaError("wrong vma header checksum")
    return uid, json.loads(meta)


def read_extents(inp: BinaryIO, uid: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(dev id, cluster number, 64 KiB of data) until the end extent."""
    while True:
        head = _exact(inp, _EXT.size)
        magic, euid, md5, count = _EXT.unpack(head)
        if magic != EXTENT_MAGIC or euid != uid:
            raise VmaError("wrong extent magic or uuid")
        table = _exact(inp, _CL.size * count)
        entries = [_CL.unpack_from(table, i * _CL.size) for i in range(count)]
        blocks = sum(bin(m).count("1") for _, _, m in entries)
        data = _exact(inp, blocks * BLOCK)
        if hashlib.md5(_EXT.pack(magic, euid, b"\0" * 16, count) + table + data).digest() != md5:
            raise VmaError("wrong extent checksum")
        if count == 0:
            return
        pos = 0
        for dev, n, mask in entries:
            cluster = bytearray(CLUSTER)
            for b in range(CLUSTER // BLOCK):
                if mask & (1 << b):
                    cluster[b * BLOCK:(b + 1) * BLOCK] = data[pos:pos + BLOCK]
                    pos += BLOCK
            yield dev, n, bytes(cluster)


def _exact(inp: BinaryIO, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        got = inp.read(n - len(data))
        if not got:
            raise VmaError("detected short read - archive is incomplete")
        data += got
    return bytes(data)
