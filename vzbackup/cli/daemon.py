"""``vzbackup daemon``."""

from __future__ import annotations

import click

from ..logs import setup_logging
from ..scheduler.daemon import Daemon
from ..wiring import secrets_of
from .context import CliContext, pass_cli
from .main import cli


@cli.command()
@pass_cli
@click.pass_context
def daemon(ctx: click.Context, cli_ctx: CliContext) -> None:
    """Run the jobs of the config ([jobs.NAME]) on their schedules, until SIGTERM.

    \b
    With a PostgreSQL catalogue, one of several daemons schedules; the others stand by.
    SIGHUP reloads the configuration. SIGTERM aborts running dumps cleanly (snapshots
    removed, runs recorded as aborted). Logs go to stderr (the journal) and log.file.
    Under systemd (Type=notify) it reports READY, WATCHDOG and STOPPING.
    """
    config = cli_ctx.config()
    setup_logging(config.log_level, config.log_file, verbose=cli_ctx.verbose, stderr=True,
                  secrets=secrets_of(config))
    ctx.exit(Daemon(cli_ctx.config).serve())
