"""The one composition root: configuration in, adapters out.

Only this module imports concrete adapters; operations receive them as ``ports``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from .catalog import open_catalog
from .config import Config, NodeConfig, RepositoryConfig
from .errors import ConfigError, KeyUnavailable, RepositoryError
from .locks import FileLocks
from .nodes.local import LocalNode
from .platforms.directory import DirectoryPlatform
from .ports import Catalog, Node, Repository, Reporter, Snapshotter
from .repo.backends import open_backend
from .repo.keys import Passphrase
from .repo.repository import init_chunk_repository, open_chunk_repository
from .snapshots.btrfs import BtrfsSnapshotter
from .snapshots.none import NoSnapshot


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


@dataclass
class App:
    """Everything a command needs, built once per invocation."""

    config: Config
    reporter: Reporter
    clock: SystemClock = field(default_factory=SystemClock)
    _catalog: Catalog | None = None
    _repos: dict[str, Repository] = field(default_factory=dict)
    _nodes: dict[str, Node] | None = None

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = open_catalog(self.config.catalog_url)
        return self._catalog

    @property
    def locks(self) -> FileLocks:
        return FileLocks(self.config.state_dir)

    @property
    def nodes(self) -> dict[str, Node]:
        if self._nodes is None:
            self._nodes = {name: build_node(nc) for name, nc in self.config.nodes.items()}
        return self._nodes

    def repository(self, name: str) -> Repository:
        if name not in self._repos:
            rc = self._repo_config(name)
            self._repos[name] = open_chunk_repository(
                name, open_backend(rc.url), passphrase=read_passphrase(rc),
                cache_dir=self.config.cache_dir, compression_level=rc.compression_level)
        return self._repos[name]

    def repositories(self) -> dict[str, Repository]:
        """Every configured repository that opens; the others are reported and left out."""
        out = {}
        for name in self.config.repositories:
            try:
                out[name] = self.repository(name)
            except (RepositoryError, KeyUnavailable) as e:
                self.reporter.warning(f"repository {name} left out: {e}")
        return out

    def init_repository(self, name: str) -> Repository:
        rc = self._repo_config(name)
        passphrase = read_passphrase(rc)
        init_chunk_repository(open_backend(rc.url), encryption=rc.encryption, passphrase=passphrase,
                              chunk_avg=rc.chunk_avg_kib * 1024, compression_level=rc.compression_level)
        return self.repository(name)

    def _repo_config(self, name: str) -> RepositoryConfig:
        if name not in self.config.repositories:
            known = ", ".join(sorted(self.config.repositories)) or "none"
            raise ConfigError([f"{self.config.path}: repositories.{name}: no such repository "
                               f"(known: {known})"])
        return self.config.repositories[name]


def build_node(nc: NodeConfig) -> Node:
    snapshotter: Snapshotter = BtrfsSnapshotter() if nc.snapshotter == "btrfs" else NoSnapshot()
    return LocalNode(nc.name, DirectoryPlatform(nc.root, nc.name), snapshotter, nc.root)


def read_passphrase(rc: RepositoryConfig) -> Passphrase | None:
    """From the file or the environment variable the config names; never from argv."""
    if rc.encryption == "none":
        return None
    if rc.passphrase_env:
        return Passphrase.from_env(rc.passphrase_env)
    return Passphrase.from_file(rc.passphrase_file or "")


def secrets_of(config: Config) -> set[str]:
    """Values to redact from logs."""
    found = set()
    for rc in config.repositories.values():
        try:
            value = read_passphrase(rc)
        except KeyUnavailable:
            continue
        if value:
            found.add(value.reveal().decode("utf-8", "replace"))
    return found
