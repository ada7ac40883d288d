"""``vzbackup branch export|import``: a branch as one self-contained, verifiable file.

Export puts the points the branch ships (the sanitized clones' points, or the source points
when no script ran) into a bundle (``ports.Bundles``: a mini repository of the same family,
the branch description, a seal over every byte). Import needs nothing but the bundle and
the target node: no production node, repository or catalogue entry is asked for. It checks
the bundle whole before anything is written, unpacks its repository into
``<state dir>/bundles/<branch>/`` (kept, so that the branch can be reset), then makes every
member (the recorded VMID when it is free here, else the next free one; new MAC addresses;
the branch's network) all or nothing, and records the branch with origin ``bundle <digest>``.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..domain.branch import (IN_PROGRESS, BranchMember, BranchNetwork, BranchRecord,
                             branch_network, check_branch_name)
from ..domain.clone import clone_config, next_free_vmid
from ..domain.guests import GuestRef
from ..errors import BadBundle, BranchFailed, UsageError, VzError
from ..ports import (BundleInfo, Bundles, Catalog, Clock, GuestInfo, Locks, Node, Repository,
                     Reporter)
from .branch import Made, apply_config, find_branch, undo, undone
from .clone import used_vmids
from .restore import restore_point
from .selection import require_node

FORMAT = "vzbackup-bundle"
VERSION = 1


def export_branch(catalog: Catalog, repos: Mapping[str, Repository], bundles: Bundles,
                  reporter: Reporter, clock: Clock, name: str, path: Path) -> BundleInfo:
    record = find_branch(catalog, name)
    if not record.complete:
        raise BranchFailed(f"branch {name} is not complete (being made, or its making was "
                           "interrupted)",
                           hint=f"Wait for it, or 'vzbackup branch destroy {name}' and create it "
                                "again.")
    if record.imported:
        raise BranchFailed(f"branch {name} was imported from a bundle ({record.origin})",
                           hint="Copy that bundle file instead: it is what this branch came from.")
    points = [(_copy_of(catalog, repos, name, m), m.shipped_id) for m in record.members]
    description = {"format": FORMAT, "version": VERSION, "exported": clock.now().isoformat(),
                   "branch": record.to_dict()}
    total = sum(catalog.point(m.shipped_id).size for m in record.members)
    with reporter.progress(f"export branch {name} to {path}", total) as advance:
        info = bundles.write(path, description, points, advance)
    reporter.info(f"branch {name} exported to {info.path}: {info.size} bytes, digest {info.digest}")
    return info


def _copy_of(catalog: Catalog, repos: Mapping[str, Repository], name: str,
             m: BranchMember) -> Repository:
    """A configured repository holding a good copy of the member's shipped point."""
    point = catalog.point(m.shipped_id)
    for state in ("ok", "unverified"):
        for c in point.copies:
            if c.state == state and c.repository in repos:
                return repos[c.repository]
    raise BranchFailed(f"branch {name}: restore point {m.shipped_id[:12]} of {m.clone} (from "
                       f"{m.source}) has no good copy in any configured repository",
                       hint="Configure the repository that holds it, or refresh the branch.")


@dataclass(frozen=True)
class ImportResult:
    branch: BranchRecord
    digest: str
    folder: Path

    def to_dict(self) -> dict[str, Any]:
        return {"branch": self.branch.to_dict(), "digest": self.digest, "folder": str(self.folder)}


