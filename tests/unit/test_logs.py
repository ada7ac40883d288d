"""The log file: secrets redacted from messages and from the tracebacks logged with them."""

from __future__ import annotations

import logging

import pytest

from vzbackup.logs import setup_logging

SECRET = "s3cret-Value/42"


@pytest.fixture
def log_file(tmp_path):
    root = logging.getLogger()
    level = root.level
    path = tmp_path / "vzbackup.log"
    setup_logging("debug", path, secrets={SECRET})
    yield path
    for handler in [h for h in root.handlers if getattr(h, "_vzbackup", False)]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)


def test_secrets_are_redacted_from_messages_and_tracebacks(log_file):
    log = logging.getLogger("vzbackup.test")
    log.info("connecting with %s", SECRET)
    try:
        raise ValueError(f"bad header value {SECRET!r}")
    except ValueError:
        log.exception("unexpected error")
    text = log_file.read_text()
    assert SECRET not in text
    assert text.count("***") == 2 and "ValueError: bad header value" in text
