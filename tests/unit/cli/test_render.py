"""Progress on a terminal, silence when piped; results rendered in one place."""

from __future__ import annotations

import io

from rich.console import Console

from vzbackup.cli.render import ConsoleReporter, human_bytes, run_exit_code
from vzbackup.results import GuestOutcome, RunResult


def reporter(terminal: bool) -> tuple[ConsoleReporter, io.StringIO]:
    out = io.StringIO()
    r = ConsoleReporter()
    r.err = Console(file=out, force_terminal=terminal, width=100)
    return r, out


def test_progress_drawn_on_a_terminal():
    r, out = reporter(terminal=True)
    with r.progress("backup ct101 on node1", 1000) as advance:
        advance(500)
    assert "backup ct101 on node1" in out.getvalue()


def test_progress_silent_when_piped_but_warnings_still_shown():
    r, out = reporter(terminal=False)
    with r.progress("backup ct101 on node1", 1000) as advance:
        advance(500)
    assert out.getvalue() == ""
    r.warning("ct102 on node1: tar failed")
    assert "warning: ct102 on node1: tar failed" in out.getvalue()


def test_quiet_hides_info_not_warnings():
    r, out = reporter(terminal=False)
    r.quiet = True
    r.info("restore point 1234")
    r.warning("careful")
    assert out.getvalue() == "warning: careful\n"


def test_exit_code_of_runs():
    ok = GuestOutcome("ct101", "n1", "ok")
    dump = GuestOutcome("ct102", "n1", "failed", exit_code=15)
    node = GuestOutcome("*", "n2", "failed", exit_code=5)
    assert run_exit_code(RunResult("backup", "success", (ok,))) == 0
    assert run_exit_code(RunResult("backup", "partial", (ok, dump))) == 15
    assert run_exit_code(RunResult("backup", "partial", (ok, dump, node))) == 20


def test_human_bytes():
    assert human_bytes(512) == "512 B"
    assert human_bytes(3 * 1024**3) == "3.0 GiB"
