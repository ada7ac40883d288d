"""The manifest: what makes a set of chunks a restore point.

It is written last and atomically; its id is the SHA-256 of its canonical bytes, so a
manifest names itself and cannot be altered without changing its id.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from functools import cached_property
from datetime import datetime, timezone
from typing import Any

from .guests import GuestRef, guest_ref

MANIFEST_VERSION = 1
SHORT_ID = 12  # hex digits shown to users


@dataclass(frozen=True)
class ChunkRef:
    id: bytes  # 32 bytes: SHA-256 (or HMAC-SHA-256) of the plaintext
    size: int  # plaintext length


@dataclass(frozen=True)
class Manifest:
    guest: GuestRef
    guest_name: str
    platform: str
    source_node: str
    created: datetime  # UTC, timezone-aware
    size: int  # bytes of the whole dump stream
    sha256: str  # hex SHA-256 of the whole dump stream
    chunks: tuple[ChunkRef, ...]
    guest_config: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    parent: str | None = None  # previous point of the same guest in this repository
    stats: dict[str, int] = field(default_factory=dict)  # new_chunks, new_bytes_stored...
    tool_version: str = ""
    version: int = MANIFEST_VERSION

    def to_bytes(self) -> bytes:
        return self._canonical

    @cached_property
    def _canonical(self) -> bytes:
        """The canonical bytes, made once (tens of ms for a large guest's chunk list)."""
        doc = {
            "version": self.version,
            "guest": str(self.guest),
            "guest_name": self.guest_name,
            "platform": self.platform,
            "source_node": self.source_node,
            "created": self.created.astimezone(timezone.utc).isoformat(),
            "size": self.size,
            "sha256": self.sha256,
            "guest_config": self.guest_config,
            "labels": self.labels,
            "parent": self.parent,
            "stats": self.stats,
            "tool_version": self.tool_version,
            "chunks": [[c.id.hex(), c.size] for c in self.chunks],
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @property
    def id(self) -> str:
        return manifest_id(self.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> "Manifest":
        doc = json.loads(data)
        if doc.get("version") != MANIFEST_VERSION:
            raise ValueError(f"manifest version {doc.get('version')!r} is not supported")
        return cls(
            guest=guest_ref(doc["guest"]),
            guest_name=doc["guest_name"],
            platform=doc["platform"],
            source_node=doc["source_node"],
            created=datetime.fromisoformat(doc["created"]),
            size=int(doc["size"]),
            sha256=doc["sha256"],
            chunks=tuple(ChunkRef(bytes.fromhex(h), int(n)) for h, n in doc["chunks"]),
            guest_config=doc.get("guest_config") or {},
            labels=doc.get("labels") or {},
            parent=doc.get("parent"),
            stats=doc.get("stats") or {},
            tool_version=doc.get("tool_version", ""),
        )

    def with_stats(self, **stats: int) -> "Manifest":
        return replace(self, stats={**self.stats, **stats})


def manifest_id(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def short_id(point_id: str) -> str:
    return point_id[:SHORT_ID]
