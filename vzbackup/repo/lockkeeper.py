"""Object Lock retention that follows what restore points still need.

An object's retention date is set when it is written, ``object_lock_days`` ahead. A pack
written on the first night is shared by every later night's point, so its retention would
run out while recent points still reference it. After each point is committed, the packs
it references (and the repository's ``config`` and key, without which nothing can be read)
are checked: one with less than two thirds of ``object_lock_days`` left is pushed to
``object_lock_days`` ahead. Every point younger than ``object_lock_days / 3`` thus has all
it needs retained for at least two thirds of ``object_lock_days``, whatever its age.

The dates set are remembered in the cache folder (``retention.json``), and the backend
remembers those it set in this process, so a night costs requests only for the packs whose
date is due; a pack never seen is asked once (HEAD). Index objects are not kept: a lost one
is rebuilt from the packs (``vzbackup repo reindex``).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable
from pathlib import Path

from ..errors import ObjectNotFound, RepositoryError
from ..ports import Backend
from .format import CONFIG_KEY
from .keys import KEY_OBJECT

log = logging.getLogger(__name__)

DAY = 86400.0
EXTEND_BELOW = 2 / 3  # extend once less than this share of lock_days is left
STATE_FILE = "retention.json"


class RetentionKeeper:
    """For a backend with the ``retention`` capability (``S3Backend`` with Object Lock)."""

    def __init__(self, backend: Backend, folder: Path | None):
        self.backend = backend
        self.days: int = backend.lock_days  # type: ignore[attr-defined]
        self.path = folder / STATE_FILE if folder is not None else None
        self._lock = threading.Lock()
        self._keyed: list[str] | None = None  # the key object, if the repository has one

    def keep(self, keys: Iterable[str], now: float) -> int:
        """Extend the retention of ``keys`` (plus config and key) that is due; how many
        were extended. A failure is logged, not raised: the point is already whole."""
        horizon, target = now + self.days * DAY * EXTEND_BELOW, now + self.days * DAY
        wanted = sorted({*keys, CONFIG_KEY, *self._key_object()})
        extended = 0
        with self._lock:
            known = self._load()
            before = dict(known)
            try:
                for key in wanted:
                    until = self._until(key, known)
                    if until is None:
                        continue  # gone: not ours to keep
                    if until < horizon:
                        self.backend.extend_retention(key, target)  # type: ignore[attr-defined]
                        until, extended = target, extended + 1
                    known[key] = until
            except RepositoryError as exc:
                log.warning("%s: the Object Lock retention of what recent restore points need "
                            "could not be extended: %s (check the s3:PutObjectRetention "
                            "permission)", self.backend.url, exc)
            finally:
                if known != before:
                    self._save(known)
        if extended:
            log.info("%s: Object Lock retention extended for %d objects recent restore points "
                     "need", self.backend.url, extended)
        return extended

    def _until(self, key: str, known: dict[str, float]) -> float | None:
        set_here = self.backend.retained.get(key)  # type: ignore[attr-defined]
        if set_here is not None or key in known:
            return max(set_here or 0.0, known.get(key, 0.0))
        try:
            return self.backend.retention_until(key) or 0.0  # type: ignore[attr-defined]
        except ObjectNotFound:
            return None

    def _key_object(self) -> list[str]:
        if self._keyed is None:
            self._keyed = [KEY_OBJECT] if self.backend.stat(KEY_OBJECT) is not None else []
        return self._keyed

    def _load(self) -> dict[str, float]:
        if self.path is None:
            return {}
        try:
            data = json.loads(self.path.read_text())
            return {str(k): float(v) for k, v in data.items()}
        except (OSError, ValueError, AttributeError):
            return {}  # none yet, or torn: ask the store again

    def _save(self, known: dict[str, float]) -> None:
        if self.path is None:
            return
        tmp = self.path.with_name(f".{STATE_FILE}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp.write_text(json.dumps(known, sort_keys=True))
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("retention record %s cannot be written (%s)", self.path, exc)
