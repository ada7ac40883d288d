"""The ``none`` snapshotter: the dump reads the live folder (no consistent view)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class NoSnapshot:
    name = "none"

    @contextmanager
    def snapshot(self, path: Path, tag: str) -> Iterator[Path]:
        yield path

    def sweep(self, root: Path) -> list[Path]:
        """Nothing is ever left behind."""
        return []
