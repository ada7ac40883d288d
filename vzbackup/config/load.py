"""Read a TOML file plus its ``conf.d/*.toml`` drop-ins, check it against the schema and
report every problem at once as ``FILE: key.path: message``."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .jobs import build_scheduling
from .model import Config, NodeConfig, ProxmoxConfig, RepositoryConfig
from .schema import PROXMOX_NODE_OPTIONS, SCHEMA, Option, Section

DEFAULT_PATH = Path("/etc/vzbackup/vzbackup.toml")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def find_config_path(given: str | None) -> Path:
    """--config, else $VZBACKUP_CONFIG, else /etc/vzbackup/vzbackup.toml."""
    return Path(given or os.environ.get("VZBACKUP_CONFIG") or DEFAULT_PATH)


def load_config(path: Path) -> Config:
    doc, sources = _read_all(path)
    problems: list[str] = []
    checked = _check(doc, sources, problems)
    if problems:
        raise ConfigError(problems)
    return _build(path, checked, problems)


def _read_all(path: Path) -> tuple[dict[str, Any], dict[str, Path]]:
    """The main file merged with drop-ins; ``sources`` maps key paths to the file that set them."""
    if not path.is_file():
        raise ConfigError([f"{path}: no such configuration file"],
                          hint="Copy config/vzbackup.example.toml there, or pass --config FILE.")
    files = [path] + sorted((path.parent / "conf.d").glob("*.toml"))
    merged: dict[str, Any] = {}
    sources: dict[str, Path] = {}
    problems = []
    for f in files:
        try:
            doc = tomllib.loads(f.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as e:
            problems.append(f"{f}: cannot be read as TOML: {e}")
            continue
        _merge(merged, doc, sources, f, "")
    if problems:
        raise ConfigError(problems)
    return merged, sources


def _merge(into: dict, doc: dict, sources: dict, f: Path, prefix: str) -> None:
    for key, value in doc.items():
        keypath = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value, sources, f, keypath + ".")
        else:
            into[key] = value
        _record_sources(value, sources, f, keypath)


def _record_sources(value: Any, sources: dict, f: Path, keypath: str) -> None:
    sources[keypath] = f
    if isinstance(value, dict):
        for k, v in value.items():
            _record_sources(v, sources, f, f"{keypath}.{k}")


def _where(sources: dict[str, Path], keypath: str) -> Path:
    while keypath and keypath not in sources:
        keypath = keypath.rpartition(".")[0]
    return sources.get(keypath) or next(iter(sources.values()), Path("config"))


def _check(doc: dict, sources: dict, problems: list[str]) -> dict[str, Any]:
    """Validate ``doc``; return it with defaults filled in (named sections stay dicts)."""
    out: dict[str, Any] = {}
    for key in doc:
        if key not in SCHEMA:
            problems.append(f"{_where(sources, key)}: {key}: unknown section "
                            f"(known: {', '.join(sorted(SCHEMA))})")
    for name, section in SCHEMA.items():
        table = doc.get(name, {})
        if not isinstance(table, dict):
            problems.append(f"{_where(sources, name)}: {name}: must be a table")
            continue
        if section.named:
            out[name] = {}
            for item, sub in table.items():
                where = f"{name}.{item}"
                if not _NAME.match(item):
                    problems.append(f"{_where(sources, where)}: {where}: invalid name "
                                    "(letters, digits, '.', '_', '-')")
                if not isinstance(sub, dict):
                    problems.append(f"{_where(sources, where)}: {where}: must be a table")
                    continue
                out[name][item] = _check_table(section, sub, where, sources, problems)
        else:
            out[name] = _check_table(section, table, name, sources, problems)
    return out


def _check_table(section: Section, table: dict, where: str, sources: dict, problems: list[str]) -> dict:
    values = {}
    for key in table:
        if key not in section.options:
            problems.append(f"{_where(sources, f'{where}.{key}')}: {where}.{key}: unknown key "
                            f"(known: {', '.join(sorted(section.options))})")
    for key, opt in section.options.items():
        keypath = f"{where}.{key}"
        if key not in table:
            if opt.required:
                problems.append(f"{_where(sources, where)}: {keypath}: required")
            else:
                values[key] = opt.default
            continue
        error = _check_value(opt, table[key])
        if error:
            shown = "<secret>" if opt.secret else repr(table[key])
            problems.append(f"{_where(sources, keypath)}: {keypath}: {error} (got {shown})")
        else:
            values[key] = table[key]
    return values


def _check_value(opt: Option, value: Any) -> str | None:
    expected = {"str": str, "path": str, "int": int, "bool": bool, "list[str]": list}[opt.type]
    if not isinstance(value, expected) or (opt.type == "int" and isinstance(value, bool)):
        return f"must be {'a list of strings' if opt.type == 'list[str]' else 'a ' + opt.type}"
    if opt.type == "list[str]" and not all(isinstance(v, str) for v in value):
        return "must be a list of strings"
    if opt.choices is not None and value not in opt.choices:
        return f"must be one of {', '.join(map(str, opt.choices))}"
    if opt.minimum is not None and value < opt.minimum:
        return f"must be at least {opt.minimum}"
    if opt.maximum is not None and value > opt.maximum:
        return f"must be at most {opt.maximum}"
    return None


def _build(path: Path, doc: dict, problems: list[str]) -> Config:
    base = path.parent.resolve()

    def p(value: str) -> Path | None:
        return (base / os.path.expanduser(value)).resolve() if value else None

    state_dir = p(doc["state"]["dir"])
    assert state_dir is not None
    repos = {n: RepositoryConfig(
        n, _absolute_file_url(r["url"], base), r["encryption"], p(r["passphrase_file"]),
        r["passphrase_env"], r["compression_level"], r["chunk_avg_kib"], r["bwlimit_mib"],
        p(r["key_file"]), p(r["known_hosts"]), r["accept_new_host_key"], r["connect_timeout"],
        r["node"], r["endpoint_url"], r["region"], r["path_style"], p(r["credentials_file"]),
        r["sse"], r["object_lock_days"], r["object_lock_mode"], r["gc_grace_hours"])
        for n, r in doc["repositories"].items()}
    nodes = {n: NodeConfig(
        n, v["transport"], v["platform"], v["snapshotter"],
        # an ssh node's root is a path on the node: taken as written
        Path(v["root"]) if v["transport"] == "ssh" else p(v["root"]),  # type: ignore[arg-type]
        v["host"], v["port"], v["user"], p(v["key_file"]), p(v["known_hosts"]),
        v["accept_new_host_key"], v["connect_timeout"], v["command_timeout"], v["vzbackup"],
        v["cache_dir"], _proxmox(v), v["hook_script"], **_lvm_openvz(v))
        for n, v in doc["nodes"].items()}
    _cross_check(path, doc, repos, problems)
    scheduling = build_scheduling(path, doc, set(repos), set(nodes), p, problems)  # the scheduler
    if problems:
        raise ConfigError(problems)
    return Config(
        path=path,
        state_dir=state_dir,
        cache_dir=p(doc["state"]["cache_dir"]) or state_dir / "cache",
        catalog_url=doc["catalog"]["url"] or f"sqlite:///{state_dir / 'catalog.db'}",
        log_file=p(doc["log"]["file"]),
        log_level=doc["log"]["level"],
        backup_repository=doc["backup"]["repository"],
        backup_labels=dict(_label(lbl) for lbl in doc["backup"]["labels"]),
        replicate_to=tuple(doc["backup"]["replicate_to"]),
        nodes=nodes,
        repositories=repos,
        **scheduling,
    )


_SCHEME_KEYS = {
    "file": (),
    "sftp": ("key_file", "known_hosts", "accept_new_host_key", "connect_timeout", "node"),
    "s3": ("endpoint_url", "region", "path_style", "credentials_file", "sse", "object_lock_days",
           "object_lock_mode"),
}


def _absolute_file_url(url: str, base: Path) -> str:
    """``file://relative/path`` is taken from the config file's folder."""
    if url.startswith("file://") and not url.startswith("file:///"):
        return "file://" + str((base / url[len("file://"):]).resolve())
    return url


