"""Branches: a named set of clones of production guests, made from one consistent set of
restore points and kept apart from production. Pure.

A branch is consistent in time: each member comes from its source guest's newest restore
point at or before one instant (``pick_points``). Its network is ``isolated`` (no bridge at
all) or one branch bridge that no source guest uses; static addresses are always dropped.

Each member records its lineage (source guest and restore point) and the point its clone
was made from *as the branch ships it*: the source point itself, or, when sanitize scripts
ran, a restore point of the sanitized clone (``shipped``), so that an exported bundle never
carries the data the scripts scrubbed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from .clone import NET_KEY, NetworkMap, split_props
from .guests import GuestRef, parse_guest
from .points import RestorePoint, pick_point

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
ISOLATED = "isolated"
BRANCH_LABEL = "branch"  # label of the restore points a branch stores of its sanitized clones
IN_PROGRESS = "in progress"  # origin of a branch being made (or whose making was killed)


def check_branch_name(name: str) -> str | None:
    """Why ``name`` cannot name a branch, or None."""
    if not _NAME.match(name):
        return ("a branch name is 1-63 lower-case letters, digits, '-', '_' or '.', starting "
                "with a letter or digit (expo-2026)")
    return None


@dataclass(frozen=True)
class BranchMember:
    source: GuestRef
    point_id: str  # the source point (lineage)
    clone: GuestRef
    hostname: str
    shipped_id: str  # the point the branch ships: the source point, or its sanitized copy

    def to_dict(self) -> dict[str, Any]:
        return {"source": str(self.source), "point": self.point_id, "clone": str(self.clone),
                "hostname": self.hostname, "shipped_point": self.shipped_id}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "BranchMember":
        return cls(_ref(d["source"]), str(d["point"]), _ref(d["clone"]), str(d["hostname"]),
                   str(d["shipped_point"]))


@dataclass(frozen=True)
class BranchRecord:
    name: str
    node: str
    created: datetime  # UTC
    at: datetime | None  # the instant its points were chosen for (None: each newest)
    network: str  # "isolated" or the branch bridge
    sanitize: tuple[str, ...]  # the scripts run in every member, in order
    members: tuple[BranchMember, ...]
    origin: str = "created"  # "created", "bundle <digest>" (imported), or IN_PROGRESS

    @property
    def imported(self) -> bool:
        return self.origin.startswith("bundle ")

    @property
    def complete(self) -> bool:
        return self.origin != IN_PROGRESS

    def member_of(self, clone: GuestRef) -> BranchMember | None:
        return next((m for m in self.members if m.clone == clone), None)

    def with_members(self, members: tuple[BranchMember, ...], created: datetime) -> "BranchRecord":
        return replace(self, members=members, created=created)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "node": self.node, "created": self.created.isoformat(),
                "at": self.at.isoformat() if self.at else None, "network": self.network,
                "sanitize": list(self.sanitize), "origin": self.origin,
                "members": [m.to_dict() for m in self.members]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "BranchRecord":
        at = d.get("at")
        return cls(str(d["name"]), str(d["node"]), datetime.fromisoformat(d["created"]),
                   datetime.fromisoformat(at) if at else None, str(d["network"]),
                   tuple(str(s) for s in d.get("sanitize") or ()),
                   tuple(BranchMember.from_dict(m) for m in d["members"]),
                   str(d.get("origin") or "created"))


def _ref(text: str) -> GuestRef:
    ref = parse_guest(str(text)).ref
    if ref is None:
        raise ValueError(f"not a guest reference: {text!r}")
    return ref


def pick_points(points: Mapping[GuestRef, list[RestorePoint]], at: datetime | None
                ) -> tuple[dict[GuestRef, RestorePoint], list[GuestRef]]:
    """Each guest's newest point at or before ``at`` (or newest), and the guests without one."""
    chosen, lacking = {}, []
    for guest in sorted(points):
        p = pick_point(points[guest], at)
        if p is None:
            lacking.append(guest)
        else:
            chosen[guest] = p
    return chosen, lacking


def bridges(config: Mapping[str, Any]) -> set[str]:
    """The bridges a guest's ``netN`` lines use."""
    return {v for k, value in config.items() if NET_KEY.match(k)
            for key, v in split_props(str(value)) if key == "bridge" and v}


@dataclass(frozen=True)
class BranchNetwork:
    """``isolated`` or one branch bridge every interface moves to."""

    bridge: str | None = None  # None: isolated
    production: frozenset[str] = field(default_factory=frozenset)  # bridges sources use

    def describe(self) -> str:
        return ISOLATED if self.bridge is None else self.bridge

    def map_for(self, config: Mapping[str, Any]) -> NetworkMap:
        """The clone ``NetworkMap`` for a member whose source has ``config``."""
        if self.bridge is None:
            return NetworkMap(isolated=True)
        return NetworkMap({b: self.bridge for b in bridges(config)})


_BRIDGE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")


def branch_network(text: str | None, production: set[str]) -> BranchNetwork:
    """``isolated`` (the default) or a bridge no source guest uses. ``ValueError`` says why not."""
    if text in (None, "", ISOLATED):
        return BranchNetwork(None, frozenset(production))
    if not _BRIDGE.match(text):
        raise ValueError(f"{text!r}: give 'isolated' or one bridge name (1-15 letters, digits, "
                         "'_.-')")
    if text in production:
        raise ValueError(f"bridge {text} is a production bridge (a source guest uses it): a "
                         "branch must not share a network with production")
    return BranchNetwork(text, frozenset(production))
