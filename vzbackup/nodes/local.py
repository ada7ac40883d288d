"""A node that is this host: its platform works on local paths, in this process."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ..domain.guests import GuestRef
from ..errors import NodeUnreachable
from ..ports import Dump, GuestInfo, Leftover, Platform, Snapshotter


@dataclass
class LocalNode:
    name: str
    platform: Platform
    snapshotter: Snapshotter
    root: Path
    agent: None = None

    @property
    def platform_name(self) -> str:
        return self.platform.name

    def check(self) -> None:
        if not self.root.is_dir():
            raise NodeUnreachable(f"node {self.name}: its root {self.root} does not exist",
                                  hint=f"Mount or create {self.root}, or fix nodes.{self.name}.root.")

    def list_guests(self) -> list[GuestInfo]:
        return self.platform.list_guests()

    def dump(self, guest: GuestInfo) -> AbstractContextManager[Dump]:
        return self.platform.dump(guest, self.snapshotter)

    def restore(self, target: GuestRef, stream: BinaryIO, *, name: str, config: dict[str, Any],
                force: bool = False) -> GuestInfo:
        return self.platform.restore(target, stream, name=name, config=config, force=force)

    def reconfigure(self, target: GuestRef, changes: dict[str, str]) -> GuestInfo:
        return self.platform.reconfigure(target, changes)

    def start(self, ref: GuestRef) -> GuestInfo:
        return self.platform.start_guest(ref)

    def checkpoint_space(self, refs: list[GuestRef], label: str) -> None:
        self.platform.checkpoint_space(refs, label, self.snapshotter)

    def destroy(self, target: GuestRef) -> None:
        self.platform.destroy(target)

    def sanitize(self, target: GuestRef, script: str, env: dict[str, str]) -> None:
        self.platform.sanitize(target, script, env)

    def checkpoint(self, ref: GuestRef, label: str) -> None:
        self.platform.take_checkpoint(ref, label, self.snapshotter)

    def rollback(self, ref: GuestRef, label: str) -> None:
        self.platform.rollback_checkpoint(ref, label, self.snapshotter)

    def drop_checkpoint(self, ref: GuestRef, label: str) -> None:
        self.platform.drop_checkpoint(ref, label, self.snapshotter)

    def leftover_snapshots(self) -> list[Leftover]:
        # a platform without guests_dir keeps its guests directly under the node's root
        return self.snapshotter.leftovers(getattr(self.platform, "guests_dir", self.root))

    def remove_snapshot(self, leftover: Leftover) -> None:
        self.snapshotter.remove(leftover)
