"""``vzbackup branch create|refresh|destroy|list|show``: clones of several production guests,
from one consistent set of restore points, on one node, apart from production.

Create, all or nothing:

1. Plan: the members (``--guests`` from the catalogue, ``--tag`` from the nodes), each one's
   newest point at or before one instant (or the points ``--fresh`` just took), the next
   free VMIDs cluster-wide, hostnames ``<source>-<branch>``, the network (``isolated``, or a
   branch bridge that no source uses; static addresses always dropped).
2. Each member: restore under its new VMID with the rewritten config (``ops.clone``:
   nearest healthy copy, verified before it is put in place), ``Node.reconfigure``, then the
   sanitize scripts in order (``Node.sanitize``).
3. With sanitize scripts, each sanitized clone is backed up (label ``branch=NAME``): that
   point is what the branch ships (``branch export``), never the unscrubbed source.
4. Only then is the branch recorded. If anything fails (or Ctrl-C), the clones made so far
   are destroyed, the points step 3 stored are forgotten, nothing is recorded, and the
   error names the guest, the node and the next step.

Refresh makes a new set of members (new VMIDs, same hostnames, network and scripts) from
newer points, and only when all exist destroys the old ones. Destroy removes the members
from the node, then the record; it refuses when a member's VMID holds a guest with another
name (it may not be the branch's clone any more) unless ``--force``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from ..domain.branch import (
    BRANCH_LABEL, IN_PROGRESS, BranchMember, BranchNetwork, BranchRecord, bridges, branch_network,
    check_branch_name, pick_points,
)
from ..domain.clone import NET_KEY, next_free_vmid, valid_hostname
from ..domain.guests import GuestRef
from ..domain.points import RestorePoint
from ..errors import BranchFailed, GuestNotFound, UsageError, VzError
from ..ports import Catalog, Clock, GuestInfo, Locks, Node, Repository, RepositoryAccess, Reporter
from .backup import backup
from .clone import ClonePlan, _restore_rewritten, default_hostname, used_vmids
from .restore import plan_restore
from .selection import Selection, Target, require_node, resolve_known_guest, select_targets


@dataclass(frozen=True)
class BranchPlan:
    name: str
    node: Node
    at: datetime | None
    network: BranchNetwork
    sanitize: tuple[str, ...]
    members: tuple[ClonePlan, ...]

    def describe(self) -> str:
        lines = [f"branch {self.name} on {self.node.name}: {len(self.members)} guests, network "
                 f"{self.network.describe()}"
                 + (f", points at or before {self.at:%Y-%m-%d %H:%M:%S} UTC" if self.at else "")
                 + (f", sanitize: {', '.join(self.sanitize)}" if self.sanitize else "")]
        lines += [f"  {m.describe()}" for m in self.members]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "node": self.node.name,
                "at": self.at.isoformat() if self.at else None,
                "network": self.network.describe(), "sanitize": list(self.sanitize),
                "members": [m.to_dict() for m in self.members]}


def plan_branch(catalog: Catalog, nodes: Mapping[str, Node], repos: Mapping[str, Repository],
                name: str, to_node: str, *, guests: list[str] | None = None,
                tag: str | None = None, network: str | None = None,
                sanitize: tuple[str, ...] = (), at: datetime | None = None,
                points: Mapping[GuestRef, str] | None = None,
                hostnames: Mapping[GuestRef, str] | None = None,
                replacing: BranchRecord | None = None,
                access: RepositoryAccess | None = None) -> BranchPlan:
    """Resolve members, points, VMIDs, hostnames and the network; nothing is changed.
    ``points``: each source's point (``--fresh``); ``replacing``: the branch a refresh
    replaces (its name may exist, its VMIDs stay taken)."""
    why = check_branch_name(name)
    if why:
        raise UsageError(f"branch name {name!r}: {why}")
    if replacing is None and any(b.name == name for b in catalog.branches()):
        raise BranchFailed(f"branch {name} already exists",
                           hint=f"Refresh it ('vzbackup branch refresh {name}'), destroy it, or "
                                "pick another name.")
    for script in sanitize:
        if not os.path.isabs(script):
            raise UsageError(f"--sanitize {script!r}: give the script's absolute path on the node")
    node = require_node(nodes, to_node)
    if node.platform_name == "openvz":
        raise BranchFailed(f"node {node.name} is an OpenVZ node: branches need a Proxmox VE or "
                           "directory node (vzbackup does not remove OpenVZ containers)",
                           hint="Put the branch on another node (--to).")
    sources = _sources(catalog, nodes, guests or [], tag)
    chosen = _points(catalog, sources, at, points)
    configs = {ref: _config(p, repos) for ref, p in chosen.items()}
    try:
        net = branch_network(network, set().union(*map(bridges, configs.values())))
    except ValueError as e:
        raise UsageError(f"--network: {e}") from None
    used = used_vmids(catalog, nodes) | {m.clone.vmid for b in catalog.branches()
                                         for m in b.members}
    members = []
    for ref in sorted(chosen):
        vmid = next_free_vmid(used)
        used.add(vmid)
        hostname = (hostnames or {}).get(ref) or branch_hostname(chosen[ref].guest_name, name, vmid)
        restore = plan_restore(catalog, nodes, repos, str(ref), to_node, point=chosen[ref].id,
                               as_id=vmid, access=access)
        members.append(ClonePlan(restore, hostname, net.map_for(configs[ref])))
    return BranchPlan(name, node, at, net, tuple(sanitize), tuple(members))


def branch_hostname(source_name: str, branch: str, vmid: int) -> str:
    first = source_name.split(".")[0][:30].strip("-") or "guest"
    name = f"{first}-{branch.replace('.', '-').replace('_', '-')}"[:63].strip("-")
    return name if valid_hostname(name) else default_hostname(source_name, vmid)


def _sources(catalog: Catalog, nodes: Mapping[str, Node], guests: list[str],
             tag: str | None) -> list[GuestRef]:
    if bool(guests) == bool(tag):
        raise UsageError("give the members with --guests ct101,ct102,vm200 or --tag TAG")
    if guests:
        known = catalog.guests()
        refs = [resolve_known_guest(known, g) for g in guests]
    else:
        found = select_targets(nodes, [], all_guests=True)
        if found.unreachable:
            node, error = found.unreachable[0]
            raise BranchFailed(f"--tag {tag}: node {node} could not be searched ({error}): the "
                               "branch would miss its guests",
                               hint="Bring the node back, or name the guests with --guests.")
        refs = [t.guest.ref for t in found.targets if tag in t.guest.tags]
        if not refs:
            raise GuestNotFound(f"no guest on any node has the tag {tag}")
    return sorted(set(refs))


def _points(catalog: Catalog, sources: list[GuestRef], at: datetime | None,
            given: Mapping[GuestRef, str] | None) -> dict[GuestRef, RestorePoint]:
    if given is not None:
        missing = [str(ref) for ref in sources if ref not in given]
        if missing:
            raise BranchFailed(f"no fresh restore point of {', '.join(missing)} (the guests "
                               "changed while they were backed up)",
                               hint="Run the command again.")
        return {ref: catalog.point(given[ref]) for ref in sources}
    chosen, lacking = pick_points({ref: catalog.points(ref) for ref in sources}, at)
    if lacking:
        when = f" taken at or before {at:%Y-%m-%d %H:%M:%S} UTC" if at else ""
        raise BranchFailed(f"no restore point{when} of {', '.join(map(str, lacking))}: the "
                           "branch needs one point of every member",
                           hint="Back them up first, pick a later --at, or use --fresh.")
    return chosen


def _config(point: RestorePoint, repos: Mapping[str, Repository]) -> dict[str, Any]:
    """The guest config in the point's manifest, from the first copy that opens."""
    last: VzError | None = None
    for copy in point.copies:
        if copy.repository in repos:
            try:
                return dict(repos[copy.repository].load_manifest(point.id).guest_config)
            except VzError as e:
                last = e
    raise BranchFailed(f"restore point {point.id[:12]} of {point.guest} cannot be read from any "
                       f"configured repository{f' ({last})' if last else ''}",
                       hint="Configure or repair a repository holding it, or pick another --at.")


