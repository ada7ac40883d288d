"""``vzbackup checkpoint``, ``checkpoint drop``, ``rollback`` and ``checkpoints``."""

from __future__ import annotations

import click

from ..domain.checkpoints import parse_duration
from ..errors import UsageError
from ..ops.checkpoint import drop as drop_op, list_checkpoints, rollback as rollback_op, take_checkpoint
from ..ops.backup import backup as backup_op
from ..ops.checkpoint import CHECKPOINT_LABEL, CheckpointGone
from ..ops.restore import plan_restore, restore as restore_op
from ..ops.selection import select_targets
from .context import CliContext, pass_cli
from .main import cli
from .render import emit_json, print_table, render_run, run_exit_code, table


class _TakeByDefault(click.Group):
    """``checkpoint GUEST...`` takes one; ``checkpoint drop ...`` is the subcommand."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["take", *args]
        return super().parse_args(ctx, args)


@cli.group(cls=_TakeByDefault)
def checkpoint() -> None:
    """Take (checkpoint GUEST... --label L) or drop (checkpoint drop L) checkpoints: fast
    local snapshots on the guests' nodes, for a risky change. Not durable: a checkpoint
    dies with its node. Roll back with 'vzbackup rollback GUEST LABEL'."""


@checkpoint.command("take")
@click.argument("guests", nargs=-1, required=True, metavar="GUEST...")
@click.option("--label", required=True, metavar="LABEL",
              help="Its name (pre-upgrade): lower-case letters, digits, '-', '_'.")
@click.option("--expire", metavar="DURATION", help="Expire after 30m, 12h, 7d or 2w [default: never].")
@click.option("--with-backup", is_flag=True,
              help="Also make a durable restore point of each guest, labelled checkpoint=LABEL, "
                   "so that 'rollback' can restore it if the node dies.")
@click.option("--json", "as_json", is_flag=True, help="Print the checkpoints as JSON on stdout.")
@pass_cli
@click.pass_context
def take(ctx: click.Context, cli_ctx: CliContext, guests: tuple[str, ...], label: str,
         expire: str | None, with_backup: bool, as_json: bool) -> None:
    """Checkpoint GUESTs as one group: all of them, or (on any failure) none.

    \b
    Example: vzbackup checkpoint ct101 ct102 --label pre-upgrade --expire 7d
    Needs a node that keeps snapshots: Proxmox VE, btrfs, or LVM (directory and OpenVZ
    nodes with snapshotter = "lvm"). A group that would not fit (the file system, the
    volume group's free extents, the thin pool) is refused before any snapshot, with the
    numbers (exit 13).
    """
    app = cli_ctx.app
    ttl = parse_duration(expire) if expire else None
    if expire and ttl is None:
        raise UsageError(f"--expire {expire!r}: expected a duration such as 30m, 12h, 7d, 2w")
    selection = select_targets(app.nodes, list(guests))
    done = take_checkpoint(selection, label, app.catalog, app.locks, app.reporter, app.clock, ttl,
                           notes_to=app.notes_repository())
    result = None
    if with_backup:
        repo = app.repository(app.config.backup_repository)
        result = backup_op(selection, repo, app.catalog, app.locks, app.reporter, app.clock,
                           {**app.config.backup_labels, CHECKPOINT_LABEL: label}, access=app)
    if as_json:
        emit_json("checkpoint", {"checkpoints": [c.to_dict() for c in done],
                                 "backup": result.to_dict() if result else None})
    elif result is not None:
        render_run(result, False)
    if result is not None:
        ctx.exit(run_exit_code(result))


@checkpoint.command("drop")
@click.argument("label", required=False)
@click.argument("guests", nargs=-1, metavar="[GUEST]...")
@click.option("--expired", is_flag=True, help="Every checkpoint past its expiry.")
@click.option("--json", "as_json", is_flag=True, help="Print what was dropped as JSON on stdout.")
@pass_cli
@click.pass_context
def drop(ctx: click.Context, cli_ctx: CliContext, label: str | None, guests: tuple[str, ...],
         expired: bool, as_json: bool) -> None:
    """Remove checkpoint LABEL (of GUESTs, or of every guest that has it), or with --expired
    every expired checkpoint, from the nodes and the catalogue."""
    app = cli_ctx.app
    result = drop_op(app.catalog, app.nodes, app.locks, app.reporter, app.clock, label=label,
                     guests=list(guests), expired=expired, notes_to=app.notes_repository())
    if as_json:
        emit_json("checkpoint-drop", {"dropped": [c.to_dict() for c in result.dropped],
                                      "failed": [{**c.to_dict(), "error": e}
                                                 for c, e in result.failed]})
    elif not result.dropped and not result.failed:
        click.echo("nothing to drop", err=True)
    if result.failed:
        ctx.exit(20)


@cli.command()
@click.argument("guest")
@click.argument("label")
@click.option("--to", "to_node", metavar="NODE",
              help="If the snapshot is gone (its node died), restore the checkpoint's restore "
                   "point (--with-backup) onto NODE instead, replacing the guest there.")
@pass_cli
@click.pass_context
def rollback(ctx: click.Context, cli_ctx: CliContext, guest: str, label: str,
             to_node: str | None) -> None:
    """Put GUEST back exactly as it was at checkpoint LABEL (on the node that holds it).

    \b
    Example: vzbackup rollback ct101 pre-upgrade
    Changes made since the checkpoint are lost. The checkpoint stays (drop it when done).
    """
    app = cli_ctx.app
    try:
        rollback_op(app.catalog, app.nodes, app.locks, app.reporter, guest, label)
    except CheckpointGone as e:
        if to_node is None:
            raise
        app.reporter.warning(f"{e.message}: restoring it onto {to_node}")
        plan = plan_restore(app.catalog, app.nodes, app.repositories(), guest, to_node,
                            point=e.point_id, force=True, access=app)
        result = restore_op(plan, app.catalog, app.locks, app.reporter, app.clock, access=app)
        render_run(result, False)
        ctx.exit(run_exit_code(result))


@cli.command()
@click.argument("guest", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the checkpoints as JSON on stdout.")
@pass_cli
def checkpoints(cli_ctx: CliContext, guest: str | None, as_json: bool) -> None:
    """List checkpoints (of GUEST, or all): label, node, when taken, when they expire."""
    app = cli_ctx.app
    found = list_checkpoints(app.catalog, guest)
    if as_json:
        emit_json("checkpoints", [c.to_dict() for c in found])
        return
    now = app.clock.now()
    t = table("guest", "label", "node", "created (UTC)", "expires (UTC)")
    for c in found:
        expires = f"{c.expires:%Y-%m-%d %H:%M:%S}" if c.expires else "never"
        t.add_row(str(c.guest), c.label, c.node, f"{c.created:%Y-%m-%d %H:%M:%S}",
                  expires + (" (expired)" if c.expired(now) else ""))
    print_table(t)
    if not found:
        click.echo("no checkpoints" + (f" of {guest}" if guest else ""), err=True)
