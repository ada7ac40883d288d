"""A task run from the CLI in the foreground (pve.md 3.3): the log goes to the task file
and to stdout (stderr for ``vzdump --stdout``); the final status decides the exit code."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable

from . import state


class TaskError(Exception):
    """Ends the task with ``TASK ERROR: <message>``."""


class NoStatus(Exception):
    """The task process ends without a status line (vzdump's lost global lock, 4.4)."""


class Interrupted(Exception):
    pass


def _interrupt(signum, frame):  # noqa: ANN001
    # pve-common RESTEnvironment: the worker dies on INT/TERM/QUIT (from the code).
    raise Interrupted("received interrupt")


class Task:
    def __init__(self, type_: str, id_: str, *, to_stderr: bool = False):
        self.upid, self.path = state.new_upid(type_, id_)
        self.out = sys.stderr if to_stderr else sys.stdout
        self.file = open(self.path, "w", encoding="utf-8")
        self.warnings = 0

    def log(self, line: str) -> None:
        self.file.write(line + "\n")
        self.file.flush()
        self.out.write(line + "\n")
        self.out.flush()

    def info(self, msg: str) -> None:
        self.log(f"INFO: {msg}")

    def warn(self, msg: str) -> None:
        self.warnings += 1
        self.log(f"WARN: {msg}")

    def error(self, msg: str) -> None:
        self.log(f"ERROR: {msg}")


def run_task(type_: str, id_: str, body: Callable[[Task], None], *, to_stderr: bool = False) -> int:
    """Run ``body``; the exit code as the CLI gives it (0 for OK and WARNINGS, 255 else)."""
    task = Task(type_, id_, to_stderr=to_stderr)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        signal.signal(signum, _interrupt)
    try:
        body(task)
    except NoStatus:
        task.file.write("\nTASK ERROR: got unexpected control message: \n")
        task.file.close()
        sys.stderr.write("got unexpected control message: \n")
        return 255
    except (TaskError, Interrupted) as e:
        message = " ".join(str(e).split("\n")).strip()
        task.file.write(f"\nTASK ERROR: {message}\n")
        task.file.close()
        sys.stderr.write(message + "\n")
        return 255
    if task.warnings:
        task.file.write(f"\nTASK WARNINGS: {task.warnings}\n")
        task.file.close()
        sys.stderr.write(f"Task finished with {task.warnings} warning(s)!\n")
        return 0
    task.file.write("TASK OK\n")
    task.file.close()
    return 0
