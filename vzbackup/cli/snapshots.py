"""``vzbackup snapshots sweep``."""

from __future__ import annotations

import click

from ..ops.selection import require_node
from ..ops.sweep import sweep as sweep_op
from .context import CliContext, pass_cli
from .main import cli
from .render import render_run, run_exit_code


@cli.group("snapshots")
def snapshots_group() -> None:
    """Snapshots vzbackup takes on the nodes (LVM, btrfs) for consistent dumps."""


@snapshots_group.command("sweep")
@click.option("--node", metavar="NODE", help="Only this node [default: every configured node].")
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@pass_cli
@click.pass_context
def sweep(ctx: click.Context, cli_ctx: CliContext, node: str | None, dry_run: bool,
          as_json: bool) -> None:
    """Remove the snapshots a crashed run left behind (killed, power loss), unmounting them
    first. Only vzbackup's own are touched: LVM snapshots named vzbackup-NODE-GUEST-ID and
    tagged 'vzbackup', btrfs subvolumes named .vzbackup-snap-GUEST-ID; a snapshot whose
    guest is being backed up right now is kept. Exit code 1 when any was found."""
    app = cli_ctx.app
    nodes = {node: require_node(app.nodes, node)} if node else app.nodes
    result = sweep_op(nodes, app.catalog, app.locks, app.reporter, app.clock, dry_run=dry_run)
    render_run(result, as_json)
    ctx.exit(run_exit_code(result))
