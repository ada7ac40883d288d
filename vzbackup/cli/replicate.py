"""``vzbackup replicate``."""

from __future__ import annotations

import click

from ..errors import UsageError
from ..ops.replicate import replicate as replicate_op
from ..ops.selection import resolve_known_guest
from .context import CliContext, pass_cli
from .main import cli
from .render import emit_json, render_run, run_exit_code


@cli.command()
@click.argument("guests", nargs=-1, metavar="[GUEST]...")
@click.option("--to", "targets", multiple=True, metavar="REPO",
              help="Repository to copy to (repeatable) [default: backup.replicate_to].")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@pass_cli
@click.pass_context
def replicate(ctx: click.Context, cli_ctx: CliContext, guests: tuple[str, ...],
              targets: tuple[str, ...], as_json: bool) -> None:
    """Copy restore points (of GUESTs, or all) that a repository lacks into it: the missing
    chunks, then the manifest. An empty target becomes a replica of backup.repository.
    Safe to run again: a run cut short sends only what is still missing."""
    app = cli_ctx.app
    targets = targets or app.config.replicate_to
    if not targets:
        raise UsageError("name a repository with --to, or set backup.replicate_to")
    known = app.catalog.guests()
    refs = {resolve_known_guest(known, g) for g in guests}
    points = [p for p in app.catalog.points() if not refs or p.guest in refs]
    results = []
    for name in targets:
        target = app.replica(name, app.config.backup_repository)
        results.append(replicate_op(points, app.repositories(), target, app.catalog,
                                    app.reporter, app.clock, nodes=app.nodes, access=app))
    if as_json:  # one document, one run per target
        emit_json("replicate", [r.to_dict() for r in results])
    else:
        for result in results:
            render_run(result, False)
    ctx.exit(next((c for c in map(run_exit_code, results) if c), 0))
