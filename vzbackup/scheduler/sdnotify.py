"""systemd's notification protocol (sd_notify): one datagram per message to the Unix
socket named by ``$NOTIFY_SOCKET`` ('@' starts an abstract name). Without it, nothing."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


def sd_notify(message: str, env: Mapping[str, str] | None = None) -> bool:
    """Send ``message`` ("READY=1", "WATCHDOG=1", "STOPPING=1", "STATUS=..."); True if sent."""
    address = (env if env is not None else os.environ).get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(address)
            s.sendall(message.encode("utf-8"))
    except OSError as e:
        log.warning("systemd notification %r not sent: %s", message, e)
        return False
    return True


def watchdog_seconds(env: Mapping[str, str] | None = None) -> float | None:
    """How often to send WATCHDOG=1: half of ``$WATCHDOG_USEC`` (if meant for this process)."""
    env = env if env is not None else os.environ
    usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6
