"""The ``none`` snapshotter: the dump reads the live folder (no consistent view)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..ports import Leftover


class NoSnapshot:
    name = "none"
    persistent = None
    volume_checkpoints = None

    @contextmanager
    def snapshot(self, path: Path, tag: str) -> Iterator[Path]:
        yield path

    def sweep(self, root: Path) -> list[Path]:
        """Nothing is ever left behind."""
        return []

    def leftovers(self, guests_dir: Path) -> list[Leftover]:
        return []

    def remove(self, leftover: Leftover) -> None:
        raise ValueError("the none snapshotter makes no snapshots")
