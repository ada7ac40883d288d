"""The one composition root: configuration in, adapters out.

Only this module imports concrete adapters; operations receive them as ``ports``.
"""

from __future__ import annotations

import configparser
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from .config import Config, NodeConfig, RepositoryConfig
from .config.model import ProxmoxConfig
from .errors import ConfigError, KeyUnavailable, NodeUnreachable, RepositoryError
from .config.jobs import read_secret
from .config.model import AlertsConfig
from .locks import FileLocks, PgLocks
from .monitoring.email import EmailNotifier
from .monitoring.fanout import Fanout
from .monitoring.textfile import write_textfile
from .monitoring.webhook import WebhookNotifier
from .nodes.local import LocalNode
from .nodes.remote import SshNode
from .nodes.ssh import SshSession, SshTarget
from .platforms.directory import DirectoryPlatform
from .platforms.openvz import OpenVzPlatform
from .platforms.proxmox import ProxmoxPlatform
from .archives.reader import VzdumpArchives
from .ops.job import JobEnv
from .ops.metrics import render_metrics
from .ops.status import guest_status
from .ports import (Archives, Backend, Bundles, Catalog, DumpSlots, JobLocks, Node, Notifier, Repository,
                    Reporter, Snapshotter)
from .repo.backends import open_backend
from .repo.bundle import BundleStore
from .repo.backends.limits import RateLimited
from .repo.format import CONFIG_KEY
from .repo.keys import Passphrase
from .repo.repository import init_chunk_repository, init_replica_repository, open_chunk_repository
from .snapshots.btrfs import BtrfsSnapshotter
from .snapshots.lvm import LvmSnapshotter
from .snapshots.lvmcheckpoints import CheckpointPolicy, LvmCheckpoints
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
    _job_locks: JobLocks | None = None

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            from .catalog import open_catalog  # here: the agent on a node never loads it

            self._catalog = open_catalog(self.config.catalog_url)
        return self._catalog

    @property
    def locks(self) -> FileLocks:
        return FileLocks(self.config.state_dir)

    @property
    def archives(self) -> Archives:
        return VzdumpArchives()

    @property
    def nodes(self) -> dict[str, Node]:
        if self._nodes is None:
            self._nodes = {name: build_node(nc) for name, nc in self.config.nodes.items()}
        return self._nodes

    # ---- ports.RepositoryAccess ------------------------------------------------------

    def spec_for(self, repository: str, node: str) -> dict[str, Any] | None:
        rc = self._repo_config(repository)
        if rc.scheme == "file":
            return None  # a folder on this host: the data passes through here
        url = rc.url
        if rc.node and rc.node == node:  # the node's own disk: no SSH to itself
            url = "file://" + unquote(urlsplit(rc.url).path)
        passphrase = read_passphrase(rc)
        access, secret = read_s3_credentials(rc) if rc.scheme == "s3" else (None, None)
        return {"name": rc.name, "url": url, "encryption": rc.encryption,
                "passphrase": passphrase.reveal().decode() if passphrase else None,
                "compression_level": rc.compression_level, "bwlimit_mib": rc.bwlimit_mib,
                "key_file": str(rc.key_file or ""), "known_hosts": str(rc.known_hosts or ""),
                "accept_new_host_key": rc.accept_new_host_key,
                "connect_timeout": rc.connect_timeout, "endpoint_url": rc.endpoint_url,
                "region": rc.region, "path_style": rc.path_style, "sse": rc.sse,
                "object_lock_days": rc.object_lock_days, "object_lock_mode": rc.object_lock_mode,
                "access_key": access, "secret_key": secret}

    @property
    def gc_grace_hours(self) -> dict[str, int]:
        return {name: rc.gc_grace_hours for name, rc in self.config.repositories.items()}

    def home(self, repository: str) -> str | None:
        return self._repo_config(repository).node or None

    def repository(self, name: str) -> Repository:
        if name not in self._repos:
            rc = self._repo_config(name)
            self._repos[name] = open_chunk_repository(
                name, build_backend(rc), passphrase=read_passphrase(rc),
                cache_dir=self.config.cache_dir, compression_level=rc.compression_level)
        return self._repos[name]

    def notes_repository(self) -> Repository | None:
        """The backup repository, for notes that are about no point (checkpoints); None when
        there is none or it does not open (said as a warning: the work goes on)."""
        if not self.config.backup_repository:
            return None
        try:
            return self.repository(self.config.backup_repository)
        except (RepositoryError, KeyUnavailable, NodeUnreachable) as e:
            self.reporter.warning(f"repository {self.config.backup_repository} does not open "
                                  f"({e}): this is not noted there for 'catalog rebuild'")
            return None

    def replica(self, name: str, source: str) -> Repository:
        """Repository ``name``; an empty one is first made a replica of ``source``."""
        rc = self._repo_config(name)
        backend = build_backend(rc)
        if backend.stat(CONFIG_KEY) is None:
            init_replica_repository(self.repository(source), backend)  # type: ignore[arg-type]
            self.reporter.info(f"repository {name} initialised at {backend.url} as a replica "
                               f"of {source}")
        return self.repository(name)

    def repositories(self, names: list[str] | None = None) -> dict[str, Repository]:
        """Every configured repository (or those ``names``) that opens; the others are
        reported and left out. Opened in parallel: a dead peer costs its connect timeout
        once, not once per peer."""
        def try_open(name: str) -> Repository | Exception:
            try:
                return self.repository(name)
            except (RepositoryError, KeyUnavailable, NodeUnreachable) as e:
                return e

        names = list(self.config.repositories) if names is None else list(names)
        with ThreadPoolExecutor(max(1, min(len(names), 8)), thread_name_prefix="vzbackup-open") as pool:
            opened = list(pool.map(try_open, names))
        out = {}
        for name, repo in zip(names, opened):
            if isinstance(repo, Exception):
                self.reporter.warning(f"repository {name} left out: {repo}")
            else:
                out[name] = repo
        return out

    def init_repository(self, name: str) -> Repository:
        rc = self._repo_config(name)
        passphrase = read_passphrase(rc)
        init_chunk_repository(build_backend(rc), encryption=rc.encryption, passphrase=passphrase,
                              chunk_avg=rc.chunk_avg_kib * 1024, compression_level=rc.compression_level)
        return self.repository(name)

    def bundles(self, passphrase_file: str | None = None, passphrase_env: str | None = None
                ) -> Bundles:
        """Branch bundles: written with each repository's passphrase; opened with the one
        given (a file or an environment variable, never argv), for an encrypted bundle."""
        given = (Passphrase.from_file(passphrase_file) if passphrase_file
                 else Passphrase.from_env(passphrase_env) if passphrase_env else None)
        return BundleStore(lambda name: read_passphrase(self._repo_config(name)),
                           self.bundle_dir, given)

    @property
    def bundle_dir(self) -> Path:
        """Where imported bundles are unpacked (one folder per branch)."""
        return Path(self.config.state_dir) / "bundles"

    # ---- the scheduler: job locks, dump slots, notifier, metrics -----------------------

    @property
    def job_locks(self) -> JobLocks:
        """Cluster-wide advisory locks with a PostgreSQL catalogue, else files here."""
        if self._job_locks is None:
            self._job_locks = (PgLocks(self.config.catalog_url) if self.shared_catalog
                               else self.locks)
        return self._job_locks

    @property
    def shared_catalog(self) -> bool:
        return self.config.catalog_url.startswith("postgresql")

    def job_env(self, slots: DumpSlots | None = None, reporter: Reporter | None = None) -> JobEnv:
        return JobEnv(
            nodes=self.nodes, open_repository=self.repository, open_replica=self.replica,
            catalog=self.catalog, locks=self.locks, job_locks=self.job_locks,
            reporter=reporter or self.reporter, clock=self.clock, labels=self.config.backup_labels,
            retention=self.config.retention, jobs=self.config.jobs,
            notify=self.config.alerts.notify, notifier=self.notifier(), access=self,
            slots=slots, after_run=self.write_metrics, gc_grace_hours=self.gc_grace_hours)

    def notifier(self) -> Notifier | None:
        """Mail and webhook as configured; None when neither is."""
        return build_notifier(self.config.alerts)

    def write_metrics(self) -> None:
        """Rewrite [daemon] metrics_file, if set; a failure is a warning, never an error."""
        path = self.config.daemon.metrics_file
        if path is None:
            return
        status = guest_status(self.catalog, self.config.jobs, self.clock.now())
        try:
            write_textfile(path, render_metrics(self.catalog, status))
        except OSError as e:
            self.reporter.warning(f"metrics file {path} not written: {e.strerror or e}")

    def _repo_config(self, name: str) -> RepositoryConfig:
        if not name:
            raise ConfigError([f"{self.config.path}: backup.repository: not set, and no "
                               "repository was named (--repository NAME)"])
        if name not in self.config.repositories:
            known = ", ".join(sorted(self.config.repositories)) or "none"
            raise ConfigError([f"{self.config.path}: repositories.{name}: no such repository "
                               f"(known: {known})"])
        return self.config.repositories[name]


