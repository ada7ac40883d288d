"""Limits on dumps running at once: overall and per node (``ports.DumpSlots``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class DumpSlots:
    """Semaphores shared by every job of a process: at most ``overall`` dumps at once, at
    most ``per_node`` on one node. A slot is taken per node first, so a thread waiting for a
    busy node never holds an overall slot that another node could use."""

    def __init__(self, overall: int, per_node: int):
        self.overall = overall
        self.per_node = per_node
        self._all = threading.BoundedSemaphore(overall)
        self._nodes: dict[str, threading.BoundedSemaphore] = {}
        self._guard = threading.Lock()

    def _node(self, node: str) -> threading.BoundedSemaphore:
        with self._guard:
            return self._nodes.setdefault(node, threading.BoundedSemaphore(self.per_node))

    @contextmanager
    def hold(self, node: str) -> Iterator[None]:
        with self._node(node), self._all:
            yield
