"""The scheduler's part of the configuration: ``[jobs.NAME]``, ``[retention.REPO]``,
``[daemon]`` and ``[alerts]``, built from the checked document and cross-checked (cron
expressions, time zones, repository and node names)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

from ..domain.guests import parse_guest
from ..domain.retention import RULES, Policy
from .model import AlertsConfig, DaemonConfig, JobConfig, RetentionConfig


def cron_trigger(expression: str, timezone: str) -> CronTrigger:
    """The trigger of a five-field cron expression; ValueError naming what is wrong."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"{expression!r}: expected five fields (minute hour day month weekday)")
    return CronTrigger.from_crontab(expression, timezone=zone(timezone))


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not a known time zone (e.g. UTC, Europe/Berlin)") from None


def policy_of(table: dict[str, Any]) -> Policy:
    return Policy(**{f"keep_{rule}": table[f"keep_{rule}"] for rule in RULES})


def build_scheduling(path: Path, doc: dict[str, Any], repos: set[str], nodes: set[str],
                     p: Callable[[str], Path | None], problems: list[str]) -> dict[str, Any]:
    """Keyword arguments of ``Config`` for the scheduler; problems appended, named by key."""
    jobs = {name: _job(path, name, t, doc["backup"]["repository"], repos, nodes, problems)
            for name, t in doc["jobs"].items()}
    retention = {}
    for repo, t in doc["retention"].items():
        if repo not in repos:
            problems.append(f"{path}: retention.{repo}: no repository named {repo!r} under "
                            "[repositories]")
        _check_zone(path, f"retention.{repo}.timezone", t["timezone"], problems)
        retention[repo] = RetentionConfig(repo, policy_of(t), t["timezone"])
    d, a = doc["daemon"], doc["alerts"]
    daemon = DaemonConfig(d["max_parallel_dumps"], d["max_parallel_dumps_per_node"],
                          d["misfire_grace_minutes"], p(d["metrics_file"]),
                          d["standby_poll_seconds"], d["rpo_check_minutes"])
    alerts = AlertsConfig(a["notify"], tuple(a["email_to"]), a["email_from"], a["smtp_host"],
                          a["smtp_port"], a["smtp_security"], a["smtp_user"],
                          p(a["smtp_password_file"]), a["smtp_password_env"], a["webhook_url"],
                          p(a["webhook_token_file"]), a["webhook_token_env"], a["timeout_seconds"])
    _check_alerts(path, alerts, problems)
    return {"jobs": jobs, "retention": retention, "daemon": daemon, "alerts": alerts}


def _job(path: Path, name: str, t: dict[str, Any], default_repo: str, repos: set[str],
         nodes: set[str], problems: list[str]) -> JobConfig:
    where = f"{path}: jobs.{name}"
    _check_zone(path, f"jobs.{name}.timezone", t["timezone"], problems)
    for key in ("schedule", "verify_schedule"):
        if t[key] or key == "schedule":
            try:
                cron_trigger(t[key], "UTC")
            except ValueError as e:
                problems.append(f"{where}.{key}: {e}")
    if not (t["guests"] or t["tags"] or t["pools"] or t["nodes"] or t["all"]):
        problems.append(f"{where}: selects no guest: set guests, tags, pools, nodes or all = true")
    for key in ("guests", "exclude"):
        for text in t[key]:
            try:
                parse_guest(text)
            except ValueError as e:
                problems.append(f"{where}.{key}: {e}")
    for node in t["nodes"]:
        if node not in nodes:
            problems.append(f"{where}.nodes: no node named {node!r} under [nodes]")
    repository = t["repository"] or default_repo
    for key, names in (("repository", [repository]), ("replicate_to", t["replicate_to"])):
        for repo in names:
            if not repo:
                problems.append(f"{where}.repository: empty, and backup.repository is not set")
            elif repo not in repos:
                problems.append(f"{where}.{key}: no repository named {repo!r} under [repositories]")
    if repository in t["replicate_to"]:
        problems.append(f"{where}.replicate_to: {repository!r} is the job's own repository")
    return JobConfig(
        name=name, schedule=t["schedule"], timezone=t["timezone"], enabled=t["enabled"],
        guests=tuple(t["guests"]), tags=tuple(t["tags"]), pools=tuple(t["pools"]),
        nodes=tuple(t["nodes"]), all=t["all"], exclude=tuple(t["exclude"]), mode=t["mode"],
        repository=repository, replicate_to=tuple(t["replicate_to"]), policy=policy_of(t),
        rpo_hours=t["rpo_hours"], verify_after=t["verify_after"],
        verify_schedule=t["verify_schedule"], verify_level=t["verify_level"])


def _check_zone(path: Path, keypath: str, name: str, problems: list[str]) -> None:
    try:
        zone(name)
    except ValueError as e:
        problems.append(f"{path}: {keypath}: {e}")


def _check_alerts(path: Path, a: AlertsConfig, problems: list[str]) -> None:
    if a.smtp_password_file and a.smtp_password_env:
        problems.append(f"{path}: alerts: set smtp_password_file or smtp_password_env, not both")
    if (a.smtp_password_file or a.smtp_password_env) and not a.smtp_user:
        problems.append(f"{path}: alerts.smtp_user: required with an SMTP password")
    if a.webhook_token_file and a.webhook_token_env:
        problems.append(f"{path}: alerts: set webhook_token_file or webhook_token_env, not both")
    if a.webhook_url and not a.webhook_url.startswith(("http://", "https://")):
        problems.append(f"{path}: alerts.webhook_url: must start with http:// or https://")
    for address in a.email_to:
        if "@" not in address:
            problems.append(f"{path}: alerts.email_to: {address!r} is not an email address")


def read_secret(file: Path | None, env: str, what: str) -> str | None:
    """A secret from the file (first line) or the environment variable the config names;
    ValueError naming the file or variable (never the value) when it cannot be read."""
    if env:
        value = os.environ.get(env)
        if not value:
            raise ValueError(f"{what}: environment variable {env} is not set")
        return value
    if file is None:
        return None
    try:
        return file.read_text(encoding="utf-8").splitlines()[0].strip()
    except (OSError, IndexError, UnicodeDecodeError):
        raise ValueError(f"{what}: cannot read {file} (a file with the secret on its first line)"
                         ) from None
