"""Summaries by email over SMTP (plain, STARTTLS or TLS; optional login)."""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

log = logging.getLogger(__name__)


class EmailNotifier:
    def __init__(self, host: str, port: int, sender: str, to: tuple[str, ...], *,
                 security: str = "none", user: str = "", password: str | None = None,
                 timeout: float = 10.0):
        self.host, self.port, self.sender, self.to = host, port, sender, to
        self.security, self.user, self._password, self.timeout = security, user, password, timeout

    def send(self, subject: str, text: str, document: dict[str, Any]) -> list[str]:
        msg = EmailMessage()
        msg["Subject"], msg["From"], msg["To"] = subject, self.sender, ", ".join(self.to)
        msg["Date"], msg["Message-ID"] = formatdate(localtime=False), make_msgid("vzbackup")
        msg.set_content(text)
        try:
            with self._connect() as smtp:
                if self.user:
                    smtp.login(self.user, self._password or "")
                smtp.send_message(msg)
        except (OSError, smtplib.SMTPException) as e:
            log.warning("mail to %s via %s:%d failed: %s", ", ".join(self.to), self.host,
                        self.port, type(e).__name__)
            return [f"mail via {self.host}:{self.port}: {type(e).__name__}: {_short(e)}"]
        log.info("mailed %r to %s", subject, ", ".join(self.to))
        return []

    def _connect(self) -> smtplib.SMTP:
        if self.security == "tls":
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout,
                                    context=ssl.create_default_context())
        smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        if self.security == "starttls":
            smtp.starttls(context=ssl.create_default_context())
        return smtp


def _short(e: Exception) -> str:
    if isinstance(e, smtplib.SMTPResponseException):  # the server's words, never ours
        return f"{e.smtp_code} {e.smtp_error.decode('utf-8', 'replace')[:200]}"
    return str(e)[:200]
