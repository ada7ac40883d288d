"""Typed settings, built from a validated document."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class NodeConfig:
    name: str
    transport: str
    platform: str
    snapshotter: str
    root: Path


@dataclass(frozen=True)
class RepositoryConfig:
    name: str
    url: str
    encryption: str
    passphrase_file: Path | None
    passphrase_env: str
    compression_level: int
    chunk_avg_kib: int


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
    nodes: dict[str, NodeConfig] = field(default_factory=dict)
    repositories: dict[str, RepositoryConfig] = field(default_factory=dict)
