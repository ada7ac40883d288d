"""``vzbackup points``."""

from __future__ import annotations

import click

from ..ops.points import list_points
from .context import CliContext, pass_cli
from .main import cli
from .render import emit_json, human_bytes, print_table, table


@cli.command()
@click.argument("guest", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the points as JSON on stdout.")
@pass_cli
def points(cli_ctx: CliContext, guest: str | None, as_json: bool) -> None:
    """List restore points (of GUEST, or of every guest): time, size, new bytes stored,
    where the copies are, whether they are protected (never removed by retention) and
    the first line of their notes."""
    found = list_points(cli_ctx.app.catalog, guest)
    if as_json:
        emit_json("points", found)
        return
    t = table("guest", "name", "point", "created (UTC)", "size", "new", "node", "copies",
              "protected", "notes")
    for p in found:
        copies = ", ".join(f"{c.repository}:{c.state}" for c in p.copies) or "-"
        t.add_row(str(p.guest), p.guest_name, p.id[:12], f"{p.created:%Y-%m-%d %H:%M:%S}",
                  human_bytes(p.size), human_bytes(p.new_bytes), p.source_node, copies,
                  "yes" if p.protected else "-", _first_line(p.notes))
    print_table(t)
    if not found:
        click.echo("no restore points" + (f" for {guest}" if guest else ""), err=True)


def _first_line(notes: str, width: int = 40) -> str:
    line = notes.strip().splitlines()[0] if notes.strip() else "-"
    return line if len(line) <= width else line[:width - 3] + "..."
