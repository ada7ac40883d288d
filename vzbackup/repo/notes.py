"""Notes: small records the catalogue keeps that are not restore points, written into the
repository too so that ``catalog rebuild`` brings them back (promise 6): a clone's lineage,
a branch and its members.

A note is a JSON document under ``notes/<id>``; its id is the SHA-256 of the JSON, and it
is encoded by the codec like a manifest (sealed in an encrypted repository). Notes are
never changed: a later note with the same ``kind`` and ``key`` supersedes an earlier one
(by ``time``), and one with ``"gone": true`` says the record was removed. GC leaves notes
alone.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Iterator
from typing import Any

from ..errors import IntegrityError, ObjectNotFound
from ..ports import Backend
from .codec import Codec
from .format import is_object_id

log = logging.getLogger(__name__)

NOTE_PREFIX = "notes/"
MAX_NOTE = 16 << 20


def put_note(backend: Backend, codec: Codec, doc: dict[str, Any]) -> str:
    """Store ``doc`` (it needs ``kind``, ``key`` and ``time``); its id."""
    for field in ("kind", "key", "time"):
        if field not in doc:
            raise ValueError(f"a note needs {field!r}")
    plain = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    note_id = hashlib.sha256(plain).hexdigest()
    backend.put(NOTE_PREFIX + note_id, codec.encode(bytes.fromhex(note_id), plain))
    backend.flush()
    return note_id


def read_notes(backend: Backend, codec: Codec) -> Iterator[dict[str, Any]]:
    """Every readable note (a damaged one is logged and left out), oldest first."""
    found = []
    for info in backend.list(NOTE_PREFIX):
        note_id = info.key[len(NOTE_PREFIX):]
        if not is_object_id(note_id):
            continue
        what = f"note {note_id[:12]}"
        try:
            plain = codec.decode(bytes.fromhex(note_id), backend.get(info.key), what=what,
                                 max_size=MAX_NOTE)
            if not hmac.compare_digest(hashlib.sha256(plain).hexdigest(), note_id):
                raise IntegrityError(f"{what} does not match its id")
            found.append(json.loads(plain))
        except ObjectNotFound:
            continue
        except (IntegrityError, ValueError) as exc:
            log.warning("%s: %s; left out", backend.url, exc)
    return iter(sorted(found, key=lambda d: (str(d.get("time")), json.dumps(d, sort_keys=True))))


def current(notes: Iterator[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, key) -> the latest note about it, without those removed since."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for doc in notes:
        latest[(str(doc["kind"]), str(doc["key"]))] = doc
    return {k: d for k, d in latest.items() if not d.get("gone")}
