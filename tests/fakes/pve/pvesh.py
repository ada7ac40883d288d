"""Fake ``pvesh get`` (pve.md 10.1): ``/cluster/resources``, ``/nodes/<node>/lxc|qemu``,
``/nodes/<node>/tasks/<upid>/status``. JSON is one line with sorted keys. Other verbs and
paths: the tool's 'no handler' error."""

from __future__ import annotations

import json
import re

from . import state
from .cli import Command, Die, Opt, parse

FORMATS = ("json", "json-pretty", "text", "yaml")


def main(argv: list[str]) -> int:
    if not argv:
        raise Die("400 not enough arguments", "pvesh <command> [ARGS] [OPTIONS]")
    verb, rest = argv[0], argv[1:]
    if verb in ("create", "set", "delete", "ls", "usage", "help"):
        path = rest[0] if rest else "/"
        raise Die(f"no '{verb}' handler for '{path}'")
    if verb != "get":
        raise Die(f"unknown command 'pvesh {verb}'")
    options = {"output-format": Opt("enum", FORMATS), "type": Opt("enum", ("vm", "storage", "node", "sdn")),
               "noborder": Opt("bool"), "noheader": Opt("bool"), "human-readable": Opt("bool")}
    pos, opts = parse(Command("pvesh get <api_path> [OPTIONS] [FORMAT_OPTIONS]", ("api_path",),
                              options), rest)
    data = _get(pos["api_path"].rstrip("/") or "/", opts)
    fmt = opts.get("output-format", "text")
    if fmt == "json":
        print(json.dumps(data, sort_keys=True, separators=(",", ":")))
    elif fmt == "json-pretty":
        print(json.dumps(data, sort_keys=True, indent=4))
    else:
        print(json.dumps(data, sort_keys=True))  # text/yaml tables are not emulated
    return 0


def _get(path: str, opts: dict) -> object:
    if path == "/cluster/resources":
        return _resources(opts.get("type"))
    m = re.fullmatch(r"/nodes/([^/]+)/(lxc|qemu)", path)
    if m:
        return _node_guests(m.group(1), m.group(2))
    m = re.fullmatch(r"/nodes/([^/]+)/tasks/([^/]+)/status", path)
    if m:
        return _task_status(m.group(2))
    raise Die(f"no 'get' handler for '{path}'")


def _resources(kind: str | None) -> list[dict]:
    out = []
    if kind in (None, "node"):
        for node in sorted(p.name for p in (state.pve() / "nodes").iterdir()):
            out.append({"id": f"node/{node}", "node": node, "type": "node",
                        "status": "online" if state.node_online(node) else "offline"})
    if kind in (None, "vm"):
        pools, ha = state.pools(), state.ha_states()
        for vmid, (node, type_) in sorted(state.cluster_guests().items()):
            conf = state.load(vmid)
            assert conf is not None
            entry: dict[str, object] = {"id": f"{type_}/{vmid}", "vmid": vmid, "node": node,
                                        "type": type_}
            if not state.node_online(node):
                entry["status"] = "unknown"  # no monitoring data from a dead node
            else:
                entry["status"] = state.status(vmid)
                name = conf.values.get("hostname" if type_ == "lxc" else "name")
                entry.update({"name": name or f"{'CT' if type_ == 'lxc' else 'VM'}{vmid}",
                              "template": int(conf.values.get("template", "0")), "uptime": 0,
                              "maxcpu": int(conf.values.get("cores", "1")), "cpu": 0,
                              "maxmem": int(conf.values.get("memory", "512")) << 20, "mem": 0,
                              "maxdisk": 0, "disk": 0, "netin": 0, "netout": 0,
                              "diskread": 0, "diskwrite": 0})
            for key, value in (("pool", pools.get(vmid)), ("lock", conf.values.get("lock")),
                               ("tags", conf.values.get("tags")), ("hastate", ha.get(vmid))):
                if value:
                    entry[key] = value
            out.append(entry)
    return out


def _node_guests(node: str, type_: str) -> list[dict]:
    old_ids = state.version() < (8, 2)  # vmid a string up to pve-container 5.0.9
    out = []
    for vmid, (n, t) in sorted(state.cluster_guests().items()):
        if n != node or t != type_:
            continue
        conf = state.load(vmid)
        assert conf is not None
        name = (conf.values.get("hostname" if t == "lxc" else "name") or "").replace(" ", "")
        entry = {"vmid": str(vmid) if old_ids and t == "lxc" else vmid, "type": t,
                 "status": state.status(vmid), "name": name or f"CT{vmid}"}
        if "tags" in conf.values:
            entry["tags"] = conf.values["tags"]
        if "lock" in conf.values:
            entry["lock"] = conf.values["lock"]
        out.append(entry)
    return out


def _task_status(upid: str) -> dict:
    parts = upid.split(":")
    if len(parts) < 8:
        raise Die("400 Parameter verification failed.", "upid: unable to parse worker upid")
    path = state.root() / "var/log/pve/tasks" / parts[4][-1] / upid
    if not path.is_file():
        raise Die("no such task")
    lines = [line for line in path.read_text().splitlines() if line]
    last = lines[-1] if lines else ""
    if last == "TASK OK":
        exit_status = "OK"
    elif last.startswith("TASK WARNINGS: "):
        exit_status = "WARNINGS: " + last.split(": ", 1)[1]
    elif last.startswith("TASK ERROR: "):
        exit_status = last.split(": ", 1)[1]
    else:
        exit_status = "unexpected status"
    return {"exitstatus": exit_status, "node": parts[1], "status": "stopped", "upid": upid,
            "type": parts[5], "id": parts[6], "user": parts[7]}
