"""``vzbackup repo``: create a repository, index its packs again, collect its garbage."""

from __future__ import annotations

import click

from ..errors import RepositoryError
from ..ops.gc import collect_garbage
from .context import CliContext, check_repositories, pass_cli
from .gc_render import echo_totals, gc_exit_code, gc_json, print_gc
from .main import cli
from .render import emit_json


@cli.group("repo")
def repo_group() -> None:
    """Manage repositories."""


@repo_group.command("init")
@click.argument("name", required=False)
@pass_cli
def init(cli_ctx: CliContext, name: str | None) -> None:
    """Initialise repository NAME (default: backup.repository) at its configured URL.

    With encryption, the passphrase is read from passphrase_file or passphrase_env;
    keep a copy of it elsewhere: without it the repository cannot be read.
    """
    app = cli_ctx.app
    repo = app.init_repository(name or app.config.backup_repository)
    app.reporter.info(f"repository {repo.name} initialised at {repo.url}")


@repo_group.command("reindex")
@click.argument("name", required=False)
@pass_cli
@click.pass_context
def reindex(ctx: click.Context, cli_ctx: CliContext, name: str | None) -> None:
    """Index again the packs of repository NAME (default: backup.repository) that no index
    object names: after index objects were lost or damaged, or a copy of a repository
    came without them. Each pack is checked against its id first; a torn or damaged one is
    left out and counted (exit 7). Safe to run any time: it only adds index objects."""
    app = cli_ctx.app
    repo = app.repository(name or app.config.backup_repository)
    stats = repo.index_unnamed_packs()
    app.reporter.info(f"repository {repo.name}: {stats.packs} pack(s) holding {stats.chunks} "
                      f"chunk(s) indexed again; {stats.rejected} damaged pack(s) left out")
    if stats.rejected:
        ctx.exit(7)


@repo_group.command("gc")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("--dry-run", is_flag=True, help="Show what would be taken out and deleted; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the reports as JSON on stdout.")
@pass_cli
@click.pass_context
def gc(ctx: click.Context, cli_ctx: CliContext, names: tuple[str, ...], dry_run: bool,
       as_json: bool) -> None:
    """Collect garbage in repositories NAME (default: all): give back the space of chunks
    no restore point references ('vzbackup prune' runs it after removing points).

    Two phases: packs older than the grace period (the repository's gc_grace_hours) whose
    chunks no manifest references are taken out of the index now (mostly unreferenced ones
    have their referenced chunks copied to a new pack first); a run one grace period later
    deletes them, unless a point written meanwhile needs them. A backup running during GC
    never loses a chunk. Stops without removing anything if a manifest cannot be read.
    Exit 11 when another prune or GC of a repository holds its lock."""
    app = cli_ctx.app
    check_repositories(app.config, names, "repository")
    wanted = list(names) or sorted(app.config.repositories)
    collected = collect_garbage(app.repositories(wanted), wanted, app.job_locks, app.clock,
                                app.reporter, app.gc_grace_hours, dry_run=dry_run,
                                nodes=app.nodes, access=app)
    if as_json:
        emit_json("repo-gc", gc_json(collected))
    else:
        print_gc(collected)
        echo_totals(collected)
    missing = [n for n in wanted if n not in {c.repository for c in collected}]
    ctx.exit(gc_exit_code(collected) or (RepositoryError.exit_code if missing else 0))
