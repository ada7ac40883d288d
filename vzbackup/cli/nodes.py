"""``vzbackup nodes``."""

from __future__ import annotations

import click

from .. import __version__
from ..errors import NodeUnreachable
from ..ops.nodes import survey
from .context import CliContext, pass_cli
from .main import cli
from .render import emit_json, print_table, table


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the nodes as JSON on stdout.")
@pass_cli
@click.pass_context
def nodes(ctx: click.Context, cli_ctx: CliContext, as_json: bool) -> None:
    """Check every configured node: reachable, its vzbackup agent's version (SSH nodes),
    how many guests it holds. Exits 5 when a node does not answer."""
    found = survey(cli_ctx.app.nodes)
    if as_json:
        emit_json("nodes", found)
    else:
        t = table("node", "transport", "status", "guests", "agent")
        for s in found:
            agent = s.agent_version or "-"
            if s.agent_version and s.agent_version != __version__:
                agent += f" (here: {__version__})"
            t.add_row(s.node, s.transport, "ok" if s.ok else "FAILED", str(s.guests) if s.ok else "-",
                      agent)
        print_table(t)
        for s in found:
            if not s.ok:
                click.echo(f"error: {s.error}" + (f"\nnext step: {s.hint}" if s.hint else ""),
                           err=True)
    failed = [s for s in found if not s.ok]
    if failed:
        ctx.exit(failed[0].exit_code if len({s.exit_code for s in failed}) == 1
                 else NodeUnreachable.exit_code)
