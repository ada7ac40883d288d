"""Checkpoints: labelled local snapshots of guests, with an expiry. Pure.

A label names one checkpoint of one or more guests (taken together, all or nothing). It is
also the snapshot name on the node, so it follows Proxmox VE's rules for snapshot names
(pve.md 8.1): ``^[a-z][a-z0-9_-]+$``, at most 40 characters, not ``current`` or ``vzdump``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .guests import GuestRef, guest_ref

_LABEL = re.compile(r"^[a-z][a-z0-9_-]+$")
_RESERVED = ("current", "vzdump")
_DURATION = re.compile(r"^(\d+)([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def check_label(label: str) -> str | None:
    """Why ``label`` cannot name a checkpoint, or None."""
    if not _LABEL.match(label) or len(label) > 40:
        return ("a label starts with a lower-case letter, then lower-case letters, digits, "
                "'-' or '_' (2 to 40 characters)")
    if label in _RESERVED:
        return f"'{label}' is reserved by Proxmox VE"
    return None


def parse_duration(text: str) -> timedelta | None:
    """``30m``, ``12h``, ``7d``, ``2w``; None when it is none of these."""
    m = _DURATION.match(text.strip())
    if not m or int(m.group(1)) == 0:
        return None
    return timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})


@dataclass(frozen=True)
class Checkpoint:
    guest: GuestRef
    label: str
    node: str
    created: datetime
    expires: datetime | None = None

    def expired(self, now: datetime) -> bool:
        return self.expires is not None and self.expires <= now

    def to_dict(self) -> dict[str, Any]:
        return {"guest": str(self.guest), "label": self.label, "node": self.node,
                "created": self.created.isoformat(),
                "expires": self.expires.isoformat() if self.expires else None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Checkpoint":
        return cls(guest_ref(d["guest"]), str(d["label"]), str(d["node"]),
                   datetime.fromisoformat(d["created"]),
                   datetime.fromisoformat(d["expires"]) if d.get("expires") else None)