def _label(text: str) -> tuple[str, str]:
    key, _, value = text.partition("=")
    return key, value


def _cross_check(path: Path, doc: dict, repos: dict[str, RepositoryConfig], problems: list[str]) -> None:
    if doc["backup"]["repository"] and doc["backup"]["repository"] not in repos:
        problems.append(f"{path}: backup.repository: no repository named "
                        f"{doc['backup']['repository']!r} under [repositories]")
    for lbl in doc["backup"]["labels"]:
        if "=" not in lbl:
            problems.append(f"{path}: backup.labels: {lbl!r} is not KEY=VALUE")
    if not doc["nodes"]:
        problems.append(f"{path}: nodes: at least one node is required ([nodes.NAME])")
    for target in doc["backup"]["replicate_to"]:
        if target not in repos:
            problems.append(f"{path}: backup.replicate_to: no repository named {target!r}")
    _check_nodes(path, doc, problems)
    for name, r in repos.items():
        if r.node and r.node not in doc["nodes"]:
            problems.append(f"{path}: repositories.{name}.node: no node named {r.node!r} "
                            "under [nodes]")
        if r.scheme not in _SCHEME_KEYS:
            problems.append(f"{path}: repositories.{name}.url: unsupported scheme "
                            "(supported: file:///path, sftp://user@host/path, s3://bucket/prefix)")
            continue
        for key in _SCHEME_KEYS.keys() - {r.scheme}:
            for option in _SCHEME_KEYS[key]:
                if doc["repositories"][name][option] != SCHEMA["repositories"].options[option].default:
                    problems.append(f"{path}: repositories.{name}.{option}: only for {key}:// "
                                    "repositories")
        if r.encryption != "none" and not (r.passphrase_file or r.passphrase_env):
            problems.append(f"{path}: repositories.{name}: encryption needs passphrase_file "
                            "or passphrase_env")
        if r.passphrase_file and r.passphrase_env:
            problems.append(f"{path}: repositories.{name}: set passphrase_file or passphrase_env, not both")
        if r.passphrase_env and not _ENV_NAME.match(r.passphrase_env):
            # the value is not shown: it may be the passphrase itself
            problems.append(f"{path}: repositories.{name}.passphrase_env: must name an "
                            "environment variable (letters, digits, '_'), not hold the passphrase")


