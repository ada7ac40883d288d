"""The directory platform's ``guest.conf``: ``key: value`` lines, like Proxmox's pct.conf.

Blank lines and ``#`` comments are skipped; parsing stops at the first ``[section]`` (Proxmox
keeps snapshots there). Values are strings; writing puts one ``key: value`` per line.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CONFIG_NAME = "guest.conf"
_KEY = re.compile(r"^[A-Za-z0-9_.-]+$")


def parse_config(text: str) -> dict[str, str]:
    config: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            break
        if not line or line.startswith("#") or ":" not in line:
            continue
        key, _, value = line.partition(":")
        config[key.strip()] = value.strip()
    return config


def format_config(config: Mapping[str, Any]) -> str:
    """The file text; raises ValueError for a key or value that cannot round-trip."""
    lines = []
    for key, value in config.items():
        text = str(value)
        if not _KEY.match(key) or "\n" in text or "\r" in text:
            raise ValueError(f"guest config entry {key!r} cannot be written as 'key: value'")
        lines.append(f"{key}: {text}\n")
    return "".join(lines)


def read_config(folder: Path) -> dict[str, str]:
    """The config in ``folder``; empty when the file is missing."""
    try:
        return parse_config((folder / CONFIG_NAME).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}


def write_config(folder: Path, config: Mapping[str, Any]) -> None:
    """Write atomically through a new file, so an existing symlink there is replaced, never
    followed."""
    text = format_config(config).encode("utf-8")
    tmp = f".{CONFIG_NAME}.{secrets.token_hex(4)}"
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644,
                     dir_fd=dir_fd)
        with os.fdopen(fd, "wb") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, CONFIG_NAME, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
