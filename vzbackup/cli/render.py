"""All user-facing output: progress and messages on stderr, data and JSON on stdout."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from datetime import datetime
from typing import Any

import click
from rich.console import Console
from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn,
                           TransferSpeedColumn)
from rich.table import Table

from .. import __version__
from ..errors import EXIT_WARNING, VzError
from ..ports import Advance
from ..results import RunResult

JSON_SCHEMA = 1


class ConsoleReporter:
    """The ``Reporter`` port for a terminal: rich progress bars when stderr is a terminal,
    plain lines otherwise; silent when ``quiet``."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.err = Console(stderr=True, highlight=False)

    def info(self, message: str) -> None:
        if not self.quiet:
            self.err.print(message, markup=False, soft_wrap=True)

    def warning(self, message: str) -> None:
        self.err.print(f"warning: {message}", style="yellow", markup=False, soft_wrap=True)

    @contextmanager
    def progress(self, description: str, total: int | None) -> Iterator[Advance]:
        if self.quiet or not self.err.is_terminal:
            yield lambda n: None
            return
        columns = [TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                   TransferSpeedColumn(), TimeElapsedColumn()]
        with Progress(*columns, console=self.err, transient=True) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n: bar.advance(task, n)


def human_bytes(n: int | float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def emit_json(command: str, data: Any) -> None:
    envelope = {"vzbackup": __version__, "schema": JSON_SCHEMA, "command": command, "data": data}
    click.echo(json.dumps(envelope, default=_json_default, indent=2, sort_keys=True))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if is_dataclass(value):
        return asdict(value)  # type: ignore[arg-type]
    return str(value)


def table(*columns: str) -> Table:
    t = Table(*columns, box=None, pad_edge=False, header_style="bold")
    return t


def print_table(t: Table) -> None:
    Console(file=sys.stdout, highlight=False, width=200 if not sys.stdout.isatty() else None).print(t)


def render_run(result: RunResult, as_json: bool) -> None:
    if as_json:
        emit_json(result.kind, result.to_dict())
        return
    stored = result.kind == "backup"
    t = table("guest", "node", "status", "point", "bytes", *(["stored"] if stored else []),
              "seconds", "message")
    for o in result.items:
        t.add_row(o.guest, o.node or "-", o.status, (o.point_id or "-")[:12],
                  human_bytes(o.bytes_in), *([human_bytes(o.new_bytes)] if stored else []),
                  f"{o.seconds:.1f}", o.message or "")
    print_table(t)


def render_error(error: VzError) -> None:
    err = Console(stderr=True, highlight=False)
    err.print(f"error: {error.message}", style="red", markup=False, soft_wrap=True)
    if error.hint:
        err.print(f"next step: {error.hint}", markup=False, soft_wrap=True)


def run_exit_code(result: RunResult) -> int:
    """0 when every item succeeded (1 if one has warnings); the failures' exit code when they
    share one; else 20."""
    codes = {o.exit_code or 2 for o in result.items if o.status == "failed"}
    if not codes:
        return EXIT_WARNING if any(o.warnings for o in result.items) else 0
    return codes.pop() if len(codes) == 1 else 20
