"""Which copy of a restore point to read first: the nearest, then farther ones."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    url: str
    home: str | None = None  # the node whose own disk holds the repository


def why_near(c: Candidate, target_node: str) -> tuple[int, str]:
    """Distance (smaller is nearer) and the reason, as said to the user."""
    scheme = c.url.partition("://")[0]
    if c.home and c.home == target_node:
        return 0, f"on {target_node}'s own disk"
    if scheme == "file":
        return 1, "on this host's disk"
    if scheme == "sftp":
        return 2, f"on peer node {c.home}" if c.home else "on a peer over SFTP"
    if scheme == "s3":
        return 3, "in object storage"
    return 4, "elsewhere"


def nearest_first(candidates: list[Candidate], target_node: str = "") -> list[int]:
    """Indexes of ``candidates`` from the nearest to ``target_node`` to the farthest; ties
    keep their order."""
    return sorted(range(len(candidates)), key=lambda i: why_near(candidates[i], target_node)[0])