# ---- create ---------------------------------------------------------------------------


@dataclass
class Made:
    """What a create has changed so far, to undo on failure."""

    clones: list[tuple[Node, GuestRef]]
    stored: list[tuple[str, str]]  # (point id, repository) the sanitized backups stored


def create_branch(plan: BranchPlan, catalog: Catalog, locks: Locks, reporter: Reporter,
                  clock: Clock, *, repo_for_sanitized: Repository | None = None,
                  labels: Mapping[str, str] | None = None,
                  access: RepositoryAccess | None = None,
                  replacing: BranchRecord | None = None,
                  repos: Mapping[str, Repository] | None = None) -> BranchRecord:
    """Make every member, sanitize, store sanitized points, record; or none of it.

    While it works the branch is recorded ``in progress`` with its planned members (and,
    for a refresh, the old ones), so that a process killed midway leaves a record that
    ``branch destroy`` cleans up; on a failure that record is taken back."""
    old = replacing.members if replacing else ()
    planned = tuple(BranchMember(m.source, m.restore.point.id, m.target, m.hostname,
                                 m.restore.point.id) for m in plan.members)
    catalog.record_branch(_record(plan, old + planned, clock, IN_PROGRESS))
    made = Made([], [])
    try:
        guests = [_make_member(plan, m, catalog, locks, reporter, clock, made)
                  for m in plan.members]
        shipped = _store_sanitized(plan, guests, catalog, locks, reporter, clock,
                                   repo_for_sanitized, labels or {}, access, made)
        members = tuple(replace(m, shipped_id=shipped.get(m.clone, m.point_id)) for m in planned)
        for g in guests:
            catalog.upsert_guest(g)
        record = _record(plan, members, clock, "created")
        catalog.record_branch(record if replacing is None else
                              _record(plan, old + members, clock, IN_PROGRESS))
    except BaseException:
        undo(made, catalog, reporter, plan.name)
        if replacing is None:
            catalog.forget_branch(plan.name)
        else:
            catalog.record_branch(replacing)
        raise
    if replacing is None:
        note_branch(catalog, repos or {}, record, reporter, clock)
    reporter.info(f"branch {plan.name}: {len(members)} guests on node {plan.node.name}")
    return record


