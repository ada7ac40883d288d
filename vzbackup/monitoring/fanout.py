"""One notifier that sends to several (mail and webhook)."""

from __future__ import annotations

from typing import Any

from ..ports import Notifier


class Fanout:
    def __init__(self, notifiers: list[Notifier]):
        self.notifiers = notifiers

    def send(self, subject: str, text: str, document: dict[str, Any]) -> list[str]:
        return [p for n in self.notifiers for p in n.send(subject, text, document)]
