"""Which copy of a restore point to read first: the nearest, then farther ones."""

from __future__ import annotations

# A repository on a local disk, then one on a peer node, then object storage.
_DISTANCE = {"file": 0, "sftp": 1, "s3": 2}


def distance(url: str) -> int:
    return _DISTANCE.get(url.partition("://")[0], len(_DISTANCE))


def nearest_first(urls: list[str]) -> list[int]:
    """Indexes of ``urls`` from the nearest to the farthest; ties keep their order."""
    return sorted(range(len(urls)), key=lambda i: distance(urls[i]))
