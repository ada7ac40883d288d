"""Errors across the wire: an error raised by ``vzbackup agent`` on a node, raised again
on the controller as the same class (so with the same exit code)."""

from __future__ import annotations

from typing import Any

from .. import errors


def error_to_dict(e: errors.VzError) -> dict[str, Any]:
    return {"type": type(e).__name__, "exit_code": e.exit_code, "message": e.message,
            "hint": e.hint}


def error_from_dict(d: dict[str, Any], node: str) -> errors.VzError:
    """The error the agent on ``node`` raised, as the same class (so the same exit code)."""
    by_name = {c.__name__: c for c in errors.all_error_classes()}
    by_name["ObjectNotFound"] = errors.ObjectNotFound
    by_code = {c.exit_code: c for c in reversed(errors.all_error_classes())}
    cls = by_name.get(d.get("type", "")) or by_code.get(d.get("exit_code", 2), errors.VzError)
    message = str(d.get("message", "unknown error"))
    if node not in message:
        message = f"on node {node}: {message}"
    if cls is errors.ConfigError:
        return errors.ConfigError([message], hint=d.get("hint"))
    if cls is errors.PartialFailure:
        cls = errors.VzError
    return cls(message, hint=d.get("hint"))
