"""``vzbackup status``."""

from __future__ import annotations

import click
from rich.text import Text

from ..errors import PastRpo
from ..ops.status import guest_status
from .context import CliContext, pass_cli
from .main import cli
from .render import emit_json, print_table, table



@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON on stdout.")
@pass_cli
@click.pass_context
def status(ctx: click.Context, cli_ctx: CliContext, as_json: bool) -> None:
    """Per guest: the newest good restore point and its age against its job's RPO, how
    many good copies it has and where, and the last failure. Guests past their RPO are
    marked PAST RPO, and the exit code is then 101."""
    app = cli_ctx.app
    found = guest_status(app.catalog, app.config.jobs, app.clock.now())
    if as_json:
        emit_json("status", found)
    else:
        t = table("guest", "name", "jobs", "newest good point", "age", "RPO", "copies",
                  "last failure")
        for s in found:
            point = (f"{s.last_good_point[:12]} {s.last_good_created:%Y-%m-%d %H:%M}"
                     if s.last_good_point and s.last_good_created else "none")
            late = "bold red" if s.past_rpo else ""
            age = Text(_age(s.age_hours), style=late)
            rpo = Text(("PAST " if s.past_rpo else "") + (f"{s.rpo_hours} h" if s.rpo_hours
                                                             else "-"), style=late)
            failure = (f"{s.last_failure_at:%Y-%m-%d %H:%M} run {s.last_failure_run}: "
                       f"{s.last_failure}" if s.last_failure_at else "-")
            t.add_row(Text(s.guest, style=late), s.name, ",".join(s.jobs) or "-", point, age, rpo,
                      f"{s.copies} ({', '.join(s.where)})" if s.copies else "0", Text(failure))
        print_table(t)
        late = [s.guest for s in found if s.past_rpo]
        if late:
            click.echo(f"{len(late)} guest(s) past their RPO: {', '.join(late)}", err=True)
    if any(s.past_rpo for s in found):
        ctx.exit(PastRpo.exit_code)


def _age(hours: float | None) -> str:
    if hours is None:
        return "-"
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} d"
