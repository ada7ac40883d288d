"""How garbage collection's results are shown (``prune``, ``repo gc``)."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

import click

from ..ops.gc import GcOutcome
from .render import human_bytes, print_table, table


def print_gc(collected: list[GcOutcome]) -> None:
    if not collected:
        return
    t = table("repository", "taken out of the index", "deleted", "waiting", "deletable from (UTC)",
              "index objects", "note")
    for c in collected:
        r = c.report
        if r is None:
            t.add_row(c.repository, "-", "-", "-", "-", "-", f"failed: {c.error}")
            continue
        taken = f"{r.condemned} packs, {human_bytes(r.condemned_bytes)}"
        if r.repacked:
            taken += f" ({r.repacked} repacked: {human_bytes(r.repacked_bytes)} copied)"
        deleted = f"{r.deleted + r.unnamed_deleted} packs, {human_bytes(r.freed_bytes)}"
        if r.revived:
            deleted += f"; {r.revived} kept for newer points"
        when = "-" if r.next_deletion is None else datetime.fromtimestamp(
            r.next_deletion, timezone.utc).strftime("%Y-%m-%d %H:%M")
        note = "; ".join([*r.warnings, *(["dry run: nothing changed"] if r.dry_run else [])])
        t.add_row(c.repository, taken, deleted, f"{r.pending} packs, {human_bytes(r.pending_bytes)}",
                  when, f"{r.index_objects[0]} -> {r.index_objects[1]}", note)
    print_table(t)


def gc_json(collected: list[GcOutcome]) -> list[dict]:
    return [{"repository": c.repository, "ran_on": c.ran_on,
             "report": dataclasses.asdict(c.report) if c.report is not None else None,
             "error": str(c.error) if c.error is not None else None} for c in collected]


def gc_exit_code(collected: list[GcOutcome]) -> int:
    codes = {c.error.exit_code for c in collected if c.error is not None}
    return 0 if not codes else codes.pop() if len(codes) == 1 else 20


def echo_totals(collected: list[GcOutcome]) -> None:
    done = [c.report for c in collected if c.report is not None]
    freed = sum(r.freed_bytes for r in done)
    waiting = sum(r.pending_bytes for r in done)
    dry = " (dry run: nothing changed)" if any(r.dry_run for r in done) else ""
    click.echo(f"{human_bytes(freed)} freed now, {human_bytes(waiting)} waiting out the grace "
               f"period{dry}", err=True)
