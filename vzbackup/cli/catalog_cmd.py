"""``vzbackup catalog rebuild``."""

from __future__ import annotations

import click

from ..ops.rebuild import rebuild_catalog
from .context import CliContext, check_repositories, pass_cli
from .main import cli
from .render import emit_json, render_run, run_exit_code


@cli.group("catalog")
def catalog_group() -> None:
    """Maintain the catalogue (an index of what the repositories hold)."""


@catalog_group.command("rebuild")
@click.option("--from", "sources", multiple=True, metavar="REPO",
              help="Repository to read (repeatable) [default: every configured one].")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@pass_cli
@click.pass_context
def rebuild(ctx: click.Context, cli_ctx: CliContext, sources: tuple[str, ...], as_json: bool) -> None:
    """Recreate guests, restore points and copies from the repositories alone: after the
    catalogue was lost, or to add a repository's points to it. Safe to run again."""
    app = cli_ctx.app
    check_repositories(app.config, sources, "--from")
    repos = {name: app.repository(name) for name in (sources or app.config.repositories)}
    result = rebuild_catalog(repos, app.catalog, app.reporter, app.clock)
    if as_json:
        emit_json("catalog-rebuild", result.to_dict())
    else:
        click.echo(f"catalogued {result.details['points']} restore points of "
                   f"{result.details['guests']} guests", err=True)
        if result.items:
            render_run(result, False)
    ctx.exit(run_exit_code(result))
