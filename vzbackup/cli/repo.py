"""``vzbackup repo init``: create a configured repository."""

from __future__ import annotations

import click

from .context import CliContext, pass_cli
from .main import cli


@cli.group("repo")
def repo_group() -> None:
    """Manage repositories."""


@repo_group.command("init")
@click.argument("name", required=False)
@pass_cli
def init(cli_ctx: CliContext, name: str | None) -> None:
    """Initialise repository NAME (default: backup.repository) at its configured URL.

    With encryption, the passphrase is read from passphrase_file or passphrase_env;
    keep a copy of it elsewhere: without it the repository cannot be read.
    """
    app = cli_ctx.app
    repo = app.init_repository(name or app.config.backup_repository)
    app.reporter.info(f"repository {repo.name} initialised at {repo.url}")


@repo_group.command("reindex")
@click.argument("name", required=False)
@pass_cli
@click.pass_context
def reindex(ctx: click.Context, cli_ctx: CliContext, name: str | None) -> None:
    """Index again the packs of repository NAME (default: backup.repository) that no index
    object names: after index objects were lost or damaged, or a copy of a repository
    came without them. Each pack is checked against its id first; a torn or damaged one is
    left out and counted (exit 7). Safe to run any time: it only adds index objects."""
    app = cli_ctx.app
    repo = app.repository(name or app.config.backup_repository)
    stats = repo.index_unnamed_packs()
    app.reporter.info(f"repository {repo.name}: {stats.packs} pack(s) holding {stats.chunks} "
                      f"chunk(s) indexed again; {stats.rejected} damaged pack(s) left out")
    if stats.rejected:
        ctx.exit(7)
