"""``vzbackup branch create|list|show|refresh|destroy|export|import``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import click

from ..domain.branch import BranchRecord
from ..domain.guests import GuestRef
from ..errors import UsageError
from ..ops.backup import backup as backup_op
from ..ops.branch import (create_branch, destroy_branch, find_branch, plan_branch, refresh_branch,
                          refresh_plan)
from ..ops.bundle import export_branch, import_branch
from ..ops.selection import Selection, select_targets
from .context import CliContext, pass_cli
from .main import cli
from .render import emit_json, print_table, render_run, run_exit_code, table
from .restore import _parse_time


@cli.group()
def branch() -> None:
    """Branches: clones of several production guests from one consistent set of restore
    points, on one node, on an isolated network, sanitized, tracked with their lineage;
    exported as one verifiable file and imported where production cannot be reached.
    See docs/runbooks/branch-for-a-trade-show.md."""


def _when_options(f):
    f = click.option("--fresh", is_flag=True,
                     help="Back every member's source up now (one run) and use those points.")(f)
    return click.option("--at", metavar="TIME",
                        help="Each guest's newest point taken at or before TIME (ISO 8601, UTC "
                             "unless a zone is given) [default: each guest's newest].")(f)


@branch.command("create")
@click.argument("name")
@click.option("--guests", metavar="LIST", help="The source guests, comma-separated: ct101,ct102,vm200.")
@click.option("--tag", metavar="TAG", help="Every guest with this tag (read from the nodes) instead.")
@click.option("--to", "to_node", required=True, metavar="NODE", help="The node the branch lives on.")
@click.option("--network", metavar="isolated|BRIDGE",
              help="'isolated': interfaces on no bridge; BRIDGE: every interface on this bridge, "
                   "which no source guest may use. Static addresses are always dropped "
                   "[default: isolated].")
@click.option("--sanitize", "sanitize", multiple=True, metavar="SCRIPT",
              help="An executable on NODE run for every member, in order (repeatable): it gets "
                   "the clone's root file system as $1 (containers, directory guests; none for "
                   "Proxmox VMs) and VZBACKUP_BRANCH/GUEST/SOURCE/HOSTNAME/KIND in its "
                   "environment. The branch then ships backups of the sanitized clones.")
@_when_options
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the branch as JSON on stdout.")
@pass_cli
@click.pass_context
def create(ctx: click.Context, cli_ctx: CliContext, name: str, guests: str | None, tag: str | None,
           to_node: str, network: str | None, sanitize: tuple[str, ...], at: str | None,
           fresh: bool, dry_run: bool, as_json: bool) -> None:
    """Create branch NAME on NODE: every member cloned (next free VMIDs cluster-wide, new MAC
    addresses, hostname <source>-NAME), all of them or (on any failure) none.

    \b
    Example: vzbackup branch create expo-2026 --guests ct101,ct102,vm200 --to node-demo \\
               --sanitize /root/scrub-customers.sh
    The points it was made from (and ships) are never pruned while the branch is recorded.
    """
    app = cli_ctx.app
    if at and fresh:
        raise UsageError("give --at or --fresh, not both")
    names = [g.strip() for g in (guests or "").split(",") if g.strip()]
    points = _fresh_points(ctx, cli_ctx, names, tag) if fresh and not dry_run else None
    repos = app.repositories()
    plan = plan_branch(app.catalog, app.nodes, repos, name, to_node, guests=names,
                       tag=tag, network=network, sanitize=sanitize,
                       at=_parse_time(at) if at else None, points=points, access=app)
    if dry_run:
        if as_json:
            emit_json("branch-plan", plan.to_dict())
        else:
            click.echo(plan.describe() + ("\n(with --fresh: from backups taken now)" if fresh else ""))
        return
    app.reporter.info(plan.describe())
    record = create_branch(plan, app.catalog, app.locks, app.reporter, app.clock,
                           repo_for_sanitized=_backup_repo(cli_ctx), labels=app.config.backup_labels,
                           access=app, repos=repos)
    _show(record, as_json, "branch-create")


@branch.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the branches as JSON on stdout.")
@pass_cli
def list_(cli_ctx: CliContext, as_json: bool) -> None:
    """List branches: node, members, network, when made, where from."""
    found = cli_ctx.app.catalog.branches()
    if as_json:
        emit_json("branches", [b.to_dict() for b in found])
        return
    t = table("branch", "node", "guests", "network", "created (UTC)", "points at", "origin")
    for b in found:
        t.add_row(b.name, b.node, " ".join(str(m.clone) for m in b.members), b.network,
                  f"{b.created:%Y-%m-%d %H:%M:%S}", f"{b.at:%Y-%m-%d %H:%M}" if b.at else "newest",
                  b.origin)
    print_table(t)
    if not found:
        click.echo("no branches", err=True)


@branch.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the branch as JSON on stdout.")
@pass_cli
def show(cli_ctx: CliContext, name: str, as_json: bool) -> None:
    """Show branch NAME: each member with its source guest, the point it came from and the
    point the branch ships (a sanitized clone's own, when scripts ran)."""
    _show(find_branch(cli_ctx.app.catalog, name), as_json, "branch")


def _show(b: BranchRecord, as_json: bool, command: str) -> None:
    if as_json:
        emit_json(command, b.to_dict())
        return
    click.echo(f"branch {b.name} on {b.node}, network {b.network}, created "
               f"{b.created:%Y-%m-%d %H:%M:%S} UTC, {b.origin}"
               + (f", sanitize: {', '.join(b.sanitize)}" if b.sanitize else ""))
    t = table("clone", "hostname", "source", "point", "shipped point")
    for m in b.members:
        t.add_row(str(m.clone), m.hostname, str(m.source), m.point_id[:12], m.shipped_id[:12])
    print_table(t)


@branch.command("refresh")
@click.argument("name")
@_when_options
@click.option("--json", "as_json", is_flag=True, help="Print the branch as JSON on stdout.")
@pass_cli
@click.pass_context
def refresh(ctx: click.Context, cli_ctx: CliContext, name: str, at: str | None, fresh: bool,
            as_json: bool) -> None:
    """Make branch NAME's members again from newer points (same hostnames, network and
    sanitize scripts; new VMIDs), then remove the old members. Changes made in the old
    members are lost. All or nothing: if a new member fails, the old branch stays."""
    app = cli_ctx.app
    if at and fresh:
        raise UsageError("give --at or --fresh, not both")
    old = find_branch(app.catalog, name)
    points = (_fresh_points(ctx, cli_ctx, [str(m.source) for m in old.members], None)
              if fresh else None)
    repos = app.repositories()
    plan = refresh_plan(app.catalog, app.nodes, repos, old,
                        at=_parse_time(at) if at else None, points=points, access=app)
    app.reporter.info(plan.describe())
    record = refresh_branch(plan, old, app.catalog, app.nodes, app.locks, app.reporter,
                            app.clock, repo_for_sanitized=_backup_repo(cli_ctx),
                            labels=app.config.backup_labels, access=app, repos=repos)
    _show(record, as_json, "branch-refresh")


@branch.command("destroy")
@click.argument("name")
@click.option("--force", is_flag=True,
              help="Remove members even when one's VMID now holds a guest with another name.")
@click.option("--json", "as_json", is_flag=True, help="Print what was removed as JSON on stdout.")
@pass_cli
def destroy(cli_ctx: CliContext, name: str, force: bool, as_json: bool) -> None:
    """Remove branch NAME: its members from its node (stopped first if running; what was
    changed in them is lost), then its record, which unpins its points (an imported
    branch's unpacked bundle goes too). Refuses, removing nothing, when a member's VMID
    holds a guest with another name than the branch gave it, unless --force."""
    app = cli_ctx.app
    record = destroy_branch(app.catalog, app.nodes, app.locks, app.reporter, app.clock, name,
                            force=force, bundle_dir=app.bundle_dir,
                            repos=None if _imported(app, name) else app.repositories())
    if as_json:
        emit_json("branch-destroy", record.to_dict())
    else:
        click.echo(f"branch {name} destroyed: {' '.join(str(m.clone) for m in record.members)} "
                   f"removed from {record.node}", err=True)


@branch.command("export")
@click.argument("name")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the bundle's digest and size as JSON.")
@pass_cli
def export(cli_ctx: CliContext, name: str, file: Path, as_json: bool) -> None:
    """Write branch NAME to FILE: one self-contained bundle (a tar holding the points the
    branch ships as a mini repository, its description, and a seal over every byte);
    encrypted, with the repository's key sealed by its passphrase, when the repository is.
    Prints the bundle's digest: compare it on import (--expect)."""
    app = cli_ctx.app
    info = export_branch(app.catalog, app.repositories(), app.bundles(), app.reporter, app.clock,
                         name, file)
    if as_json:
        emit_json("branch-export", {"path": info.path, "digest": info.digest, "size": info.size,
                                    "points": info.points, "encrypted": info.encrypted})
    else:
        click.echo(f"{info.path}: {info.size} bytes, {info.points} points"
                   f"{', encrypted' if info.encrypted else ''}; digest {info.digest}")


@branch.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--to", "to_node", required=True, metavar="NODE", help="The node to recreate it on.")
@click.option("--name", metavar="NAME", help="Record it under this name [default: its own].")
@click.option("--network", metavar="isolated|BRIDGE",
              help="The members' network here [default: the branch's own].")
@click.option("--expect", metavar="DIGEST", help="Refuse the bundle unless its digest is this one "
              "(printed by export).")
@click.option("--passphrase-file", metavar="FILE",
              help="The passphrase of the repository an encrypted bundle came from, in a file.")
@click.option("--passphrase-env", metavar="VAR", help="... or in this environment variable.")
@click.option("--json", "as_json", is_flag=True, help="Print the branch as JSON on stdout.")
@pass_cli
def import_(cli_ctx: CliContext, file: Path, to_node: str, name: str | None, network: str | None,
            expect: str | None, passphrase_file: str | None, passphrase_env: str | None,
            as_json: bool) -> None:
    """Recreate a branch from bundle FILE on NODE, asking nothing of production: the bundle
    is checked whole first (a changed, truncated or extended one is refused and nothing is
    written), unpacked under the state folder, and every member is made (its recorded VMID
    if free here, new MAC addresses), all or none."""
    app = cli_ctx.app
    bundles = app.bundles(passphrase_file, passphrase_env)
    done = import_branch(bundles, file, app.bundle_dir, app.catalog, app.nodes, app.locks,
                         app.reporter, app.clock, to_node, name=name, network=network,
                         expect=expect)
    if as_json:
        emit_json("branch-import", done.to_dict())
        return
    click.echo(f"bundle digest {done.digest}", err=True)
    _show(done.branch, False, "branch-import")


def _imported(app, name: str) -> bool:
    """An imported branch's points are not in the configured (production) repositories:
    they are not opened (they may be unreachable)."""
    return find_branch(app.catalog, name).imported


def _backup_repo(cli_ctx: CliContext):
    app = cli_ctx.app
    return app.repository(app.config.backup_repository)


def _fresh_points(ctx: click.Context, cli_ctx: CliContext, guests: list[str],
                  tag: str | None) -> Mapping[GuestRef, str]:
    """Back every source up now, in one run; their points, or exit as the backup would."""
    app = cli_ctx.app
    if tag and not guests:
        found = select_targets(app.nodes, [], all_guests=True)
        selection = Selection([t for t in found.targets if tag in t.guest.tags], found.unreachable)
    else:
        selection = select_targets(app.nodes, guests)
    result = backup_op(selection, _backup_repo(cli_ctx), app.catalog, app.locks, app.reporter,
                       app.clock, {**app.config.backup_labels, "purpose": "branch"}, access=app)
    if result.status != "success" or not result.items:
        render_run(result, False)
        ctx.exit(run_exit_code(result) or 2)
    return {t.guest.ref: str(i.point_id) for t, i in zip(selection.targets, result.items)}
