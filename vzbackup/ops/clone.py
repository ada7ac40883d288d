"""``vzbackup clone``: a new guest from another's restore point, unable to collide with it.

A clone is a restore (``ops.restore``: nearest healthy copy, verified before it is put in
place) under a new VMID, with the config rewritten by ``domain.clone``: a new hostname, new
MAC addresses, bridges remapped and static addresses dropped (``--network``). The platform
is given the rewritten config at restore, then told again with ``Node.reconfigure`` (on
Proxmox, ``qmrestore`` takes no network options: ``qm set`` does it). Its lineage (source
guest, point, node, time) goes to the catalogue, and pins the point against pruning.

``--fresh`` backs the source up first and clones that point.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..domain.clone import (
    NET_KEY, CloneRecord, NetworkMap, NetworkMapError, clone_config, next_free_vmid,
    parse_network_map, valid_hostname,
)
from ..domain.guests import GuestRef
from ..errors import GuestExists, UsageError, VzError
from ..ports import Catalog, Clock, Locks, Node, Repository, RepositoryAccess, Reporter
from ..results import RunResult
from .outcome import attempt, first_good_copy, recorded_run
from .restore import RestorePlan, plan_restore, restore_point
from .selection import resolve_known_guest

SCAN_THREADS = 16


@dataclass(frozen=True)
class ClonePlan:
    restore: RestorePlan  # its target is the clone's new VMID
    hostname: str
    network: NetworkMap

    @property
    def source(self) -> GuestRef:
        return self.restore.point.guest

    @property
    def target(self) -> GuestRef:
        return self.restore.target

    def describe(self) -> str:
        p = self.restore
        repos = ", then ".join(r.name for r in p.sources) or "no copy"
        return (f"clone {self.source} point {p.point.id[:12]} "
                f"({p.point.created:%Y-%m-%d %H:%M:%S} UTC) as {self.target} "
                f"'{self.hostname}' on {p.node.name} from {repos}; network: "
                f"{self.network.describe()}")

    def to_dict(self) -> dict[str, Any]:
        return {"source": str(self.source), "point": self.restore.point.id,
                "target": str(self.target), "hostname": self.hostname,
                "node": self.restore.node.name, "network": self.network.describe(),
                "sources": [r.name for r in self.restore.sources]}


def plan_clone(catalog: Catalog, nodes: Mapping[str, Node], repos: Mapping[str, Repository],
               guest: str, to_node: str, *, point: str | None = None, at: datetime | None = None,
               as_id: int | None = None, hostname: str | None = None,
               network: str | None = None,
               access: RepositoryAccess | None = None) -> ClonePlan:
    """Resolve the source, its point, the new VMID and hostname; nothing is changed."""
    try:
        net = parse_network_map(network)
    except NetworkMapError as e:
        raise UsageError(f"--network: {e}",
                         hint="Example: --network vmbr0=vmbr9, or --network isolated.") from None
    if hostname is not None and not valid_hostname(hostname):
        raise UsageError(f"--hostname {hostname!r} is not a valid host name",
                         hint="Use letters, digits and '-', dot-separated (staging-web1).")
    used = used_vmids(catalog, nodes)
    if as_id is not None and as_id in used:
        raise GuestExists(f"VMID {as_id} is already used in the cluster (by a guest the "
                          "catalogue or a node knows)",
                          hint="Leave out --as to take the next free VMID.")
    vmid = as_id if as_id is not None else next_free_vmid(used)
    plan = plan_restore(catalog, nodes, repos, guest, to_node, point=point, at=at, as_id=vmid,
                        access=access)
    if plan.target == plan.point.guest:
        raise UsageError(f"a clone needs a VMID other than its source's ({plan.target})")
    name = hostname or default_hostname(plan.point.guest_name, vmid)
    return ClonePlan(plan, name, net)


def default_hostname(source_name: str, vmid: int) -> str:
    first = source_name.split(".")[0][:40].strip("-") or "guest"
    name = f"{first}-clone{vmid}"
    return name if valid_hostname(name) else f"clone{vmid}"


def used_vmids(catalog: Catalog, nodes: Mapping[str, Node]) -> set[int]:
    """Every VMID the catalogue knows (guests and clones) or a reachable node holds."""
    used = {g.ref.vmid for g in catalog.guests()} | {c.clone.vmid for c in catalog.clones()}
    scope = list(nodes.values())
    with ThreadPoolExecutor(min(len(scope), SCAN_THREADS) or 1,
                            thread_name_prefix="vzbackup-vmids") as pool:
        for held in pool.map(_held, scope):
            used |= held
    return used


def _held(node: Node) -> set[int]:
    try:
        node.check()
        return {g.ref.vmid for g in node.list_guests()}
    except VzError:  # a dead node's guests are in the catalogue
        return set()


def list_clones(catalog: Catalog, guest: str | None = None) -> list[CloneRecord]:
    """Clones recorded in the catalogue (of ``guest``, or all)."""
    if guest is None:
        return catalog.clones()
    return catalog.clones(resolve_known_guest(catalog.guests(), guest))


def clone(plan: ClonePlan, catalog: Catalog, locks: Locks, reporter: Reporter,
          clock: Clock) -> RunResult:
    """Create the clone, then record its lineage. The stream passes through this process
    (the node's agent restores manifests as they are, not rewritten)."""
    args = {"source": str(plan.source), "point": plan.restore.point.id,
            "target": str(plan.target), "node": plan.restore.node.name}
    with recorded_run(catalog, clock, "clone", args) as run:
        with attempt(str(plan.target), plan.restore.node.name) as a:
            a.tally.extra = _clone(plan, catalog, locks, reporter, clock)
            a.tally.point_id = plan.restore.point.id
            a.tally.bytes_in = int(a.tally.extra["bytes"])
        run.add(a)
    return run.result(a.tally.extra)


def _clone(plan: ClonePlan, catalog: Catalog, locks: Locks, reporter: Reporter,
           clock: Clock) -> dict[str, Any]:
    rp = plan.restore
    node = rp.node
    if not rp.sources:
        raise UsageError(f"restore point {rp.point.id[:12]} of {rp.point.guest} has no copy in "
                         "any configured repository",
                         hint="Configure the repository that holds it, or pick another --point.")
    node.check()
    with locks.guest(plan.target, "clone"):
        repo, config, size = _restore_rewritten(plan, catalog, reporter, clock)
        changes = {k: str(v) for k, v in config.items()
                   if NET_KEY.match(k) or k in ("hostname", "name", "IP_ADDRESS")}
        changes.setdefault("hostname" if plan.target.kind == "ct" else "name", plan.hostname)
        guest = node.reconfigure(plan.target, changes)
        catalog.upsert_guest(guest)
        record = CloneRecord(plan.source, rp.point.id, plan.target, node.name, plan.hostname,
                             plan.network.describe(), clock.now())
        catalog.record_clone(record)
        note_clone(repo, record, reporter)
    reporter.info(f"cloned {plan.source} as {plan.target} '{plan.hostname}' on {node.name}")
    return {"source": str(plan.source), "point": rp.point.id, "target": str(plan.target),
            "hostname": plan.hostname, "node": node.name, "repository": repo.name,
            "bytes": size, "network": plan.network.describe()}


def _restore_rewritten(plan: ClonePlan, catalog: Catalog, reporter: Reporter,
                       clock: Clock) -> tuple[Repository, dict[str, Any], int]:
    """Restore from the nearest copy that checks out, with the clone's config."""
    rp = plan.restore

    def read(repo: Repository) -> tuple[dict[str, Any], int]:
        manifest = repo.load_manifest(rp.point.id)
        config = clone_config(manifest.guest_config, hostname=plan.hostname,
                              network=plan.network, randbytes=os.urandom)
        with reporter.progress(f"clone {plan.source} as {plan.target} on {rp.node.name}",
                               None) as advance:
            _, size = restore_point(rp.node, repo, rp.point.id, plan.target, False, advance,
                                    name=plan.hostname, config=config)
        return config, size

    repo, (config, size) = first_good_copy(rp.sources, rp.point.id, read, catalog, reporter,
                                           clock)
    return repo, config, size


def note_clone(repo: Repository, record: CloneRecord, reporter: Reporter) -> None:
    """The lineage into the repository the clone came from too, for ``catalog rebuild``."""
    try:
        repo.put_note({"kind": "clone", "key": str(record.clone), "time": record.created.isoformat(),
                       "record": record.to_dict()})
    except VzError as e:
        reporter.warning(f"the lineage of clone {record.clone} could not be written into "
                         f"{repo.name} ({e}): 'catalog rebuild' would not bring it back")
