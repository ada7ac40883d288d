"""Typed settings, built from a validated document."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..domain.retention import Policy


# ---- proxmox platform (nodes.X.pve_*) ------------------------------------------------------


@dataclass(frozen=True)
class ProxmoxConfig:
    """The ``pve_*`` options of a node with ``platform = "proxmox"``."""

    bin_dir: str = ""
    dump_mode: str = "snapshot"
    bwlimit: int = 0
    ionice: int = 7
    exclude_path: tuple[str, ...] = ()
    stdexcludes: bool = True
    tmpdir: str = ""
    lockwait: int = 180
    stopwait: int = 10
    restore_storage: str = ""
    restore_unique: bool = False
    restore_start: bool = False

    def to_dict(self) -> dict[str, object]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> "ProxmoxConfig":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})  # type: ignore[arg-type]


@dataclass(frozen=True)
class NodeConfig:
    name: str
    transport: str
    platform: str
    snapshotter: str
    root: Path
    host: str = ""
    port: int = 22
    user: str = "root"
    key_file: Path | None = None
    known_hosts: Path | None = None
    accept_new_host_key: bool = False
    connect_timeout: int = 10
    command_timeout: int = 300
    vzbackup: str = "vzbackup"
    cache_dir: str = "/var/lib/vzbackup/cache"
    proxmox: ProxmoxConfig = field(default_factory=ProxmoxConfig)
    hook_script: str = ""  # vzdump-style, every platform
    # ---- LVM snapshots and OpenVZ ----
    lvm_volume: str = ""
    lvm_mountpoint: str = ""  # empty: root
    lvm_snapshot_size: str = "1G"
    lvm_mount_dir: str = "/run/vzbackup/snapshots"
    openvz_conf_dir: str = "/etc/vz/conf"


@dataclass(frozen=True)
class RepositoryConfig:
    name: str
    url: str
    encryption: str
    passphrase_file: Path | None
    passphrase_env: str
    compression_level: int
    chunk_avg_kib: int
    bwlimit_mib: int = 0
    key_file: Path | None = None
    known_hosts: Path | None = None
    accept_new_host_key: bool = False
    connect_timeout: int = 10
    node: str = ""
    endpoint_url: str = ""
    region: str = ""
    path_style: bool = True
    credentials_file: Path | None = None
    sse: str = ""
    object_lock_days: int = 0
    object_lock_mode: str = "GOVERNANCE"
    gc_grace_hours: int = 48

    @property
    def scheme(self) -> str:
        return self.url.partition("://")[0]


@dataclass(frozen=True)
class Config:
    path: Path
    state_dir: Path
    cache_dir: Path
    catalog_url: str
    log_file: Path | None
    log_level: str
    backup_repository: str
    backup_labels: dict[str, str]
    replicate_to: tuple[str, ...] = ()
    nodes: dict[str, NodeConfig] = field(default_factory=dict)
    repositories: dict[str, RepositoryConfig] = field(default_factory=dict)
    # the scheduler (see the block below)
    jobs: dict[str, "JobConfig"] = field(default_factory=dict)
    retention: dict[str, "RetentionConfig"] = field(default_factory=dict)
    daemon: "DaemonConfig" = field(default_factory=lambda: DaemonConfig())
    alerts: "AlertsConfig" = field(default_factory=lambda: AlertsConfig())


# ---- the scheduler: jobs, retention per repository, daemon, alerts -------------------------


@dataclass(frozen=True)
class JobConfig:
    name: str
    schedule: str  # cron: minute hour day month weekday
    timezone: str = "UTC"
    enabled: bool = True
    guests: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    pools: tuple[str, ...] = ()
    nodes: tuple[str, ...] = ()
    all: bool = False
    exclude: tuple[str, ...] = ()
    mode: str = "snapshot"
    repository: str = ""  # resolved: never empty once loaded
    replicate_to: tuple[str, ...] = ()
    policy: Policy = field(default_factory=Policy)
    rpo_hours: int = 26
    verify_after: str = "quick"
    verify_schedule: str = ""
    verify_level: str = "full"

    @property
    def repositories(self) -> tuple[str, ...]:
        """Where the job's points live: its repository, then its replicas."""
        return (self.repository, *self.replicate_to)


@dataclass(frozen=True)
class RetentionConfig:
    repository: str
    policy: Policy
    timezone: str = "UTC"


@dataclass(frozen=True)
class DaemonConfig:
    max_parallel_dumps: int = 2
    max_parallel_dumps_per_node: int = 1
    misfire_grace_minutes: int = 360
    metrics_file: Path | None = None
    standby_poll_seconds: int = 15
    rpo_check_minutes: int = 60


@dataclass(frozen=True)
class AlertsConfig:
    notify: str = "always"
    email_to: tuple[str, ...] = ()
    email_from: str = "vzbackup@localhost"
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_security: str = "none"
    smtp_user: str = ""
    smtp_password_file: Path | None = None
    smtp_password_env: str = ""
    webhook_url: str = ""
    webhook_token_file: Path | None = None
    webhook_token_env: str = ""
    timeout_seconds: int = 10
