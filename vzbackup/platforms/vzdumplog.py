"""Reading vzdump's logs: the task log (what ``vzdump`` prints), a guest log (the ``.log``
sidecar, timestamped) or a notification mail (lines prefixed ``<vmid>: ``), of every
documented version, into what vzbackup needs: per guest, whether it finished, failed (and
why), its warnings, mode and archive; for the job, how it ended.

Line shapes: shared/reference/pve.md sections 3.3 and 6 (task status, job-level lines,
per-guest lines in order, container and VM lines, the three progress-line shapes, the
2017 timestamp change, the 2020 archive-line change). Lines it does not know are kept as
``other`` (archiver output, LVM's unprefixed lines): a new vzdump line never breaks it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

_STAMP = re.compile(r"^(?:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d|[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) ")
_MAIL = re.compile(r"^(\d+): ")
_LEVEL = re.compile(r"^(INFO|WARN|ERROR): ?(.*)$")
_START = re.compile(r"^Starting Backup of VM (\d+) \((lxc|qemu|openvz)\)$")
_FINISHED = re.compile(r"^Finished Backup of VM (\d+) \((\d\d:\d\d:\d\d)\)$")
_FAILED = re.compile(r"^Backup of VM (\d+) failed - (.*)$")
_ARCHIVE = re.compile(r"^creating (?:vzdump |Proxmox Backup Server )?archive '([^']*)'$")
_PROGRESS = (  # newest first; each gives the percentage
    re.compile(r"^\s*(\d{1,3})% \(.+ of .+\) in .+, read: .+, write: .+$"),  # 2020-08 on
    re.compile(r"^status: (\d{1,3})% \(.+ of .+\), duration \d+, read: .+, write: .+$"),  # 2020
    re.compile(r"^status: (\d{1,3})% \(\d+/\d+\), sparse \d+% \(\d+\), duration \d+, .+$"),  # 2012-20
)
_TASK = re.compile(r"^TASK (OK|WARNINGS: (\d+)|ERROR: (.*))$")


@dataclass
class GuestRun:
    vmid: int
    kind: str = ""  # lxc | qemu | openvz
    name: str = ""  # CT Name / VM Name
    status: str = ""  # running | stopped, when the dump began
    mode: str = ""  # the mode used (after a fallback)
    mode_fallback: bool = False  # "mode failure - ... trying 'suspend' mode instead"
    archive: str = ""  # the archive path, PBS snapshot, or "-" for --stdout
    archive_size: str = ""
    progress: int | None = None  # last VM progress percentage
    finished: bool = False
    duration: str = ""  # hh:mm:ss of a finished backup
    failure: str = ""  # the message of "Backup of VM N failed - ..."
    errors: list[str] = field(default_factory=list)  # every ERROR: line about this guest
    warnings: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)  # lines it does not interpret

    @property
    def ok(self) -> bool:
        return self.finished and not self.failure


@dataclass
class VzdumpLog:
    command: str = ""  # "vzdump 101 --mode snapshot ..." (option order is random)
    guests: dict[int, GuestRun] = field(default_factory=dict)
    job: str = ""  # "" | successfully | with errors | failed
    job_error: str = ""  # of "Backup job failed - ..."
    task: str = ""  # "" | OK | WARNINGS | ERROR (the task log's last line)
    task_warnings: int = 0
    task_error: str = ""
    warnings: list[str] = field(default_factory=list)  # job-level WARN lines
    other: list[str] = field(default_factory=list)

    def guest(self, vmid: int) -> GuestRun | None:
        return self.guests.get(vmid)


def parse_vzdump_log(lines: Iterable[str]) -> VzdumpLog:
    log = VzdumpLog()
    current: GuestRun | None = None
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        mail = _MAIL.match(line)
        if mail:  # a notification mail: "<vmid>: <guest log line>"
            line = line[mail.end():]
        line = _STAMP.sub("", line, count=1)
        task = _TASK.match(line)
        if task:
            log.task = task.group(1).split(":")[0]
            log.task_warnings = int(task.group(2) or 0)
            log.task_error = task.group(3) or ""
            continue
        level = _LEVEL.match(line)
        if not level:  # child command output (LVM, mount), archiver lines
            (current.other if current else log.other).append(line)
            continue
        kind, text = level.groups()
        current = _line(log, current, kind, text)
    return log


def _line(log: VzdumpLog, current: GuestRun | None, kind: str, text: str) -> GuestRun | None:
    """Take one prefixed line; return the guest that lines now belong to."""
    if m := _START.match(text):
        current = log.guests.setdefault(int(m.group(1)), GuestRun(int(m.group(1))))
        current.kind = m.group(2)
        return current
    if text.startswith("starting new backup job: "):
        log.command = text.removeprefix("starting new backup job: ")
        return None
    if text.startswith("Backup job finished "):
        log.job = text.removeprefix("Backup job finished ")
        return None
    if text.startswith("Backup job failed - "):
        log.job, log.job_error = "failed", text.removeprefix("Backup job failed - ")
        return None
    if m := _FAILED.match(text):
        guest = log.guests.setdefault(int(m.group(1)), GuestRun(int(m.group(1))))
        guest.failure = m.group(2)
        guest.errors.append(text)
        return guest
    if m := _FINISHED.match(text):
        guest = log.guests.setdefault(int(m.group(1)), GuestRun(int(m.group(1))))
        guest.finished, guest.duration = True, m.group(2)
        return guest
    if current is None:
        if kind == "WARN":
            log.warnings.append(text)
        else:
            log.other.append(f"{kind}: {text}")
        return None
    if kind == "WARN":
        current.warnings.append(text)
    elif kind == "ERROR":
        current.errors.append(text)
    else:
        _info(current, text)
    return current


def _info(g: GuestRun, text: str) -> None:
    if text.startswith(("CT Name: ", "VM Name: ")):
        g.name = text[len("CT Name: "):]
    elif text.startswith("status = "):
        g.status = text.removeprefix("status = ")
    elif text.startswith("backup mode: "):
        g.mode = text.removeprefix("backup mode: ")
    elif text.startswith("mode failure - "):
        g.mode_fallback = True
    elif m := _ARCHIVE.match(text):
        g.archive = m.group(1)
    elif text == "sending archive to stdout":
        g.archive = "-"
    elif text.startswith("archive file size: "):
        g.archive_size = text.removeprefix("archive file size: ")
    elif (p := next((m for r in _PROGRESS if (m := r.match(text))), None)) is not None:
        g.progress = int(p.group(1))
    else:
        g.other.append(text)
