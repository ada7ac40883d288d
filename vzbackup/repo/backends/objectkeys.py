"""The one rule for object keys, shared by every backend."""

from __future__ import annotations

from ...errors import RepositoryError


def check_key(url: str, key: str) -> str:
    """``key`` if no '/'-separated part is empty, '.', '..' or starts with '.' (temporary
    objects of a backend start with '.'), and it holds no NUL byte."""
    if not key or key[0] in "./" or key[-1] == "/" or "/." in key or "//" in key or "\0" in key:
        raise RepositoryError(f"{url}: invalid object key {key!r}")
    return key
