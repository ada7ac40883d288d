"""What a summary says: one message per job run (never one per guest), and one per set of
guests newly past their RPO. Subject and text for mail, a JSON document for webhooks."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from ..results import RunResult
from .status import GuestStatus

MAX_LISTED = 50  # guests listed in a mail; the JSON document has them all


def job_summary(result: RunResult, now: datetime) -> tuple[str, str, dict[str, Any]]:
    d = result.details
    failed = [o for o in result.items if o.status == "failed"]
    ok = len(result.items) - len(failed)
    state = "ABORTED" if d.get("aborted") else result.status.upper()
    subject = (f"vzbackup {d.get('job')} ({d.get('action', 'backup')}): {state}, "
               f"{ok} ok, {len(failed)} failed")
    lines = [f"Job {d.get('job')}, {d.get('action', 'backup')} run {result.run_id} "
             f"({d.get('trigger', 'manual')}): {state} at {now:%Y-%m-%d %H:%M:%S} UTC.", ""]
    if d.get("aborted"):
        lines += [f"The run was interrupted ({d['aborted']}); its guests were not all done.",
                  ""]
    for o in failed[:MAX_LISTED]:
        lines.append(f"FAILED {o.guest}: {o.message}")  # the message names the node
        if o.hint:
            lines.append(f"  next step: {o.hint}")
    if len(failed) > MAX_LISTED:
        lines.append(f"... and {len(failed) - MAX_LISTED} more failures")
    for o in [o for o in result.items if o.status == "ok"][:MAX_LISTED]:
        point = (o.point_id or "-")[:12]
        lines.append(f"ok     {o.guest} on {o.node}: point {point}, {o.bytes_in} bytes read, "
                     f"{o.new_bytes} stored, {o.seconds:.1f} s")
    if "pruned" in d:
        lines += ["", f"Retention removed {d['pruned']} copies; garbage collection freed "
                      f"{d['gc_freed_bytes']} bytes, {d['gc_waiting_bytes']} bytes wait out "
                      "the grace period."]
    lines += ["", f"Details: vzbackup runs show {result.run_id}"]
    document = {"event": "job-run", "subject": subject, "time": now.isoformat(),
                "run": result.to_dict()}
    return subject, "\n".join(lines) + "\n", document


def rpo_summary(late: list[GuestStatus], now: datetime) -> tuple[str, str, dict[str, Any]]:
    subject = f"vzbackup: {len(late)} guest(s) past their RPO"
    lines = [f"At {now:%Y-%m-%d %H:%M} UTC these guests have no good restore point within "
             "their recovery point objective:", ""]
    for s in late[:MAX_LISTED]:
        newest = f"newest good point {s.last_good_created:%Y-%m-%d %H:%M}" \
            if s.last_good_created else "no good restore point"
        lines.append(f"{s.guest} ({s.name}): {newest}, RPO {s.rpo_hours} h"
                     + (f"; last failure: {s.last_failure}" if s.last_failure else ""))
    lines += ["", "See 'vzbackup status' and docs/runbooks/nightly-jobs.md."]
    document = {"event": "rpo", "subject": subject, "time": now.isoformat(),
                "guests": [asdict(s) for s in late]}
    return subject, "\n".join(lines) + "\n", document
