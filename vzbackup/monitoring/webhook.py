"""Summaries as a JSON POST to a webhook (optionally with a bearer token)."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from .. import __version__

log = logging.getLogger(__name__)


class WebhookNotifier:
    def __init__(self, url: str, *, token: str | None = None, timeout: float = 10.0):
        self.url, self._token, self.timeout = url, token, timeout
        parts = urlsplit(url)
        self.shown = f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}"

    def send(self, subject: str, text: str, document: dict[str, Any]) -> list[str]:
        body = json.dumps({**document, "text": text}, default=str, sort_keys=True).encode()
        headers = {"Content-Type": "application/json", "User-Agent": f"vzbackup/{__version__}"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                answer.read()
        except urllib.error.HTTPError as e:
            return [f"webhook {self.shown}: HTTP {e.code} {e.reason}"]
        except (OSError, ValueError) as e:  # the URL may hold a token: only its host is shown
            return [f"webhook {self.shown}: {type(e).__name__}"]
        log.info("posted %r to webhook %s", subject, self.shown)
        return []
