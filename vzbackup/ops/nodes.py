"""``vzbackup nodes``: is every node reachable, does its agent answer, what does it hold."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..errors import VzError
from ..ports import Node


@dataclass(frozen=True)
class NodeStatus:
    node: str
    transport: str  # "local" | "ssh"
    ok: bool
    guests: int = 0
    agent_version: str | None = None  # ssh nodes: the vzbackup version installed there
    error: str | None = None
    exit_code: int | None = None
    hint: str | None = None


def survey(nodes: Mapping[str, Node]) -> list[NodeStatus]:
    """Every node, asked in parallel (a dead node costs its connect timeout once)."""
    if not nodes:
        return []
    with ThreadPoolExecutor(min(len(nodes), 16), thread_name_prefix="vzbackup-survey") as pool:
        return list(pool.map(_ask, nodes.values()))


def _ask(node: Node) -> NodeStatus:
    transport = "local" if node.agent is None else "ssh"
    try:
        node.check()
        version = node.agent.run({"op": "check"})["version"] if node.agent else None
        return NodeStatus(node.name, transport, True, len(node.list_guests()), version)
    except VzError as e:
        return NodeStatus(node.name, transport, False, error=e.message, exit_code=e.exit_code,
                          hint=e.hint)
