"""A local cache of the chunk ids a repository is known to hold.

Two files under the cache directory: ``state.json`` (repository id and the generation the
cache was built for) and ``chunks.log``, an append-only file of 36-byte records (the id and
its CRC-32). A torn or garbled record from a crash is skipped. Ids are appended only after
the backend has flushed them, so the cache never claims a chunk that a crash could lose.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import zlib
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
LOG_FILE = "chunks.log"
ID_SIZE = 32
RECORD_SIZE = ID_SIZE + 4


def _record(chunk_id: bytes) -> bytes:
    return chunk_id + zlib.crc32(chunk_id).to_bytes(4, "big")


class ChunkCache:
    """Ids known to be durable in one repository at one generation. Thread-safe."""

    def __init__(self, folder: Path | None, repo_id: str, generation: str):
        self.folder = folder
        self.repo_id = repo_id
        self.generation = generation
        self._known: set[bytes] = set()
        self._lock = threading.Lock()
        if folder is not None:
            self._load(folder)

    def __contains__(self, chunk_id: bytes) -> bool:
        return chunk_id in self._known

    def __len__(self) -> int:
        return len(self._known)

    def _load(self, folder: Path) -> None:
        expected = {"repo_id": self.repo_id, "generation": self.generation}
        try:
            if json.loads((folder / STATE_FILE).read_text()) == expected:
                self._known = _read_records(folder / LOG_FILE)
                log.debug("chunk cache %s: %d ids", folder, len(self._known))
                return
        except (OSError, ValueError):
            pass
        self._reset(folder, expected)

    def _reset(self, folder: Path, state: dict[str, str]) -> None:
        """Start an empty cache for this repository and generation."""
        log.info("chunk cache %s is missing or stale; it refills as chunks are checked", folder)
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            (folder / LOG_FILE).unlink(missing_ok=True)
            tmp = folder / f".{STATE_FILE}.{os.getpid()}.tmp"
            tmp.write_text(json.dumps(state))
            os.replace(tmp, folder / STATE_FILE)
        except OSError as exc:
            log.warning("chunk cache %s cannot be written (%s); working without it", folder, exc)
            self.folder = None

    def add(self, chunk_ids: Iterable[bytes]) -> None:
        """Record ids that are durable in the repository (after ``Backend.flush``)."""
        new = [c for c in chunk_ids if c not in self._known]
        if not new:
            return
        with self._lock:
            self._known.update(new)
            if self.folder is not None:
                self._append(new)

    def _state_is_ours(self) -> bool:
        """False once another process has reset the cache for a newer generation."""
        try:
            state = json.loads((self.folder / STATE_FILE).read_text())  # type: ignore[operator]
        except (OSError, ValueError):
            return False
        return state == {"repo_id": self.repo_id, "generation": self.generation}

    def _append(self, chunk_ids: list[bytes]) -> None:
        if not self._state_is_ours():
            log.info("chunk cache %s belongs to another generation now; not appending",
                     self.folder)
            return
        data = b"".join(_record(c) for c in chunk_ids)
        try:
            fd = os.open(self.folder / LOG_FILE,  # type: ignore[operator]
                         os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        except OSError as exc:
            log.warning("chunk cache %s cannot be appended (%s)", self.folder, exc)


def _read_records(path: Path) -> set[bytes]:
    """The ids of every intact record; a torn tail is cut off so that appends stay aligned."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return set()
    if len(data) % RECORD_SIZE:
        os.truncate(path, len(data) - len(data) % RECORD_SIZE)
    ids = set()
    for start in range(0, len(data) - RECORD_SIZE + 1, RECORD_SIZE):
        record = data[start:start + RECORD_SIZE]
        if record[ID_SIZE:] == zlib.crc32(record[:ID_SIZE]).to_bytes(4, "big"):
            ids.add(record[:ID_SIZE])
    return ids
