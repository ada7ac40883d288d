"""``vzbackup config check``: every problem of the configuration at once."""

from __future__ import annotations

import click

from .context import CliContext, pass_cli
from .main import cli


@cli.group("config")
def config_group() -> None:
    """Check the configuration."""


@config_group.command("check")
@pass_cli
def check(cli_ctx: CliContext) -> None:
    """Load the configuration and report every error with file and key path."""
    config = cli_ctx.config()
    click.echo(f"{config.path}: ok ({len(config.nodes)} nodes, "
               f"{len(config.repositories)} repositories)", err=True)
