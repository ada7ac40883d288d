"""The one composition root: configuration in, adapters out.

Only this module imports concrete adapters; operations receive them as ``ports``.
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass, field
from datetime import datetime, timezone

from .catalog import open_catalog
from .config import Config, NodeConfig, RepositoryConfig
from .errors import ConfigError, KeyUnavailable, NodeUnreachable, RepositoryError
from .locks import FileLocks
from .nodes.local import LocalNode
from .platforms.directory import DirectoryPlatform
from .ports import Backend, Catalog, Node, Repository, Reporter, Snapshotter
from .repo.backends import open_backend
from .repo.backends.limits import RateLimited
from .repo.format import CONFIG_KEY
from .repo.keys import Passphrase
from .repo.repository import init_chunk_repository, init_replica_repository, open_chunk_repository
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
                name, build_backend(rc), passphrase=read_passphrase(rc),
                cache_dir=self.config.cache_dir, compression_level=rc.compression_level)
        return self._repos[name]

    def replica(self, name: str, source: str) -> Repository:
        """Repository ``name``; an empty one is first made a replica of ``source``."""
        rc = self._repo_config(name)
        backend = build_backend(rc)
        if backend.stat(CONFIG_KEY) is None:
            init_replica_repository(self.repository(source), backend)  # type: ignore[arg-type]
            self.reporter.info(f"repository {name} initialised at {backend.url} as a replica "
                               f"of {source}")
        return self.repository(name)

    def repositories(self) -> dict[str, Repository]:
        """Every configured repository that opens; the others are reported and left out."""
        out = {}
        for name in self.config.repositories:
            try:
                out[name] = self.repository(name)
            except (RepositoryError, KeyUnavailable, NodeUnreachable) as e:
                self.reporter.warning(f"repository {name} left out: {e}")
        return out

    def init_repository(self, name: str) -> Repository:
        rc = self._repo_config(name)
        passphrase = read_passphrase(rc)
        init_chunk_repository(build_backend(rc), encryption=rc.encryption, passphrase=passphrase,
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


def build_backend(rc: RepositoryConfig) -> Backend:
    """The repository's backend with its scheme's options, under its bandwidth limit."""
    options: dict[str, object] = {}
    if rc.scheme == "sftp":
        options = {"key_file": rc.key_file, "known_hosts": rc.known_hosts,
                   "accept_new_host_key": rc.accept_new_host_key}
    elif rc.scheme == "s3":
        access, secret = read_s3_credentials(rc)
        options = {"endpoint_url": rc.endpoint_url or None, "region": rc.region or None,
                   "path_style": rc.path_style, "sse": rc.sse or None,
                   "access_key": access, "secret_key": secret}
    backend = open_backend(rc.url, **options)
    return RateLimited(backend, rc.bwlimit_mib * 2**20) if rc.bwlimit_mib else backend


def read_s3_credentials(rc: RepositoryConfig) -> tuple[str | None, str | None]:
    """From an AWS-style credentials file ([default] aws_access_key_id / aws_secret_access_key);
    without one, boto3 reads the environment (AWS_ACCESS_KEY_ID...)."""
    if rc.credentials_file is None:
        return None, None
    parser = configparser.ConfigParser()
    try:
        parser.read_string(rc.credentials_file.read_text(encoding="utf-8"))
        section = parser["default"] if parser.has_section("default") else parser[parser.sections()[0]]
        return section["aws_access_key_id"].strip(), section["aws_secret_access_key"].strip()
    except (OSError, configparser.Error, IndexError, KeyError):
        raise RepositoryError(f"repository {rc.name}: cannot read the credentials file "
                              f"{rc.credentials_file}",
                              hint="It needs aws_access_key_id and aws_secret_access_key "
                                   "under [default].") from None


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
        try:
            found.update(s for s in read_s3_credentials(rc) if s)
        except RepositoryError:
            continue
    return found
