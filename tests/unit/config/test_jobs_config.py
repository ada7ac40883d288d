"""[jobs.NAME], [retention.REPO], [daemon] and [alerts]: every problem named by file and key."""

from __future__ import annotations

import pytest

from tests.unit.config.test_load import MINIMAL, write
from vzbackup.config import load_config
from vzbackup.domain.retention import Policy
from vzbackup.errors import ConfigError


def problems(tmp_path, text: str) -> str:
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, MINIMAL + text))
    return str(e.value)


def test_a_job_with_defaults(tmp_path):
    config = load_config(write(tmp_path, MINIMAL + '[jobs.nightly]\nschedule = "30 1 * * *"\n'
                                                   'all = true\nkeep_daily = 7\n'))
    job = config.jobs["nightly"]
    assert job.repository == "main" and job.timezone == "UTC" and job.rpo_hours == 26
    assert job.policy == Policy(keep_daily=7) and job.verify_after == "quick"
    assert config.daemon.max_parallel_dumps == 2 and config.alerts.notify == "always"


def test_job_problems_are_named(tmp_path):
    text = problems(tmp_path, """
[jobs.bad]
schedule = "30 25 * * *"
timezone = "Mars/Olympus"
guests = ["not a guest!"]
exclude = ["ct12"]
nodes = ["node9"]
replicate_to = ["nowhere"]
verify_schedule = "every day"
[jobs.empty]
schedule = "0 * * * *"
[retention.gone]
keep_last = 1
""")
    path = tmp_path / "vzbackup.toml"
    for expected in (f"{path}: jobs.bad.schedule:", "jobs.bad.timezone: 'Mars/Olympus' is not a known",
                     "jobs.bad.guests: 'not a guest!'", "jobs.bad.exclude: 'ct12': VMIDs start at 100",
                     "jobs.bad.nodes: no node named 'node9'",
                     "jobs.bad.replicate_to: no repository named 'nowhere'",
                     "jobs.bad.verify_schedule: 'every day': expected five fields",
                     "jobs.empty: selects no guest",
                     "retention.gone: no repository named 'gone'"):
        assert expected in text


def test_alert_secrets_come_from_one_place(tmp_path):
    text = problems(tmp_path, """
[alerts]
smtp_password_file = "pw"
smtp_password_env = "PW"
webhook_url = "ftp://example.org"
email_to = ["nobody"]
""")
    assert "alerts: set smtp_password_file or smtp_password_env, not both" in text
    assert "alerts.smtp_user: required with an SMTP password" in text
    assert "alerts.webhook_url: must start with http:// or https://" in text
    assert "alerts.email_to: 'nobody' is not an email address" in text
