"""``vzbackup clone`` and ``vzbackup clones``."""

from __future__ import annotations

import click

from ..errors import UsageError
from ..ops.backup import backup as backup_op
from ..ops.clone import clone as clone_op, list_clones, plan_clone
from ..ops.selection import select_targets
from .context import CliContext, pass_cli
from .main import cli
from .render import emit_json, print_table, render_run, run_exit_code, table
from .restore import _parse_time


@cli.command()
@click.argument("guest")
@click.option("--to", "to_node", required=True, metavar="NODE", help="Node to create the clone on.")
@click.option("--as", "as_id", type=int, metavar="VMID",
              help="The clone's VMID [default: the next free one cluster-wide].")
@click.option("--hostname", metavar="NAME", help="The clone's hostname [default: <source>-clone<VMID>].")
@click.option("--point", metavar="ID", help="Restore point id (or a unique prefix) [default: newest].")
@click.option("--at", metavar="TIME", help="Newest point taken at or before TIME (ISO 8601, UTC unless a zone is given).")
@click.option("--fresh", is_flag=True, help="Back GUEST up now and clone that point.")
@click.option("--network", metavar="MAP",
              help="Network remap, comma-separated: OLD=NEW bridges (vmbr0=vmbr9), 'isolated' "
                   "(no bridge at all), 'keep-ip' (keep static addresses) [default: same "
                   "bridges, static addresses dropped].")
@click.option("--start", is_flag=True,
              help="Start the clone once it is made (pct/qm start, vzctl start). Refused, "
                   "before anything is made, while an interface would stay on a bridge of the "
                   "source or keep its address, and on directory nodes.")
@click.option("--allow-production-network", is_flag=True,
              help="With --start: start it even on the source's bridges (it may then reach "
                   "production's databases, queues and mail).")
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@pass_cli
@click.pass_context
def clone(ctx: click.Context, cli_ctx: CliContext, guest: str, to_node: str, as_id: int | None,
          hostname: str | None, point: str | None, at: str | None, fresh: bool,
          network: str | None, start: bool, allow_production_network: bool, dry_run: bool,
          as_json: bool) -> None:
    """Create a new guest on NODE from a restore point of GUEST.

    \b
    Example: vzbackup clone ct101 --to node3 --hostname staging-web --network vmbr0=vmbr9
    The clone gets a new VMID, new MAC addresses and its hostname; static IP addresses are
    dropped unless --network keep-ip. Its lineage is recorded (vzbackup clones) and the
    point it came from is never pruned while the clone is recorded. With --start it is
    started, but only off production's bridges (--network isolated or OLD=NEW for each).
    """
    app = cli_ctx.app
    if sum(1 for x in (point, at, fresh) if x) > 1:
        raise UsageError("give one of --point, --at and --fresh")
    if allow_production_network and not start:
        raise UsageError("--allow-production-network goes with --start")
    if fresh and not dry_run:
        point = _fresh_point(ctx, cli_ctx, guest)
    plan = plan_clone(app.catalog, app.nodes, app.repositories(), guest, to_node, point=point,
                      at=_parse_time(at) if at else None, as_id=as_id, hostname=hostname,
                      network=network, access=app, start=start,
                      allow_production_network=allow_production_network)
    if dry_run:
        if as_json:
            emit_json("clone-plan", plan.to_dict())
        else:
            click.echo(plan.describe() + (" (with --fresh: from a backup taken now)" if fresh else ""))
        return
    app.reporter.info(plan.describe())
    result = clone_op(plan, app.catalog, app.locks, app.reporter, app.clock)
    render_run(result, as_json)
    ctx.exit(run_exit_code(result))


def _fresh_point(ctx: click.Context, cli_ctx: CliContext, guest: str) -> str:
    app = cli_ctx.app
    selection = select_targets(app.nodes, [guest])
    repo = app.repository(app.config.backup_repository)
    result = backup_op(selection, repo, app.catalog, app.locks, app.reporter, app.clock,
                       {**app.config.backup_labels, "purpose": "clone"}, access=app)
    item = result.items[0]
    if item.status != "ok" or not item.point_id:
        render_run(result, False)
        ctx.exit(run_exit_code(result))
    return str(item.point_id)


@cli.command()
@click.argument("guest", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the clones as JSON on stdout.")
@pass_cli
def clones(cli_ctx: CliContext, guest: str | None, as_json: bool) -> None:
    """List clones (of GUEST, or all) with their lineage: source guest, restore point, node,
    hostname, network map and when they were made. Their points are pinned against pruning."""
    found = list_clones(cli_ctx.app.catalog, guest)
    if as_json:
        emit_json("clones", [c.to_dict() for c in found])
        return
    t = table("clone", "hostname", "node", "source", "point", "created (UTC)", "network")
    for c in found:
        t.add_row(str(c.clone), c.hostname, c.node, str(c.source), c.point_id[:12],
                  f"{c.created:%Y-%m-%d %H:%M:%S}", c.network)
    print_table(t)
    if not found:
        click.echo("no clones" + (f" of {guest}" if guest else ""), err=True)
