"""A job run's own log: what the run's threads logged, in ``STATE_DIR/runs/<run id>.log``
(shown by ``vzbackup runs show ID``). Lines before the run id is known are kept in memory
and written once it is; secrets are redacted as in every other log."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..logs import RedactSecrets

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def run_log_path(state_dir: Path, run_id: int) -> Path:
    return state_dir / "runs" / f"{run_id}.log"


class _RunLogHandler(logging.Handler):
    def __init__(self, state_dir: Path, thread_prefix: str, secrets: set[str]):
        super().__init__(logging.INFO)
        self.state_dir, self.prefix = state_dir, thread_prefix
        self.pending: list[str] = []
        self.file: Path | None = None
        self.setFormatter(logging.Formatter(_FORMAT))
        self.addFilter(RedactSecrets(secrets))
        self._guard = threading.Lock()

    def started(self, run_id: int) -> None:
        with self._guard:
            if self.file is not None:
                return  # the first run of the job's thread is the job run; steps come after
            self.file = run_log_path(self.state_dir, run_id)
            self.file.parent.mkdir(parents=True, exist_ok=True)
            self._append(self.pending)
            self.pending = []

    def emit(self, record: logging.LogRecord) -> None:
        name = record.threadName or ""
        if name != self.prefix and not name.startswith(self.prefix + "-"):  # its dump workers
            return
        line = self.format(record)
        with self._guard:
            if self.file is None:
                self.pending.append(line)
            else:
                self._append([line])

    def _append(self, lines: list[str]) -> None:
        if lines and self.file is not None:
            with open(self.file, "a", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")


@contextmanager
def run_log(state_dir: Path, thread_name: str, secrets: set[str]) -> Iterator[_RunLogHandler]:
    """Name this thread ``thread_name`` and capture what it (and the threads it names after
    itself) logs; call ``.started(run_id)`` once the run id is known."""
    me = threading.current_thread()
    old_name, me.name = me.name, thread_name
    handler = _RunLogHandler(state_dir, thread_name, secrets)
    root = logging.getLogger()  # its level is log.level: at "warning", info lines are not kept
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        me.name = old_name