def _proxmox(v: dict) -> ProxmoxConfig:
    """The node's ``pve_*`` options (defaults unless platform = "proxmox")."""
    return ProxmoxConfig(**{k.removeprefix("pve_"): tuple(v[k]) if isinstance(v[k], list) else v[k]
                            for k in PROXMOX_NODE_OPTIONS})


def _check_proxmox(path: Path, name: str, n: dict, problems: list[str]) -> None:
    if n["hook_script"] and not n["hook_script"].startswith("/"):
        problems.append(f"{path}: nodes.{name}.hook_script: must be an absolute path on the node")
    if n["platform"] != "proxmox":
        for key, opt in PROXMOX_NODE_OPTIONS.items():
            if n[key] != opt.default:
                problems.append(f"{path}: nodes.{name}.{key}: only for platform = \"proxmox\"")
        return
    if n["snapshotter"] != "none":
        problems.append(f"{path}: nodes.{name}.snapshotter: must be \"none\" with platform = "
                        "\"proxmox\" (vzdump takes its own snapshot; see pve_dump_mode)")
    for key in ("pve_bin_dir", "pve_tmpdir"):
        if n[key] and not n[key].startswith("/"):
            problems.append(f"{path}: nodes.{name}.{key}: must be an absolute path on the node")


# ---- LVM snapshots and OpenVZ ----

