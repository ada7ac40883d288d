"""Logging set-up: a log file (when configured) with secrets redacted.

User-facing output is the CLI's business (stderr); this is the operator's record.
"""

from __future__ import annotations

import logging
from pathlib import Path

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RedactSecrets(logging.Filter):
    """Replace every registered secret in a record's final text by '***'."""

    def __init__(self, secrets: set[str]):
        super().__init__()
        self.secrets = {s for s in secrets if len(s) >= 4}

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            text = record.getMessage()
            for secret in self.secrets:
                text = text.replace(secret, "***")
            record.msg, record.args = text, None
        return True


def setup_logging(level: str, file: Path | None, *, verbose: bool = False,
                  secrets: set[str] | None = None, stderr: bool = False) -> None:
    """Log to ``file``, and to stderr when ``verbose`` (at debug level) or ``stderr``."""
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else getattr(logging, level.upper(), logging.INFO))
    redact = RedactSecrets(secrets or set())
    for handler in list(root.handlers):
        if getattr(handler, "_vzbackup", False):
            root.removeHandler(handler)
    handlers: list[logging.Handler] = []
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(file, encoding="utf-8"))
    if verbose or stderr:
        handlers.append(logging.StreamHandler())
    for handler in handlers:
        handler.setFormatter(logging.Formatter(_FORMAT))
        handler.addFilter(redact)
        handler._vzbackup = True  # type: ignore[attr-defined]
        root.addHandler(handler)
