"""``vzbackup runs`` and ``vzbackup runs show ID``."""

from __future__ import annotations

from pathlib import Path

import click
from rich.text import Text

from ..results import RunRecord
from ..scheduler.runlog import run_log_path
from .context import CliContext, pass_cli
from .main import cli
from .render import emit_json, human_bytes, print_table, table

LOG_TAIL = 200  # lines of a run's log shown


@cli.group("runs", invoke_without_command=True)
@click.option("--limit", default=20, show_default=True, metavar="N", help="How many runs.")
@click.option("--job", metavar="NAME", help="Only the runs of job NAME.")
@click.option("--steps", is_flag=True, help="Also the steps of job runs (backup, replicate, "
                                             "verify), which are runs of their own.")
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON on stdout.")
@pass_cli
@click.pass_context
def runs(ctx: click.Context, cli_ctx: CliContext, limit: int, job: str | None, steps: bool,
         as_json: bool) -> None:
    """The newest runs, newest first: kind, job, status, guests ok and failed."""
    if ctx.invoked_subcommand is not None:
        return
    catalog = cli_ctx.app.catalog
    found = [r for r in catalog.runs(limit * 10 if job or not steps else limit)
             if (steps or "job_run" not in r.args) and (job is None or r.args.get("job") == job)]
    found = found[:limit]
    if as_json:
        emit_json("runs", [_summary(r) for r in found])
        return
    t = table("run", "kind", "job", "started (UTC)", "took", "status", "ok", "failed")
    for r in found:
        ok = sum(1 for i in r.items if i.status == "ok")
        took = f"{(r.finished - r.started).total_seconds():.0f} s" if r.finished else "-"
        kind = r.kind + (f" {r.args['action']}" if r.kind == "job" else "")
        t.add_row(str(r.id), kind, str(r.args.get("job", "-")), f"{r.started:%Y-%m-%d %H:%M:%S}",
                  took, Text(r.status, style=_style(r.status)), str(ok), str(len(r.items) - ok))
    print_table(t)
    if not found:
        click.echo("no runs", err=True)


@runs.command("show")
@click.argument("run_id", type=int, metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON on stdout.")
@pass_cli
def show(cli_ctx: CliContext, run_id: int, as_json: bool) -> None:
    """One run: its per-guest results, its steps (for a job run) and its log."""
    app = cli_ctx.app
    record = app.catalog.run(run_id)
    steps = [r for r in app.catalog.runs(200) if r.args.get("job_run") == run_id]
    log = _log_lines(app.config.state_dir, run_id)
    if as_json:
        emit_json("run", {**_summary(record), "items": list(record.items),
                          "steps": [_summary(s) for s in reversed(steps)], "log": log})
        return
    took = f", took {(record.finished - record.started).total_seconds():.0f} s" if record.finished else ""
    click.echo(f"run {record.id}: {record.kind} {_args(record)}, {record.status}, started "
               f"{record.started:%Y-%m-%d %H:%M:%S} UTC{took}")
    t = table("guest", "node", "status", "point", "bytes", "stored", "seconds", "message")
    for o in record.items:
        t.add_row(o.guest, o.node or "-", Text(o.status, style=_style(o.status)),
                  (o.point_id or "-")[:12], human_bytes(o.bytes_in), human_bytes(o.new_bytes),
                  f"{o.seconds:.1f}", Text((o.message or "") + (f" (next: {o.hint})"
                                                                if o.status == "failed" and o.hint else "")))
    print_table(t)
    for s in reversed(steps):
        click.echo(f"step run {s.id}: {s.kind} {_args(s)}, {s.status}")
    if log:
        click.echo("log:")
        click.echo("\n".join(log))


def _summary(r: RunRecord) -> dict:
    return {"id": r.id, "kind": r.kind, "args": r.args, "started": r.started,
            "finished": r.finished, "status": r.status,
            "ok": sum(1 for i in r.items if i.status == "ok"),
            "failed": sum(1 for i in r.items if i.status == "failed")}


def _args(r: RunRecord) -> str:
    shown = {k: v for k, v in r.args.items() if k not in ("points", "guests")}
    return " ".join(f"{k}={v}" for k, v in shown.items())


def _style(status: str) -> str:
    return {"failed": "red", "error": "red", "aborted": "red", "partial": "yellow"}.get(status, "")


def _log_lines(state_dir: Path, run_id: int) -> list[str]:
    try:
        return run_log_path(state_dir, run_id).read_text(encoding="utf-8").splitlines()[-LOG_TAIL:]
    except OSError:
        return []
