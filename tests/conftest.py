"""Suite-wide fixtures: every test is hermetic (no VZBACKUP_* from the caller's shell)."""

from __future__ import annotations

import os

import pytest

# The servers the suite starts (PostgreSQL, S3, sshd), as session fixtures for every test.
pytest_plugins = ["tests.lab.pg", "tests.lab.s3", "tests.lab.ssh", "tests.lab.site"]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("VZBACKUP_") and name != "VZBACKUP_TEST_ALLOW_SKIP":
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    yield
