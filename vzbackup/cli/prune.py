"""``vzbackup prune --dry-run``."""

from __future__ import annotations

import click
from rich.text import Text

from ..errors import UsageError
from ..ops.membership import covering_jobs
from ..ops.prune import plan_prune
from ..ops.selection import resolve_known_guest
from .context import CliContext, pass_cli
from .main import cli
from .render import emit_json, print_table, table


@cli.command()
@click.argument("guests", nargs=-1, metavar="[GUEST]...")
@click.option("--dry-run", is_flag=True, required=True,
              help="Required for now: show what would be kept and removed, remove nothing.")
@click.option("--repository", "-r", "repositories", multiple=True, metavar="NAME",
              help="Only this repository (repeatable) [default: all].")
@click.option("--job", metavar="NAME", help="Only the guests job NAME covers.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON on stdout.")
@pass_cli
def prune(cli_ctx: CliContext, guests: tuple[str, ...], dry_run: bool,
          repositories: tuple[str, ...], job: str | None, as_json: bool) -> None:
    """Show, for every restore point copy (of GUESTs, or all), whether retention keeps or
    removes it and why. Policies: a job's keep_* for its repository, else
    [retention.REPO], else the keep_* of a job replicating there, else keep-all; with
    Proxmox VE's prune-backups semantics. Protected points (label protected=1), each
    guest's newest verified point and points a clone was made from are always kept.

    Only --dry-run exists so far: removal comes with garbage collection.
    """
    app = cli_ctx.app
    for name in repositories:
        if name not in app.config.repositories:
            raise UsageError(f"--repository {name}: no such repository "
                             f"(known: {', '.join(sorted(app.config.repositories))})")
    if job is not None and job not in app.config.jobs:
        raise UsageError(f"--job {job}: no such job (known: "
                         f"{', '.join(sorted(app.config.jobs)) or 'none'})")
    covering = covering_jobs(app.config.jobs, app.catalog)
    known = app.catalog.guests()
    refs = {resolve_known_guest(known, g) for g in guests}
    points = [p for p in app.catalog.points() if (not refs or p.guest in refs) and
              (job is None or any(j.name == job for j in covering.get(p.guest, [])))]
    plan = plan_prune(points, covering, app.config.retention, repositories or None,
                      app.catalog.clones(), app.catalog.branches())
    if as_json:
        emit_json("prune-plan", plan)
        return
    t = table("guest", "repository", "point", "created (UTC)", "decision", "reason", "policy")
    for item in plan:
        t.add_row(str(item.guest), item.repository, item.point[:12], item.created[:16].replace("T", " "),
                  Text(item.decision, style="yellow" if item.decision == "remove" else ""),
                  Text(item.reason), f"{item.policy} ({item.source})")
    print_table(t)
    now = app.clock.now()
    expired = [c for c in app.catalog.checkpoints() if c.expired(now)]
    if expired:
        names = ", ".join(f"{c.label} of {c.guest}" for c in expired)
        click.echo(f"expired checkpoints: {names} ('vzbackup checkpoint drop --expired' or the "
                   "daemon's next job run removes them)", err=True)
    remove = sum(1 for i in plan if i.decision == "remove")
    click.echo(f"{len(plan) - remove} kept, {remove} would be removed (dry run: nothing removed)",
               err=True)
