"""``vzbackup verify``."""

from __future__ import annotations

import click

from ..errors import UsageError
from ..ops.verify import verify as verify_op
from .context import CliContext, pass_cli
from .main import cli
from .render import render_run, run_exit_code


@cli.command()
@click.argument("point", required=False)
@click.option("--all", "all_points", is_flag=True, help="Every restore point in the catalogue.")
@click.option("--quick", is_flag=True, help="Only check that every chunk is present; do not re-read.")
@click.option("--repair", is_flag=True,
              help="Take damaged chunks out (their pack goes to quarantine/, its intact chunks "
                   "are kept), so the next backup stores them anew.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@pass_cli
@click.pass_context
def verify(ctx: click.Context, cli_ctx: CliContext, point: str | None, all_points: bool,
           quick: bool, repair: bool, as_json: bool) -> None:
    """Re-read restore points' copies, check every chunk and the whole stream, and record
    the result. Exit code 7 when a copy is damaged.

    A damaged chunk stays in place, and a new backup would reuse it, until --repair takes it
    out (its pack moves to quarantine/ once its intact chunks are copied to a new pack); the
    next backup of a guest holding the same data then stores it again, and every older point
    that shares it is whole again."""
    if repair and quick:
        raise UsageError("--repair needs a full verify (drop --quick)")
    if bool(point) == all_points:
        raise UsageError("give a restore point id or --all")
    app = cli_ctx.app
    points = app.catalog.points() if all_points else [app.catalog.point(point)]  # type: ignore[arg-type]
    result = verify_op(points, app.repositories(), app.catalog, app.reporter, app.clock,
                       full=not quick, repair=repair, nodes=app.nodes, access=app)
    render_run(result, as_json)
    ctx.exit(run_exit_code(result))
