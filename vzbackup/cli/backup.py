"""``vzbackup backup``."""

from __future__ import annotations

import click

from ..errors import UsageError
from ..ops.backup import backup as backup_op
from ..ops.selection import select_targets
from .context import CliContext, pass_cli
from .main import cli
from .render import render_run, run_exit_code


@cli.command()
@click.argument("guests", nargs=-1, metavar="[GUEST]...")
@click.option("--all", "all_guests", is_flag=True, help="Every guest on every configured node.")
@click.option("--node", metavar="NODE", help="Every guest on NODE (or only the named ones there).")
@click.option("--repository", "-r", metavar="NAME", help="Repository to write to [default: backup.repository].")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Label the restore points.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@pass_cli
@click.pass_context
def backup(ctx: click.Context, cli_ctx: CliContext, guests: tuple[str, ...], all_guests: bool,
           node: str | None, repository: str | None, labels: tuple[str, ...], as_json: bool) -> None:
    """Dump guests and store each as a restore point.

    GUEST is ct101, vm200, a bare VMID or a hostname. One guest failing does not stop the
    others; the exit code is the failures' code when they share one, else 20.
    """
    app = cli_ctx.app
    selection = select_targets(app.nodes, list(guests), all_guests=all_guests, node=node)
    repo = app.repository(repository or app.config.backup_repository)
    bad = [lbl for lbl in labels if "=" not in lbl]
    if bad:
        raise UsageError(f"--label {bad[0]!r}: expected KEY=VALUE")
    extra = dict(lbl.split("=", 1) for lbl in labels)
    result = backup_op(selection, repo, app.catalog, app.locks, app.reporter, app.clock,
                       {**app.config.backup_labels, **extra}, access=app)
    render_run(result, as_json)
    ctx.exit(run_exit_code(result))