def build_node(nc: NodeConfig) -> Node:
    if nc.transport == "ssh":
        target = SshTarget(nc.host, nc.port, nc.user, key_file=nc.key_file,
                           known_hosts=nc.known_hosts,
                           accept_new_host_key=nc.accept_new_host_key,
                           connect_timeout=float(nc.connect_timeout))
        spec = {"name": nc.name, "platform": nc.platform, "snapshotter": nc.snapshotter,
                "root": str(nc.root), "cache_dir": nc.cache_dir, **lvm_openvz_spec(nc)}
        if nc.platform == "proxmox":
            spec["proxmox"] = nc.proxmox.to_dict()
        if nc.hook_script:
            spec["hook_script"] = nc.hook_script
        return SshNode(nc.name, SshSession(target, nc.name), [nc.vzbackup], spec,
                       timeout=float(nc.command_timeout))
    if nc.platform == "proxmox":  # root: /etc/pve; vzdump snapshots by itself
        return LocalNode(nc.name, ProxmoxPlatform(nc.name, nc.root, nc.proxmox, nc.hook_script),
                         NoSnapshot(), nc.root)
    return LocalNode(nc.name, build_platform(nc), build_snapshotter(nc), nc.root)


def build_platform(nc: NodeConfig) -> Any:
    if nc.platform == "openvz":
        return OpenVzPlatform(nc.root, nc.name, conf_dir=Path(nc.openvz_conf_dir))
    return DirectoryPlatform(nc.root, nc.name, hook_script=nc.hook_script)