_LVM_KEYS = ("lvm_volume", "lvm_mountpoint", "lvm_snapshot_size", "lvm_mount_dir",
             "lvm_checkpoint_size", "lvm_checkpoint_reserve", "lvm_thin_pool_limit")
_OPENVZ_KEYS = ("openvz_conf_dir",)
_LVM_SIZE = re.compile(r"^[0-9]+(\.[0-9]+)?[bBsSkKmMgGtT]?$")  # lvcreate --size


def _lvm_openvz(v: dict) -> dict:
    """These keys are paths on the node: taken as written (absolute, checked below)."""
    return {k: v[k] for k in (*_LVM_KEYS, *_OPENVZ_KEYS)}


def _check_lvm_openvz(path: Path, name: str, n: dict, problems: list[str]) -> None:
    options = SCHEMA["nodes"].options
    where = f"{path}: nodes.{name}"
    if n["snapshotter"] == "lvm":
        if not re.fullmatch(r"[A-Za-z0-9+_.-]+/[A-Za-z0-9+_.-]+", n["lvm_volume"]):
            problems.append(f"{where}.lvm_volume: required with snapshotter = \"lvm\", as VG/LV "
                            f"(got {n['lvm_volume']!r})")
        if n["lvm_snapshot_size"] and not _LVM_SIZE.match(n["lvm_snapshot_size"]):
            problems.append(f"{where}.lvm_snapshot_size: expected a size such as 1G or 512M, or "
                            f"empty for a thin snapshot (got {n['lvm_snapshot_size']!r})")
        size = n["lvm_checkpoint_size"]
        m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)%", size)
        if not (_LVM_SIZE.match(size) or (m and 0 < float(m.group(1)) <= 100)):
            problems.append(f"{where}.lvm_checkpoint_size: expected a percentage of the volume "
                            f"(20%) or a size such as 8G (got {size!r})")
        if not _LVM_SIZE.match(n["lvm_checkpoint_reserve"]):
            problems.append(f"{where}.lvm_checkpoint_reserve: expected a size such as 1G or "
                            f"512M (got {n['lvm_checkpoint_reserve']!r})")
    else:
        for key in _LVM_KEYS:
            if n[key] != options[key].default:
                problems.append(f"{where}.{key}: only for snapshotter = \"lvm\"")
    if n["platform"] != "openvz" and n["openvz_conf_dir"] != options["openvz_conf_dir"].default:
        problems.append(f"{where}.openvz_conf_dir: only for platform = \"openvz\"")
    for key in ("lvm_mountpoint", "lvm_mount_dir", "openvz_conf_dir"):
        if n[key] and not n[key].startswith("/"):
            problems.append(f"{where}.{key}: must be an absolute path on the node")


_SSH_KEYS = ("host", "port", "user", "key_file", "known_hosts", "accept_new_host_key",
             "connect_timeout", "command_timeout", "vzbackup", "cache_dir")


def _check_nodes(path: Path, doc: dict, problems: list[str]) -> None:
    options = SCHEMA["nodes"].options
    for name, n in doc["nodes"].items():
        _check_proxmox(path, name, n, problems)
        _check_lvm_openvz(path, name, n, problems)
        if n["transport"] == "ssh":
            if not n["host"]:
                problems.append(f"{path}: nodes.{name}.host: required with transport = \"ssh\"")
            for key in ("root", "cache_dir"):
                if n[key] and not n[key].startswith("/"):
                    problems.append(f"{path}: nodes.{name}.{key}: must be an absolute path on "
                                    "the node")
            continue
        for key in _SSH_KEYS:
            if n[key] != options[key].default:
                problems.append(f"{path}: nodes.{name}.{key}: only for transport = \"ssh\"")
