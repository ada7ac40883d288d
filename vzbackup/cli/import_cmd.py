"""``vzbackup import`` and ``vzbackup export``."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import UsageError
from ..ops.export import export_point
from ..ops.imports import import_archives
from .context import CliContext, pass_cli
from .main import cli
from .render import emit_json, render_run, run_exit_code

COMPRESS = {"0": None, "1": "lzo", "gzip": "gzip", "lzo": "lzo", "zstd": "zstd"}


@cli.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="PATH...")
@click.option("--repository", "-r", metavar="NAME", help="Repository to store into [default: backup.repository].")
@click.option("--node", "source_node", default="import", show_default=True, metavar="NODE",
              help="The node the archives were made on (recorded as the points' source).")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Label the restore points.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@pass_cli
@click.pass_context
def import_(ctx: click.Context, cli_ctx: CliContext, paths: tuple[Path, ...], repository: str | None,
            source_node: str, labels: tuple[str, ...], as_json: bool) -> None:
    """Store vzdump archives (files, or every vzdump-* file in a folder) as restore points.

    \b
    Names: vzdump-<lxc|qemu|openvz>-<VMID>-<YYYY_MM_DD-hh_mm_ss>.<tar|vma>[.gz|.lzo|.zst|.bz2]
    or .tgz; the time is read as this host's local time. Archives are stored decompressed
    (they deduplicate), with their .notes, .protected and .log sidecars; one imported before
    is not stored again. A hostile archive (members outside the guest) is refused, exit 9.
    """
    app = cli_ctx.app
    bad = [lbl for lbl in labels if "=" not in lbl]
    if bad:
        raise UsageError(f"--label {bad[0]!r}: expected KEY=VALUE")
    repo = app.repository(repository or app.config.backup_repository)
    result = import_archives(list(paths), repo, app.catalog, app.archives, app.reporter, app.clock,
                             source_node=source_node,
                             labels=dict(lbl.split("=", 1) for lbl in labels))
    render_run(result, as_json)
    ctx.exit(run_exit_code(result))


@cli.command()
@click.argument("point")
@click.option("--to", "to_dir", required=True, type=click.Path(path_type=Path), metavar="DIR",
              help="Folder to write the archive into (a PVE dump folder: /var/lib/vz/dump).")
@click.option("--compress", type=click.Choice(list(COMPRESS)), default="0", show_default=True,
              help="As vzdump's --compress: 0 none, 1 or lzo, gzip, zstd.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@pass_cli
def export(cli_ctx: CliContext, point: str, to_dir: Path, compress: str, as_json: bool) -> None:
    """Write restore point POINT as the vzdump archive that 'pct restore' (containers) or
    'qmrestore' (VMs) accepts, named as vzdump names it, with its .notes, .protected and
    .log sidecars.

    \b
    Example: vzbackup export 3f2a9c01d4e5 --to /var/lib/vz/dump --compress zstd
    then on the PVE node: pct restore 101 /var/lib/vz/dump/vzdump-lxc-101-....tar.zst
    """
    app = cli_ctx.app
    found = app.catalog.point(point)
    done = export_point(found, app.repositories(), app.archives, to_dir, COMPRESS[compress])
    if as_json:
        emit_json("export", done)
    else:
        app.reporter.info(f"restore point {found.id[:12]} of {found.guest} written from "
                          f"{done.repository}")
        click.echo(done.path)
