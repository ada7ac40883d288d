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
