"""Guest references: ``ct101`` (container), ``vm200`` (VM), or a bare VMID."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Kind = Literal["ct", "vm"]
KINDS: tuple[Kind, ...] = ("ct", "vm")
_REF = re.compile(r"^(?:(ct|vm))?(\d{1,9})$")
MIN_VMID = 100  # Proxmox reserves 0-99


@dataclass(frozen=True, order=True)
class GuestRef:
    """A guest as the cluster knows it: its kind and cluster-wide VMID."""

    kind: Kind
    vmid: int

    def __str__(self) -> str:
        return f"{self.kind}{self.vmid}"


@dataclass(frozen=True)
class GuestSpec:
    """What a user typed: the kind may be unknown (a bare ``101``) or it may be a hostname."""

    text: str
    kind: Kind | None
    vmid: int | None

    @property
    def ref(self) -> GuestRef | None:
        if self.kind and self.vmid is not None:
            return GuestRef(self.kind, self.vmid)
        return None

    def matches(self, ref: GuestRef, name: str | None = None) -> bool:
        if self.vmid is not None:
            return ref.vmid == self.vmid and (self.kind is None or self.kind == ref.kind)
        return name is not None and name == self.text


def parse_guest(text: str) -> GuestSpec:
    """Parse ``ct101``, ``vm200``, ``101`` or a hostname; raise ValueError on nonsense."""
    raw = text.strip()
    m = _REF.match(raw.lower())
    if m:
        vmid = int(m.group(2))
        if vmid < MIN_VMID:
            raise ValueError(f"{text!r}: VMIDs start at {MIN_VMID}")
        return GuestSpec(raw, m.group(1), vmid)  # type: ignore[arg-type]
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}", raw):
        return GuestSpec(raw, None, None)
    raise ValueError(f"{text!r} is not a guest: use ct<VMID>, vm<VMID>, a VMID or a hostname")


def guest_ref(text: str) -> GuestRef:
    """Parse a fully qualified ``ct101``/``vm200``; raise ValueError otherwise."""
    spec = parse_guest(text)
    if spec.ref is None:
        raise ValueError(f"{text!r}: expected ct<VMID> or vm<VMID>")
    return spec.ref
