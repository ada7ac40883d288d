"""``vzbackup restore``."""

from __future__ import annotations

from datetime import datetime, timezone

import click

from ..errors import UsageError
from ..ops.restore import plan_restore, restore as restore_op
from .context import CliContext, pass_cli
from .main import cli
from .render import emit_json, render_run, run_exit_code


@cli.command()
@click.argument("guest")
@click.option("--to", "to_node", required=True, metavar="NODE", help="Node to restore onto.")
@click.option("--point", metavar="ID", help="Restore point id (or a unique prefix) [default: newest].")
@click.option("--at", metavar="TIME", help="Newest point taken at or before TIME (ISO 8601, UTC unless a zone is given).")
@click.option("--as", "as_id", type=int, metavar="VMID", help="Restore under another VMID.")
@click.option("--force", is_flag=True, help="Replace the target guest if it exists.")
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@pass_cli
@click.pass_context
def restore(ctx: click.Context, cli_ctx: CliContext, guest: str, to_node: str, point: str | None,
            at: str | None, as_id: int | None, force: bool, dry_run: bool, as_json: bool) -> None:
    """Restore GUEST from a restore point onto node NODE.

    \b
    Example: vzbackup restore ct101 --to node7
    The guest is put in place only after its whole stream was read and verified.
    Copies are tried nearest first (NODE's own disk, this host, a peer node, S3); a copy
    that cannot be read is skipped, a damaged one marked corrupt. --dry-run shows the
    order and why. On an SSH node the restore runs on the node, which reads the copy itself.
    """
    app = cli_ctx.app
    plan = plan_restore(app.catalog, app.nodes, app.repositories(), guest, to_node, point=point,
                        at=_parse_time(at) if at else None, as_id=as_id, force=force,
                        access=app)
    if dry_run:
        if as_json:
            emit_json("restore-plan", {"point": plan.point.id, "guest": str(plan.point.guest),
                                       "target": str(plan.target), "node": plan.node.name,
                                       "sources": [r.name for r in plan.sources],
                                       "reasons": list(plan.reasons)})
        else:
            click.echo(plan.describe())
        return
    app.reporter.info(plan.describe())
    result = restore_op(plan, app.catalog, app.locks, app.reporter, app.clock, access=app)
    render_run(result, as_json)
    ctx.exit(run_exit_code(result))


def _parse_time(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--at {text!r}: expected ISO 8601 time such as 2026-11-24T02:00") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)
