"""A node that is this host: its platform works on local paths."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import NodeUnreachable
from ..ports import Platform, Snapshotter


@dataclass
class LocalNode:
    name: str
    platform: Platform
    snapshotter: Snapshotter
    root: Path

    def check(self) -> None:
        if not self.root.is_dir():
            raise NodeUnreachable(f"node {self.name}: its root {self.root} does not exist",
                                  hint=f"Mount or create {self.root}, or fix nodes.{self.name}.root.")
