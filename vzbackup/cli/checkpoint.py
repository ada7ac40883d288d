"""``vzbackup checkpoint``, ``checkpoint drop``, ``rollback`` and ``checkpoints``."""

from __future__ import annotations

import click

from ..domain.checkpoints import parse_duration
from ..errors import UsageError
from ..ops.checkpoint import drop as drop_op, list_checkpoints, rollback as rollback_op, take_checkpoint
from ..ops.selection import select_targets
from .context import CliContext, pass_cli
from .main import cli
from .render import emit_json, print_table, table


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
@click.option("--json", "as_json", is_flag=True, help="Print the checkpoints as JSON on stdout.")
@pass_cli
def take(cli_ctx: CliContext, guests: tuple[str, ...], label: str, expire: str | None,
         as_json: bool) -> None:
    """Checkpoint GUESTs as one group: all of them, or (on any failure) none.

    \b
    Example: vzbackup checkpoint ct101 ct102 --label pre-upgrade --expire 7d
    Needs a platform that keeps snapshots: Proxmox VE, or the directory platform on btrfs.
    """
    app = cli_ctx.app
    ttl = parse_duration(expire) if expire else None
    if expire and ttl is None:
        raise UsageError(f"--expire {expire!r}: expected a duration such as 30m, 12h, 7d, 2w")
    selection = select_targets(app.nodes, list(guests))
    done = take_checkpoint(selection, label, app.catalog, app.locks, app.reporter, app.clock, ttl)
    if as_json:
        emit_json("checkpoint", [c.to_dict() for c in done])


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
                     guests=list(guests), expired=expired)
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
@pass_cli
def rollback(cli_ctx: CliContext, guest: str, label: str) -> None:
    """Put GUEST back exactly as it was at checkpoint LABEL (on the node that holds it).

    \b
    Example: vzbackup rollback ct101 pre-upgrade
    Changes made since the checkpoint are lost. The checkpoint stays (drop it when done).
    """
    app = cli_ctx.app
    rollback_op(app.catalog, app.nodes, app.locks, app.reporter, guest, label)


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
