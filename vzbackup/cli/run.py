"""``vzbackup run JOB``: a job's scheduled action, now."""

from __future__ import annotations

import dataclasses

import click

from ..errors import UsageError
from ..ops.job import run_job, verify_job
from ..scheduler.runlog import run_log
from ..wiring import secrets_of
from .context import CliContext, pass_cli
from .main import cli
from .render import render_run, run_exit_code


@cli.command()
@click.argument("job")
@click.option("--verify", "verify_only", is_flag=True,
              help="Run the job's scheduled verification (verify_level) instead.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@pass_cli
@click.pass_context
def run(ctx: click.Context, cli_ctx: CliContext, job: str, verify_only: bool, as_json: bool) -> None:
    """Run job JOB (a [jobs.JOB] table of the config) now, as the daemon would: back up its
    guests, replicate them, verify what was written, and report what retention would
    remove (nothing is removed), and drop expired checkpoints. One summary goes to [alerts]. Exit 11 if the job is
    already running; otherwise as 'backup'."""
    app = cli_ctx.app
    if job not in app.config.jobs:
        raise UsageError(f"no job named {job!r} in {app.config.path} "
                         f"(known: {', '.join(sorted(app.config.jobs)) or 'none'})",
                         hint="Add a [jobs.NAME] table, or pick a configured job.")
    action = verify_job if verify_only else run_job
    with run_log(app.config.state_dir, f"vzbackup-job:{job}:{'verify' if verify_only else 'backup'}", secrets_of(app.config)) as log:
        env = dataclasses.replace(app.job_env(), on_started=log.started)
        result = action(app.config.jobs[job], env, trigger="manual")
    render_run(result, as_json)
    ctx.exit(run_exit_code(result))