def _record(plan: BranchPlan, members: tuple[BranchMember, ...], clock: Clock,
            origin: str) -> BranchRecord:
    return BranchRecord(plan.name, plan.node.name, clock.now(), plan.at, plan.network.describe(),
                        plan.sanitize, members, origin)


def _make_member(plan: BranchPlan, m: ClonePlan, catalog: Catalog, locks: Locks,
                 reporter: Reporter, clock: Clock, made: Made) -> GuestInfo:
    node = plan.node
    try:
        node.check()
        with locks.guest(m.target, f"branch {plan.name}"):
            if not m.restore.sources:
                raise BranchFailed(f"restore point {m.restore.point.id[:12]} has no copy in any "
                                   "configured repository",
                                   hint="Configure the repository that holds it, or pick "
                                        "another --at.")
            _, config, _ = _restore_rewritten(m, catalog, reporter, clock)
            made.clones.append((node, m.target))
            guest = apply_config(node, m.target, config, m.hostname)
            for script in plan.sanitize:
                reporter.info(f"branch {plan.name}: sanitize {m.target} with {script}")
                node.sanitize(m.target, script, sanitize_env(plan.name, m.source, m.target,
                                                             m.hostname))
    except VzError as e:
        raise _failed(plan, m.source, m.target, len(made.clones), e) from None
    return guest


def apply_config(node: Node, target: GuestRef, config: Mapping[str, Any],
                 hostname: str) -> GuestInfo:
    """Tell the platform the clone's names and networks again (``qmrestore`` takes none)."""
    changes = {k: str(v) for k, v in config.items()
               if NET_KEY.match(k) or k in ("hostname", "name", "IP_ADDRESS")}
    changes.setdefault("hostname" if target.kind == "ct" else "name", hostname)
    return node.reconfigure(target, changes)


def sanitize_env(branch: str, source: GuestRef, clone: GuestRef, hostname: str) -> dict[str, str]:
    return {"VZBACKUP_BRANCH": branch, "VZBACKUP_GUEST": str(clone),
            "VZBACKUP_SOURCE": str(source), "VZBACKUP_HOSTNAME": hostname,
            "VZBACKUP_KIND": clone.kind}


