"""Logging set-up: a log file (when configured) with secrets redacted.

User-facing output is the CLI's business (stderr); this is the operator's record.
"""

from __future__ import annotations

import logging
from pathlib import Path

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RedactSecrets(logging.Filter):
    """Replace every registered secret in a record's final text, and in the traceback
    logged with it, by '***'."""

    def __init__(self, secrets: set[str]):
        super().__init__()
        self.secrets = {s for s in secrets if len(s) >= 4}

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            record.msg, record.args = self._redact(record.getMessage()), None
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = self._redact(record.exc_text)
        return True

    def _redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


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