def build_snapshotter(nc: NodeConfig) -> Snapshotter:
    if nc.snapshotter == "lvm":
        snap = LvmSnapshotter(nc.lvm_volume, Path(nc.lvm_mountpoint or nc.root), nc.name,
                              size=nc.lvm_snapshot_size, mount_dir=Path(nc.lvm_mount_dir))
        snap.volume_checkpoints = LvmCheckpoints(snap, CheckpointPolicy(  # type: ignore[assignment]
            nc.lvm_checkpoint_size, nc.lvm_checkpoint_reserve, float(nc.lvm_thin_pool_limit)))
        return snap
    return BtrfsSnapshotter() if nc.snapshotter == "btrfs" else NoSnapshot()


# ---- LVM snapshots and OpenVZ: what an SSH node's agent needs to build them ----

_LVM_OPENVZ_KEYS = ("lvm_volume", "lvm_mountpoint", "lvm_snapshot_size", "lvm_mount_dir",
                    "lvm_checkpoint_size", "lvm_checkpoint_reserve", "lvm_thin_pool_limit",
                    "openvz_conf_dir")


def lvm_openvz_spec(nc: NodeConfig) -> dict[str, str]:
    return {k: getattr(nc, k) for k in _LVM_OPENVZ_KEYS}


def node_from_spec(spec: dict[str, Any]) -> Node:
    """The agent's side: the node it runs on, from the controller's description."""
    return build_node(NodeConfig(spec["name"], "local", spec["platform"], spec["snapshotter"],
                                 Path(spec["root"]),
                                 proxmox=ProxmoxConfig.from_dict(spec.get("proxmox") or {}),
                                 hook_script=spec.get("hook_script", ""),
                                 **{k: spec[k] for k in _LVM_OPENVZ_KEYS if k in spec}))