def _store_sanitized(plan: BranchPlan, guests: list[GuestInfo], catalog: Catalog, locks: Locks,
                     reporter: Reporter, clock: Clock, repo: Repository | None,
                     labels: Mapping[str, str], access: RepositoryAccess | None,
                     made: Made) -> dict[GuestRef, str]:
    """Back up each sanitized clone: what the branch ships. Nothing without scripts."""
    if not plan.sanitize:
        return {}
    if repo is None:
        raise BranchFailed(f"branch {plan.name}: no repository to store the sanitized clones in")
    selection = Selection([Target(plan.node, g) for g in guests])
    result = backup(selection, repo, catalog, locks, reporter, clock,
                    {**labels, BRANCH_LABEL: plan.name, "purpose": "branch"}, access)
    shipped = {}
    for item, guest in zip(result.items, guests):
        if item.point_id:
            made.stored.append((item.point_id, repo.name))
            shipped[guest.ref] = item.point_id
    bad = next((i for i in result.items if i.status != "ok" or not i.point_id), None)
    if bad is not None:
        source = next(m.source for m in plan.members if str(m.target) == bad.guest)
        raise BranchFailed(
            f"branch {plan.name}: backing up the sanitized clone {bad.guest} (of {source}) on "
            f"node {plan.node.name} into {repo.name} failed: {bad.message}; "
            f"{undone(len(made.clones))}", hint=bad.hint)
    return shipped


def _failed(plan: BranchPlan, source: GuestRef, target: GuestRef, made: int,
            e: VzError) -> BranchFailed:
    return BranchFailed(f"branch {plan.name}: {source} (as {target}) on node {plan.node.name}: "
                        f"{e.message}; {undone(made)}", hint=e.hint)


def undone(made: int) -> str:
    return (f"the {made} clone(s) already made were removed and nothing was recorded" if made
            else "nothing was made or recorded")


def undo(made: Made, catalog: Catalog, reporter: Reporter, name: str) -> None:
    for point_id, repo in made.stored:
        try:
            catalog.forget_copy(point_id, repo)
        except VzError as e:
            reporter.warning(f"branch {name}: could not forget point {point_id[:12]}: {e}")
    for node, ref in reversed(made.clones):
        try:
            node.destroy(ref)
            reporter.warning(f"branch {name}: removed {ref} from node {node.name} (the branch "
                             "could not be completed)")
        except VzError as e:
            reporter.warning(f"branch {name}: could not remove {ref} from node {node.name}: "
                             f"{e}; remove it by hand")


# ---- list, show, destroy, refresh ---------------------------------------------------------


def find_branch(catalog: Catalog, name: str) -> BranchRecord:
    found = next((b for b in catalog.branches() if b.name == name), None)
    if found is None:
        raise BranchFailed(f"no branch {name} in the catalogue",
                           hint="List them with 'vzbackup branch list'.")
    return found


def destroy_branch(catalog: Catalog, nodes: Mapping[str, Node], locks: Locks,
                   reporter: Reporter, clock: Clock, name: str, *, force: bool = False,
                   bundle_dir: Path | None = None,
                   repos: Mapping[str, Repository] | None = None) -> BranchRecord:
    """Remove the members from the node, then the record (and an imported branch's
    unpacked bundle). A member already gone is forgotten."""
    record = find_branch(catalog, name)
    node = require_node(nodes, record.node)
    node.check()
    held = {g.ref: g for g in node.list_guests()}
    if not force:
        _refuse_changed(record, held)
    left = list(record.members)
    for m in record.members:
        if m.clone in held:
            try:
                with locks.guest(m.clone, f"branch destroy {name}"):
                    node.destroy(m.clone)
            except VzError as e:
                catalog.record_branch(record.with_members(tuple(left), record.created))
                raise BranchFailed(f"branch {name}: removing {m.clone} from node {node.name} "
                                   f"failed: {e.message}",
                                   hint=f"Fix the cause, then run 'vzbackup branch destroy "
                                        f"{name}' again (the members removed are forgotten).") from None
            reporter.info(f"branch {name}: removed {m.clone} ({m.hostname}) from node {node.name}")
        else:
            reporter.warning(f"branch {name}: {m.clone} is already gone from node {node.name}")
        left.remove(m)
    if not record.imported:
        note_branch(catalog, repos or {}, record, reporter, clock, gone=True)
    catalog.forget_branch(name)
    if bundle_dir is not None and record.imported:
        shutil.rmtree(bundle_dir / name, ignore_errors=True)
    return record


