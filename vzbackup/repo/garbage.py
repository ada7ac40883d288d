"""Garbage records: packs that garbage collection took out of the index, waiting out the
grace period before they are deleted (``gc.py``).

A record (``garbage/<id>``) lists the packs and their entries, as an index object does, with
the time they were condemned and the time after which they may be deleted. Its id is the
SHA-256 of its plaintext, and it is encoded by the codec like an index object (sealed in an
encrypted repository). Backups never deduplicate against the chunks a record lists, but
readers still find them there (``IndexCache.locate``): a point written by a backup that
started before the packs were condemned stays readable until GC takes its packs back.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass

from ..errors import IntegrityError
from .codec import Buffer, Codec
from .index import MAX_INDEX, PackEntries, decode_pack_list, encode_pack_list
from .packs import PackEntry

GARBAGE_HEAD = b"VZGB\x01"
TIMES = struct.Struct(">dd")  # condemned at, deletable after (seconds since the epoch)


@dataclass(frozen=True)
class GarbageRecord:
    record_id: str
    condemned_at: float
    deletable_after: float
    packs: dict[bytes, list[PackEntry]]


def encode_record(codec: Codec, condemned_at: float, deletable_after: float,
                  packs: PackEntries) -> tuple[str, bytes]:
    """The id and stored form of a record of ``packs``."""
    plain = GARBAGE_HEAD + TIMES.pack(condemned_at, deletable_after) + encode_pack_list(packs)
    record_id = hashlib.sha256(plain).hexdigest()
    return record_id, codec.encode(bytes.fromhex(record_id), plain)


def decode_record(codec: Codec, record_id: str, blob: Buffer) -> GarbageRecord:
    what = f"garbage record {record_id[:12]}"
    plain = codec.decode(bytes.fromhex(record_id), blob, what=what, max_size=MAX_INDEX)
    if not hmac.compare_digest(hashlib.sha256(plain).hexdigest(), record_id):
        raise IntegrityError(f"{what} does not match its id")
    head = len(GARBAGE_HEAD)
    if plain[:head] != GARBAGE_HEAD or len(plain) < head + TIMES.size:
        raise IntegrityError(f"{what}: unknown format")
    condemned_at, deletable_after = TIMES.unpack_from(plain, head)
    packs = decode_pack_list(memoryview(plain)[head + TIMES.size:], what)
    return GarbageRecord(record_id, condemned_at, deletable_after, packs)