def build_backend(rc: RepositoryConfig, credentials: tuple[str | None, str | None] | None = None
                  ) -> Backend:
    """The repository's backend with its scheme's options, under its bandwidth limit.
    ``credentials``: S3 keys already read (on a node, from the job); None: read them here."""
    options: dict[str, object] = {}
    if rc.scheme == "sftp":
        options = {"key_file": rc.key_file, "known_hosts": rc.known_hosts,
                   "accept_new_host_key": rc.accept_new_host_key,
                   "connect_timeout": float(rc.connect_timeout)}
    elif rc.scheme == "s3":
        access, secret = credentials or read_s3_credentials(rc)
        options = {"endpoint_url": rc.endpoint_url or None, "region": rc.region or None,
                   "path_style": rc.path_style, "sse": rc.sse or None,
                   "lock_days": rc.object_lock_days, "lock_mode": rc.object_lock_mode,
                   "access_key": access, "secret_key": secret}
    backend = open_backend(rc.url, **options)
    return RateLimited(backend, rc.bwlimit_mib * 2**20) if rc.bwlimit_mib else backend


def repository_from_spec(spec: dict[str, Any], cache_dir: Path | None) -> Repository:
    """The agent's side: open the repository the controller described (``App.spec_for``)."""
    def path(value: str) -> Path | None:
        return Path(value) if value else None

    rc = RepositoryConfig(
        spec["name"], spec["url"], spec["encryption"], None, "", spec["compression_level"], 32,
        spec["bwlimit_mib"], path(spec["key_file"]), path(spec["known_hosts"]),
        spec["accept_new_host_key"], spec["connect_timeout"], "", spec["endpoint_url"],
        spec["region"], spec["path_style"], None, spec["sse"], spec["object_lock_days"],
        spec["object_lock_mode"])
    backend = build_backend(rc, (spec["access_key"], spec["secret_key"]))
    return open_chunk_repository(rc.name, backend, passphrase=spec["passphrase"],
                                 cache_dir=cache_dir, compression_level=rc.compression_level)


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


def build_notifier(a: AlertsConfig) -> Notifier | None:
    """Mail and webhook notifiers; ``ConfigError`` naming the key when a secret is missing."""
    try:
        password = read_secret(a.smtp_password_file, a.smtp_password_env, "alerts.smtp_password")
        token = read_secret(a.webhook_token_file, a.webhook_token_env, "alerts.webhook_token")
    except ValueError as e:
        raise ConfigError([str(e)], hint="Provide the secret through the file or environment "
                                         "variable the [alerts] section names.") from None
    found: list[Notifier] = []
    if a.email_to:
        found.append(EmailNotifier(a.smtp_host, a.smtp_port, a.email_from, a.email_to,
                                   security=a.smtp_security, user=a.smtp_user, password=password,
                                   timeout=a.timeout_seconds))
    if a.webhook_url:
        found.append(WebhookNotifier(a.webhook_url, token=token, timeout=a.timeout_seconds))
    return Fanout(found) if found else None


def _alert_secrets(a: AlertsConfig) -> set[str]:
    found = {a.webhook_url} if a.webhook_url else set()  # a webhook URL may hold its token
    for file, env in ((a.smtp_password_file, a.smtp_password_env),
                      (a.webhook_token_file, a.webhook_token_env)):
        try:
            value = read_secret(file, env, "alert secret")
        except ValueError:
            continue
        if value:
            found.add(value)
    return found


def secrets_of(config: Config) -> set[str]:
    """Values to redact from logs."""
    found = _alert_secrets(config.alerts)
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
