"""What makes a clone a different guest: its config rewritten from the source's.

A clone gets a new hostname, a new MAC address on every ``netN`` line, and its networks
remapped so that it cannot collide with production (``--network MAP``):

- ``vmbr0=vmbr9`` moves interfaces on bridge ``vmbr0`` to ``vmbr9`` (several, comma-separated);
- ``isolated`` takes every interface off its bridge (no ``bridge=``, so no production
  network) and drops static addresses;
- static addresses (``ip=``/``ip6=`` other than dhcp/auto/manual) and gateways are dropped
  unless ``keep-ip`` is in the map: two guests with one address is the collision to avoid.

Proxmox ``netN`` values are property strings: ``name=eth0,bridge=vmbr0,hwaddr=...,ip=...``
for containers and ``virtio=MAC,bridge=vmbr0`` for VMs (the model key holds the MAC).
Pure: the random source is passed in.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .guests import GuestRef, guest_ref

NET_KEY = re.compile(r"^net\d+$")
VM_NIC_MODELS = ("virtio", "e1000", "e1000e", "rtl8139", "vmxnet3", "ne2k_pci", "pcnet", "i82551",
                 "i82557b", "i82559er", "ne2k_isa")
_DYNAMIC = ("dhcp", "auto", "manual")
_BRIDGE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_NAME_KEYS = ("hostname", "name")


class NetworkMapError(ValueError):
    pass


@dataclass(frozen=True)
class NetworkMap:
    bridges: Mapping[str, str] = field(default_factory=dict)
    isolated: bool = False
    keep_ip: bool = False

    def describe(self) -> str:
        parts = [f"{a}={b}" for a, b in sorted(self.bridges.items())]
        parts += ["isolated"] if self.isolated else []
        parts += ["keep-ip"] if self.keep_ip else []
        return ",".join(parts) or "unchanged bridges, static addresses dropped"


def parse_network_map(text: str | None) -> NetworkMap:
    """``vmbr0=vmbr9,vmbr1=vmbr8``, ``isolated``, ``keep-ip``, comma-separated."""
    bridges: dict[str, str] = {}
    isolated = keep_ip = False
    for part in (p.strip() for p in (text or "").split(",")):
        if not part:
            continue
        if part == "isolated":
            isolated = True
        elif part == "keep-ip":
            keep_ip = True
        elif "=" in part:
            old, _, new = (s.strip() for s in part.partition("="))
            if not _BRIDGE.match(old) or not _BRIDGE.match(new):
                raise NetworkMapError(f"{part!r}: bridge names are 1-15 letters, digits, '_.-'")
            bridges[old] = new
        else:
            raise NetworkMapError(f"{part!r}: expected OLD=NEW (a bridge), 'isolated' or 'keep-ip'")
    if isolated and bridges:
        raise NetworkMapError("'isolated' takes every interface off its bridge: do not also map bridges")
    if isolated and keep_ip:
        raise NetworkMapError("'isolated' drops static addresses: do not also give 'keep-ip'")
    return NetworkMap(bridges, isolated, keep_ip)


def new_mac(randbytes: Callable[[int], bytes]) -> str:
    """A random locally administered unicast MAC (first octet x2, x6, xA or xE)."""
    raw = bytearray(randbytes(6))
    raw[0] = (raw[0] & 0xFC) | 0x02
    return ":".join(f"{b:02X}" for b in raw)


def split_props(value: str) -> list[tuple[str, str]]:
    out = []
    for part in value.split(","):
        key, eq, val = part.partition("=")
        out.append((key.strip(), val.strip() if eq else ""))
    return out


def join_props(props: list[tuple[str, str]]) -> str:
    return ",".join(f"{k}={v}" if v != "" else k for k, v in props)


def remap_net(value: str, network: NetworkMap, randbytes: Callable[[int], bytes]) -> str:
    """One ``netN`` value with a new MAC and the network map applied."""
    out: list[tuple[str, str]] = []
    for key, val in split_props(value):
        if key == "hwaddr" or (key in VM_NIC_MODELS and val):
            val = new_mac(randbytes)
        elif key == "bridge":
            if network.isolated:
                continue
            val = network.bridges.get(val, val)
        elif key in ("ip", "ip6") and val not in _DYNAMIC and not network.keep_ip:
            continue
        elif key in ("gw", "gw6") and not network.keep_ip:
            continue
        out.append((key, val))
    if not any(k == "hwaddr" or k in VM_NIC_MODELS for k, _ in out):
        out.append(("hwaddr", new_mac(randbytes)))
    return join_props(out)


def clone_config(config: Mapping[str, Any], *, hostname: str | None, network: NetworkMap,
                 randbytes: Callable[[int], bytes]) -> dict[str, Any]:
    """The clone's config: the source's, with new MACs, remapped networks and ``hostname``
    (under ``hostname`` or a VM's ``name``). Leftover lock and snapshot keys are dropped."""
    cloned: dict[str, Any] = {}
    for key, value in config.items():
        if key in ("lock", "parent", "digest", "snapstate"):
            continue
        if NET_KEY.match(key):
            value = remap_net(str(value), network, randbytes)
        elif key == "IP_ADDRESS" and not network.keep_ip:  # OpenVZ venet addresses
            value = ""
        elif key == "smbios1":
            value = join_props([(k, v) for k, v in split_props(str(value)) if k != "uuid"])
            if not value:
                continue
        cloned[key] = value
    if hostname:
        for key in _NAME_KEYS:
            if key in cloned:
                cloned[key] = hostname
    return cloned


# Platforms whose guests run (``--start``); the directory platform's are folders.
STARTABLE_PLATFORMS = frozenset({"proxmox", "openvz"})


def production_exposure(source: Mapping[str, Any], cloned: Mapping[str, Any],
                        network: NetworkMap) -> list[str]:
    """Why the clone, if started, would be on a production network: an interface still on
    one of the source's bridges, or the source's static addresses kept. Empty: it is not
    (every interface isolated or moved to another bridge, no kept address)."""
    prod = {v for key, value in source.items() if NET_KEY.match(key)
            for k, v in split_props(str(value)) if k == "bridge" and v}
    found = []
    for key, value in sorted(cloned.items()):
        if not NET_KEY.match(key):
            continue
        props = dict(split_props(str(value)))
        if props.get("bridge") in prod:
            found.append(f"{key} stays on bridge {props['bridge']}, a bridge of the source")
        static = [f"{k}={props[k]}" for k in ("ip", "ip6") if props.get(k, "") not in ("", *_DYNAMIC)]
        if static and network.keep_ip:
            found.append(f"{key} keeps the source's address {', '.join(static)} (keep-ip)")
    if str(cloned.get("IP_ADDRESS") or "").strip():  # OpenVZ venet: on the host's network
        found.append(f"IP_ADDRESS keeps the source's address {cloned['IP_ADDRESS']} (keep-ip)")
    return found


def macs(config: Mapping[str, Any]) -> set[str]:
    """Every MAC address in ``config``'s ``netN`` lines, upper case."""
    found = set()
    for key, value in config.items():
        if NET_KEY.match(key):
            for k, v in split_props(str(value)):
                if (k == "hwaddr" or k in VM_NIC_MODELS) and v:
                    found.add(v.upper())
    return found


def next_free_vmid(used: set[int], at_least: int = 100) -> int:
    """The smallest VMID above every used one (Proxmox's lowest is 100)."""
    return max([at_least - 1, *used]) + 1


_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


def valid_hostname(name: str) -> bool:
    return bool(_HOSTNAME.match(name))


@dataclass(frozen=True)
class CloneRecord:
    """A clone's lineage, as the catalogue keeps it."""

    source: GuestRef
    point_id: str
    clone: GuestRef
    node: str
    hostname: str
    network: str
    created: datetime  # UTC

    def to_dict(self) -> dict[str, Any]:
        return {"source": str(self.source), "point": self.point_id, "clone": str(self.clone),
                "node": self.node, "hostname": self.hostname, "network": self.network,
                "created": self.created.isoformat()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CloneRecord":
        return cls(guest_ref(d["source"]), str(d["point"]), guest_ref(d["clone"]), str(d["node"]),
                   str(d["hostname"]), str(d["network"]), datetime.fromisoformat(d["created"]))

