"""Helpers shared by the tests."""

from __future__ import annotations

import os

import pytest


def skip_allowed() -> bool:
    return os.environ.get("VZBACKUP_TEST_ALLOW_SKIP") == "1"


def require(condition: bool, reason: str) -> None:
    """Skip when ``condition`` is false and skipping is allowed; fail loudly otherwise.

    CI runs as root and never sets VZBACKUP_TEST_ALLOW_SKIP, so a missing install step
    (sshd, PostgreSQL, btrfs-progs...) fails there instead of silently skipping.
    """
    if condition:
        return
    if skip_allowed():
        pytest.skip(reason)
    pytest.fail(f"{reason} (set VZBACKUP_TEST_ALLOW_SKIP=1 to skip instead)", pytrace=False)


def is_root() -> bool:
    return os.geteuid() == 0
