"""Prometheus metrics in node_exporter's textfile format, from the catalogue's job runs:
per job and guest, the last success time, bytes read and duration; per job, the last run's
time and status. Written after every job run (``monitoring.textfile`` writes the file)."""

from __future__ import annotations

from datetime import datetime

from ..ports import Catalog
from .status import GuestStatus

RECENT_JOB_RUNS = 500
STATUSES = ("success", "partial", "error", "aborted", "running")

HELP = {
    "vzbackup_last_success_timestamp_seconds": "When the guest's last successful job run ended.",
    "vzbackup_last_success_bytes": "Bytes read from the guest by its last successful backup.",
    "vzbackup_last_success_duration_seconds": "How long the guest's last successful backup took.",
    "vzbackup_job_last_run_timestamp_seconds": "When the job's last run started.",
    "vzbackup_job_last_run_status": "1 for the status of the job's last run, 0 for the others.",
    "vzbackup_guest_past_rpo": "1 when the guest has no good restore point within its RPO.",
    "vzbackup_guest_last_good_point_timestamp_seconds": "Creation time of the newest good point.",
}


def render_metrics(catalog: Catalog, status: list[GuestStatus]) -> str:
    samples: dict[str, list[str]] = {name: [] for name in HELP}
    seen_guest: set[tuple[str, str]] = set()
    seen_job: set[str] = set()
    for run in catalog.runs(RECENT_JOB_RUNS, kind="job"):  # newest first
        job = str(run.args.get("job"))
        if run.args.get("action", "backup") != "backup":
            continue
        if job not in seen_job:
            seen_job.add(job)
            samples["vzbackup_job_last_run_timestamp_seconds"].append(
                _line("vzbackup_job_last_run_timestamp_seconds", {"job": job}, _ts(run.started)))
            for s in STATUSES:
                samples["vzbackup_job_last_run_status"].append(
                    _line("vzbackup_job_last_run_status", {"job": job, "status": s},
                          1 if run.status == s else 0))
        for item in run.items:
            if item.status != "ok" or (job, item.guest) in seen_guest or run.finished is None:
                continue
            seen_guest.add((job, item.guest))
            labels = {"job": job, "guest": item.guest}
            samples["vzbackup_last_success_timestamp_seconds"].append(
                _line("vzbackup_last_success_timestamp_seconds", labels, _ts(run.finished)))
            samples["vzbackup_last_success_bytes"].append(
                _line("vzbackup_last_success_bytes", labels, item.bytes_in))
            samples["vzbackup_last_success_duration_seconds"].append(
                _line("vzbackup_last_success_duration_seconds", labels, item.seconds))
    for g in status:
        labels = {"guest": g.guest, "name": g.name}
        if g.rpo_hours is not None:
            samples["vzbackup_guest_past_rpo"].append(
                _line("vzbackup_guest_past_rpo", labels, int(g.past_rpo)))
        if g.last_good_created is not None:
            samples["vzbackup_guest_last_good_point_timestamp_seconds"].append(
                _line("vzbackup_guest_last_good_point_timestamp_seconds", labels,
                      _ts(g.last_good_created)))
    out = []
    for name, lines in samples.items():
        out += [f"# HELP {name} {HELP[name]}", f"# TYPE {name} gauge", *sorted(lines)]
    return "\n".join(out) + "\n"


def _ts(when: datetime) -> float:
    return round(when.timestamp(), 3)


def _line(name: str, labels: dict[str, str], value: float) -> str:
    text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    return f"{name}{{{text}}} {value}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
