"""One summary per run, by mail (a real SMTP server on loopback, with login) and by webhook
(a real HTTP server on loopback); secrets come from a file or the environment and are
never logged; metrics in node_exporter's textfile format."""

from __future__ import annotations

import email
import email.policy
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.lab.pg import free_port

PASSWORD = "smtp-Secret-4711"
TOKEN = "hook-Token-0815"


class Inbox:
    def __init__(self):
        self.messages, self.logins = [], []

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((envelope.rcpt_tos, f"Subject: {msg['Subject']}\n{msg.get_content()}"))
        return "250 OK"

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.password == PASSWORD.encode()
        self.logins.append(ok)
        return AuthResult(success=ok)


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port(), authenticator=inbox,
                            auth_require_tls=False)
    controller.start()
    yield controller.port, inbox
    controller.stop()


@pytest.fixture
def webhook():
    posts = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            posts.append((self.path, self.headers.get("Authorization"), json.loads(body)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], posts
    server.shutdown()
    server.server_close()


def alerting(lab, smtp_port: int, hook_port: int, monkeypatch, notify: str = "always") -> None:
    (lab.root / "smtp-password").write_text(PASSWORD + "\n")
    monkeypatch.setenv("HOOK_TOKEN", TOKEN)
    lab.config.write_text(lab.config.read_text() + f"""
[log]
file = "vzbackup.log"
[jobs.nightly]
schedule = "30 1 * * *"
all = true
[daemon]
metrics_file = "metrics/vzbackup.prom"
[alerts]
notify = "{notify}"
email_to = ["ops@example.org"]
email_from = "vzbackup@node1.example.org"
smtp_host = "127.0.0.1"
smtp_port = {smtp_port}
smtp_user = "vzbackup"
smtp_password_file = "smtp-password"
webhook_url = "http://127.0.0.1:{hook_port}/hooks/backup"
webhook_token_env = "HOOK_TOKEN"
""")
    lab.ok("repo", "init")


def test_one_summary_per_run_by_mail_and_webhook(lab, smtp, webhook, monkeypatch):
    (smtp_port, inbox), (hook_port, posts) = smtp, webhook
    alerting(lab, smtp_port, hook_port, monkeypatch)
    r = lab.ok("run", "nightly", "--json").json()
    assert len(inbox.messages) == 1 and len(posts) == 1  # one run, two guests: one summary
    rcpt, mail = inbox.messages[0]
    assert rcpt == ["ops@example.org"] and inbox.logins == [True]
    assert "Subject: vzbackup nightly (backup): SUCCESS, 2 ok, 0 failed" in mail
    assert "ct101 on node1" in mail and "vm200 on node1" in mail
    path, auth, doc = posts[0]
    assert path == "/hooks/backup" and auth == f"Bearer {TOKEN}"
    assert doc["event"] == "job-run" and doc["run"]["run_id"] == r["run_id"]
    assert {i["guest"] for i in doc["run"]["items"]} == {"ct101", "vm200"}
    log = (lab.root / "vzbackup.log").read_text()
    assert "mailed" in log and PASSWORD not in log and TOKEN not in log


def test_a_failed_guest_is_in_the_summary_with_the_next_step(lab, smtp, webhook, monkeypatch):
    (smtp_port, inbox), (hook_port, posts) = smtp, webhook
    alerting(lab, smtp_port, hook_port, monkeypatch, notify="failure")
    lab.ok("run", "nightly")
    assert inbox.messages == [] and posts == []  # notify = failure: a good night is quiet
    (lab.node("node1") / "ct101" / "rootfs").rename(lab.node("node1") / "ct101" / "moved")
    assert lab.run("run", "nightly").code == 15
    assert len(inbox.messages) == 1 and len(posts) == 1
    mail = inbox.messages[0][1]
    assert "PARTIAL, 1 ok, 1 failed" in mail
    assert "FAILED ct101: ct101 on node node1: no rootfs/ folder" in mail and "next step:" in mail


def test_a_summary_that_cannot_be_delivered_is_a_warning_not_a_failure(lab, monkeypatch):
    alerting(lab, free_port(), free_port(), monkeypatch)  # nothing listens there
    r = lab.run("run", "nightly")
    assert r.code == 0
    assert "summary of job nightly not delivered: mail via 127.0.0.1" in r.err
    assert "webhook http://127.0.0.1" in r.err and "/hooks" not in r.err
    assert PASSWORD not in r.err + r.out


def test_a_missing_secret_names_where_it_should_be(lab, smtp, webhook, monkeypatch):
    (smtp_port, _), (hook_port, _) = smtp, webhook
    alerting(lab, smtp_port, hook_port, monkeypatch)
    monkeypatch.delenv("HOOK_TOKEN")
    r = lab.run("run", "nightly")
    assert r.code == 3 and "environment variable HOOK_TOKEN is not set" in r.err


def test_metrics_textfile_after_a_run(lab, monkeypatch):
    alerting(lab, free_port(), free_port(), monkeypatch, notify="never")
    lab.ok("run", "nightly")
    text = (lab.root / "metrics" / "vzbackup.prom").read_text()
    assert "# TYPE vzbackup_last_success_timestamp_seconds gauge" in text
    assert 'vzbackup_last_success_bytes{job="nightly",guest="ct101"} ' in text
    assert 'vzbackup_job_last_run_status{job="nightly",status="success"} 1' in text
    assert 'vzbackup_guest_past_rpo{guest="vm200",name="app"} 0' in text
    for line in text.splitlines():  # the exposition format: HELP, TYPE or name{labels} value
        assert line.startswith("#") or float(line.rsplit(" ", 1)[1]) >= 0


def test_sd_notify_sends_datagrams_to_the_socket_systemd_names(tmp_path):
    import socket

    from vzbackup.scheduler.sdnotify import sd_notify, watchdog_seconds

    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(str(path))
        assert sd_notify("READY=1", {"NOTIFY_SOCKET": str(path)})
        assert s.recv(100) == b"READY=1"
    abstract = f"@vzbackup-test-{tmp_path.name}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind("\0" + abstract[1:])
        assert sd_notify("WATCHDOG=1", {"NOTIFY_SOCKET": abstract})
        assert s.recv(100) == b"WATCHDOG=1"
    assert not sd_notify("READY=1", {})
    assert watchdog_seconds({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_seconds({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
