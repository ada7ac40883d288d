"""Entry point: one group, one place that maps errors to exit codes."""

from __future__ import annotations

import signal
import sys

import click

from .. import __version__
from ..errors import UsageError, VzError
from .context import CliContext
from .render import render_error


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "-c", "config_path", metavar="FILE", envvar="VZBACKUP_CONFIG",
              help="Configuration file [default: $VZBACKUP_CONFIG or /etc/vzbackup/vzbackup.toml].")
@click.option("--verbose", "-v", is_flag=True, help="Log debug details to stderr.")
@click.option("--quiet", "-q", is_flag=True, help="No progress or messages, only errors and data.")
@click.version_option(__version__, prog_name="vzbackup")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: bool, quiet: bool) -> None:
    """Back up Proxmox VE / OpenVZ guests and bring them back on any node.

    \b
    Exit codes: 0 ok, 1 warning, 2 unexpected error, 3-99 specific errors,
    128+N killed by signal N. See docs/reference/exit-codes.md.
    """
    ctx.obj = CliContext(config_path, verbose=verbose, quiet=quiet)


def _register() -> None:
    from . import (agent, backup, catalog_cmd, config_cmd, nodes, points,  # noqa: F401
                   repo, replicate, restore, verify)  # (the commands attach themselves)
    from . import import_cmd, snapshots  # noqa: F401
    from . import daemon, prune, run, runs, status  # noqa: F401  (the scheduler's)
    from . import branch, checkpoint, clone  # noqa: F401


def _on_sigterm(signum, frame):  # noqa: ANN001
    raise SystemExit(128 + signum)  # unwinds: snapshots removed, runs recorded as aborted


def main(argv: list[str] | None = None) -> None:
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        code = cli.main(args=argv, prog_name="vzbackup", standalone_mode=False)
    except click.exceptions.Abort:
        code = 128 + signal.SIGINT
    except KeyboardInterrupt:
        code = 128 + signal.SIGINT
    except click.ClickException as e:  # usage errors
        e.show()
        code = UsageError.exit_code
    except VzError as e:
        render_error(e)
        code = e.exit_code
    sys.exit(code if isinstance(code, int) else 0)


_register()
