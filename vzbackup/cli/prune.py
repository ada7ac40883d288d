"""``vzbackup prune``."""

from __future__ import annotations

import click
from rich.text import Text

from ..errors import UsageError
from ..ops.membership import covering_jobs
from ..ops.gc import collect_garbage
from ..ops.prune import PruneItem, apply_prune, plan_prune
from ..ops.selection import resolve_known_guest
from .context import CliContext, check_repositories, pass_cli
from .main import cli
from .gc_render import print_gc
from .render import emit_json, print_table, run_exit_code, table


@cli.command()
@click.argument("guests", nargs=-1, metavar="[GUEST]...")
@click.option("--dry-run", is_flag=True,
              help="Show what would be kept and removed, and what GC would do; remove nothing.")
@click.option("--repository", "-r", "repositories", multiple=True, metavar="NAME",
              help="Only this repository (repeatable) [default: all].")
@click.option("--job", metavar="NAME", help="Only the guests job NAME covers.")
@click.option("--no-gc", is_flag=True,
              help="Remove the manifests only; leave garbage collection to 'vzbackup repo gc' "
                   "or the next prune.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan and result as JSON on stdout.")
@pass_cli
@click.pass_context
def prune(ctx: click.Context, cli_ctx: CliContext, guests: tuple[str, ...], dry_run: bool,
          repositories: tuple[str, ...], job: str | None, no_gc: bool, as_json: bool) -> None:
    """Remove the restore points retention does not keep (of GUESTs, or all), then collect
    garbage in the repositories concerned. Policies: a job's keep_* for its repository,
    else [retention.REPO], else the keep_* of a job replicating there, else keep-all; with
    Proxmox VE's prune-backups semantics. Protected points (label protected=1), each
    guest's newest verified point and points a clone or a branch was made from are always
    kept.

    The space comes back in two phases: GC takes unreferenced packs out of the index now
    and deletes them on a run one grace period (the repository's gc_grace_hours) later, so
    that a backup running meanwhile never loses a chunk. Each repository is pruned under
    its lock (exit 11 if another prune or GC holds it); backups need no lock.
    """
    app = cli_ctx.app
    check_repositories(app.config, repositories, "--repository")
    if job is not None and job not in app.config.jobs:
        raise UsageError(f"--job {job}: no such job (known: "
                         f"{', '.join(sorted(app.config.jobs)) or 'none'})")
    covering = covering_jobs(app.config.jobs, app.catalog)
    known = app.catalog.guests()
    refs = {resolve_known_guest(known, g) for g in guests}
    points = [p for p in app.catalog.points() if (not refs or p.guest in refs) and
              (job is None or any(j.name == job for j in covering.get(p.guest, [])))]
    plan = plan_prune(points, covering, app.config.retention, repositories or None,
                      app.catalog.clones(), app.catalog.branches())
    if dry_run:
        _dry_run(app, plan, no_gc, as_json)
        return
    opened = app.repositories()
    result, collected = apply_prune(plan, opened, app.catalog, app.job_locks, app.reporter,
                                    app.clock, app.gc_grace_hours, gc=not no_gc,
                                    run_args={"guests": list(guests), "job": job},
                                    nodes=app.nodes, access=app)
    if as_json:
        emit_json("prune", {"plan": plan, "result": result.to_dict()})
    else:
        failed = {(o.point_id, o.node): o for o in result.items if o.status == "failed"}
        _plan_table(plan, lambda i: "failed" if (i.point, i.repository) in failed else
                    "removed" if i.decision == "remove" else "kept")
        print_gc(collected)
    removed = result.details["removed"]
    click.echo(f"{len(plan) - sum(1 for i in plan if i.decision == 'remove')} kept, {removed} "
               f"removed", err=True)
    _mention_expired_checkpoints(app)
    ctx.exit(run_exit_code(result))


def _dry_run(app, plan: list[PruneItem], no_gc: bool, as_json: bool) -> None:
    collected = [] if no_gc else collect_garbage(
        app.repositories(), sorted({i.repository for i in plan}), app.job_locks, app.clock,
        app.reporter, app.gc_grace_hours, dry_run=True, nodes=app.nodes, access=app)
    if as_json:
        emit_json("prune-plan", plan)
        return
    _plan_table(plan, lambda i: i.decision)
    print_gc(collected)
    _mention_expired_checkpoints(app)
    remove = sum(1 for i in plan if i.decision == "remove")
    click.echo(f"{len(plan) - remove} kept, {remove} would be removed (dry run: nothing "
               "removed; GC counts what is unreferenced now, before these removals)", err=True)


def _plan_table(plan: list[PruneItem], decision) -> None:
    t = table("guest", "repository", "point", "created (UTC)", "decision", "reason", "policy")
    for item in plan:
        shown = decision(item)
        t.add_row(str(item.guest), item.repository, item.point[:12],
                  item.created[:16].replace("T", " "),
                  Text(shown, style="yellow" if shown in ("remove", "removed") else
                       "red" if shown == "failed" else ""),
                  Text(item.reason), f"{item.policy} ({item.source})")
    print_table(t)


def _mention_expired_checkpoints(app) -> None:
    now = app.clock.now()
    expired = [c for c in app.catalog.checkpoints() if c.expired(now)]
    if expired:
        names = ", ".join(f"{c.label} of {c.guest}" for c in expired)
        click.echo(f"expired checkpoints: {names} ('vzbackup checkpoint drop --expired' or the "
                   "daemon's next job run removes them)", err=True)