def import_branch(bundles: Bundles, path: Path, bundle_dir: Path, catalog: Catalog,
                  nodes: Mapping[str, Node], locks: Locks, reporter: Reporter, clock: Clock,
                  to_node: str, *, name: str | None = None, network: str | None = None,
                  expect: str | None = None) -> ImportResult:
    node = require_node(nodes, to_node)
    node.check()
    staging = bundle_dir / f".import-{secrets.token_hex(4)}"
    bundle_dir.mkdir(parents=True, exist_ok=True)
    opened = bundles.open(path, staging, expect)  # BadBundle: nothing written
    try:
        shipped = _shipped(opened.description, path)
        new_name = name or shipped.name
        why = check_branch_name(new_name)
        if why:
            raise UsageError(f"branch name {new_name!r}: {why}")
        if any(b.name == new_name for b in catalog.branches()):
            raise BranchFailed(f"branch {new_name} already exists here",
                               hint="Destroy it first, or import under another name (--name).")
        net = _network(network or shipped.network)
        planned = _targets(shipped, node, catalog)
        pending = BranchRecord(new_name, node.name, clock.now(), shipped.at, net.describe(),
                               shipped.sanitize, planned, IN_PROGRESS)
        catalog.record_branch(pending)  # a killed import leaves it for 'branch destroy'
        try:
            guests = _make_all(shipped, planned, net, new_name, opened.repository, node,
                               catalog, locks, reporter)
            folder = bundle_dir / new_name
            shutil.rmtree(folder, ignore_errors=True)  # a leftover of a branch destroyed by hand
            os.replace(staging, folder)
        except BaseException:
            catalog.forget_branch(new_name)
            raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    record = replace(pending, created=clock.now(), origin=f"bundle {opened.digest[:16]}")
    for guest in guests:
        catalog.upsert_guest(guest)
    catalog.record_branch(record)
    reporter.info(f"branch {new_name} imported on node {node.name}: {len(guests)} guests")
    return ImportResult(record, opened.digest, folder)


def _shipped(doc: Mapping[str, Any], path: Path) -> BranchRecord:
    try:
        if doc.get("version") != VERSION:
            raise ValueError(f"version {doc.get('version')!r}")
        return BranchRecord.from_dict(doc["branch"])
    except (ValueError, KeyError, TypeError) as e:
        raise BadBundle(f"bundle {path}: its branch description cannot be read ({e})") from None


def _network(text: str) -> BranchNetwork:
    try:
        return branch_network(text, set())
    except ValueError as e:
        raise UsageError(f"--network: {e}") from None


def _targets(shipped: BranchRecord, node: Node, catalog: Catalog) -> tuple[BranchMember, ...]:
    """The members here: the recorded VMID when it is free on this node and in the
    catalogue, else the next free one."""
    used = used_vmids(catalog, {node.name: node}) | {m.clone.vmid for b in catalog.branches()
                                                     for m in b.members}
    out = []
    for m in shipped.members:
        vmid = m.clone.vmid if m.clone.vmid not in used else next_free_vmid(used)
        used.add(vmid)
        out.append(replace(m, clone=GuestRef(m.clone.kind, vmid)))
    return tuple(out)


def _make_all(shipped: BranchRecord, planned: tuple[BranchMember, ...], net: BranchNetwork,
              name: str, repo: Repository, node: Node, catalog: Catalog, locks: Locks,
              reporter: Reporter) -> list[GuestInfo]:
    made = Made([], [])
    try:
        return [_make_one(m, target.clone, net, name, repo, node, locks, reporter, made)
                for m, target in zip(shipped.members, planned)]
    except BaseException:
        undo(made, catalog, reporter, name)
        raise


def _make_one(m: BranchMember, target: GuestRef, net: BranchNetwork, name: str,
              repo: Repository, node: Node, locks: Locks, reporter: Reporter,
              made: Made) -> GuestInfo:
    try:
        manifest = repo.load_manifest(m.shipped_id)
        config = clone_config(manifest.guest_config, hostname=m.hostname,
                              network=net.map_for(manifest.guest_config), randbytes=os.urandom)
        with locks.guest(target, f"branch import {name}"):
            with reporter.progress(f"import {m.clone} as {target} on {node.name}",
                                   manifest.size) as advance:
                restore_point(node, repo, m.shipped_id, target, False, advance,
                              name=m.hostname, config=config)
            made.clones.append((node, target))
            return apply_config(node, target, config, m.hostname)
    except VzError as e:
        raise BranchFailed(f"branch {name}: {m.clone} (of {m.source}) as {target} on node "
                           f"{node.name}: {e.message}; {undone(len(made.clones))}",
                           hint=e.hint) from None