def _refuse_changed(record: BranchRecord, held: Mapping[GuestRef, GuestInfo]) -> None:
    for m in record.members:
        g = held.get(m.clone)
        if g is not None and g.name != m.hostname:
            raise BranchFailed(
                f"branch {record.name}: {m.clone} on node {record.node} is now called "
                f"{g.name!r}, not {m.hostname!r}: it may not be the branch's clone any more; "
                "nothing was removed",
                hint="Check it; rename it back, or pass --force to remove it anyway.")


def refresh_plan(catalog: Catalog, nodes: Mapping[str, Node], repos: Mapping[str, Repository],
                 record: BranchRecord, *, at: datetime | None = None,
                 points: Mapping[GuestRef, str] | None = None,
                 access: RepositoryAccess | None = None) -> BranchPlan:
    """The members again, from newer points, under new VMIDs (the old ones still exist)."""
    if record.imported:
        raise BranchFailed(f"branch {record.name} was imported from a bundle: its production "
                           "points are not here",
                           hint="Refresh it where it was made, export it again and import the "
                                "new bundle; or destroy and import the same bundle to reset it.")
    return plan_branch(catalog, nodes, repos, record.name, record.node,
                       guests=[str(m.source) for m in record.members], network=record.network,
                       sanitize=record.sanitize, at=at, points=points,
                       hostnames={m.source: m.hostname for m in record.members},
                       replacing=record, access=access)


def refresh_branch(plan: BranchPlan, old: BranchRecord, catalog: Catalog,
                   nodes: Mapping[str, Node], locks: Locks, reporter: Reporter, clock: Clock,
                   **create: Any) -> BranchRecord:
    """Create the new members (all or nothing), then remove the old ones, then record the
    branch with the new ones only (until then the record holds both)."""
    new = create_branch(plan, catalog, locks, reporter, clock, replacing=old, **create)
    node = require_node(nodes, old.node)
    kept = []
    for m in old.members:
        try:
            with locks.guest(m.clone, f"branch refresh {old.name}"):
                node.destroy(m.clone)
        except GuestNotFound:
            continue
        except VzError as e:
            kept.append(m)
            reporter.warning(f"branch {old.name}: the old member {m.clone} could not be removed "
                             f"from node {node.name}: {e}; 'vzbackup branch destroy' or "
                             "another refresh removes it")
    final = replace(new, members=tuple(kept) + new.members) if kept else new
    catalog.record_branch(final)  # kept: still the branch's, so that destroy removes them
    note_branch(catalog, create.get("repos") or {}, final, reporter, clock)
    return new


def note_branch(catalog: Catalog, repos: Mapping[str, Repository], record: BranchRecord,
                reporter: Reporter, clock: Clock, *, gone: bool = False) -> None:
    """The branch (or that it is gone) as a note in every repository holding one of its
    points, so that ``catalog rebuild`` brings it back. A failure only warns."""
    doc: dict[str, Any] = {"kind": "branch", "key": record.name, "time": clock.now().isoformat()}
    doc.update({"gone": True} if gone else {"record": record.to_dict()})
    for repo in _holding(catalog, repos, record):
        try:
            repo.put_note(doc)
        except VzError as e:
            reporter.warning(f"branch {record.name}: its note could not be written into "
                             f"{repo.name} ({e}): 'catalog rebuild' would not "
                             f"{'forget' if gone else 'bring back'} the branch")


def _holding(catalog: Catalog, repos: Mapping[str, Repository],
             record: BranchRecord) -> list[Repository]:
    names: set[str] = set()
    for pid in {pid for m in record.members for pid in (m.point_id, m.shipped_id)}:
        try:
            names |= {c.repository for c in catalog.point(pid).copies}
        except VzError:
            continue
    return [repos[n] for n in sorted(names) if n in repos]
