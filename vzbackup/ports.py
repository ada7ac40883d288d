"""The interfaces operations see. Only ``wiring.py`` knows the classes behind them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from .domain.branch import BranchRecord
from .domain.checkpoints import Checkpoint
from .domain.clone import CloneRecord
from .domain.guests import GuestRef, parse_guest
from .domain.manifest import Manifest
from .domain.points import RestorePoint
from .results import GuestOutcome, RunRecord

Advance = Callable[[int], None]  # progress callback: "n more bytes done"


# ---- storage -------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    mtime: float  # seconds since the epoch


class Backend(Protocol):
    """A whole-object store. Keys are '/'-separated relative paths.

    ``put`` is atomic: readers see the old object, or the whole new one, never a part.
    Errors are ``vzbackup.errors.RepositoryError``; ``get`` of a missing key raises
    ``ObjectNotFound``.
    """

    url: str  # for messages: never holds a secret
    capabilities: frozenset[str]

    def put(self, key: str, data: bytes) -> None: ...
    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes: ...
    def stat(self, key: str) -> ObjectInfo | None: ...
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]: ...
    def delete(self, key: str) -> None: ...
    def flush(self) -> None:
        """Make every object put so far durable (fsync). Called before a manifest is written."""
        ...


@dataclass(frozen=True)
class PointDraft:
    """What a backup knows before the stream is read; the repository adds the rest."""

    guest: GuestRef
    guest_name: str
    platform: str
    source_node: str
    created: datetime
    guest_config: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class WriteStats:
    bytes_in: int = 0
    chunks: int = 0
    new_chunks: int = 0
    new_bytes_stored: int = 0  # after compression and encryption


class PointWriter(Protocol):
    def write(self, stream: BinaryIO, advance: Advance | None = None) -> None:
        """Read ``stream`` to EOF, storing every chunk the repository lacks."""
        ...

    def commit(self) -> Manifest:
        """Flush the chunks, then write the manifest atomically. Returns it (``.id``)."""
        ...

    def abort(self) -> None:
        """Forget the point; chunks already written stay for GC to collect."""
        ...

    @property
    def stats(self) -> WriteStats: ...


class PointReader(Protocol):
    """A restore point's stream. Every chunk is checked as it is read; reaching EOF also
    checks the whole stream's SHA-256. A mismatch raises ``IntegrityError`` naming the
    restore point and the chunk."""

    manifest: Manifest

    def read(self, n: int = -1) -> bytes: ...
    def readinto(self, buf: Any) -> int: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class VerifyReport:
    point_id: str
    ok: bool
    chunks_checked: int
    problems: tuple[str, ...] = ()
    damaged_chunks: tuple[bytes, ...] = ()  # present but failing their check


@dataclass(frozen=True)
class CopyStats:
    chunks: int  # chunks the point has
    chunks_sent: int  # chunks the target lacked and received
    bytes_sent: int


@dataclass(frozen=True)
class ReindexStats:
    packs: int  # packs named anew
    chunks: int  # chunks they hold
    rejected: int  # packs left out: torn or damaged


@dataclass
class GcReport:
    """What one garbage collection run of a repository did (or, dry, would do)."""

    points: int = 0  # manifests marked
    referenced_chunks: int = 0
    packs: int = 0  # indexed packs before this run
    condemned: int = 0  # packs taken out of the index this run (phase 1)
    condemned_bytes: int = 0
    repacked: int = 0  # of those, packs whose referenced chunks were copied first
    repacked_bytes: int = 0  # bytes copied into new packs
    deleted: int = 0  # condemned packs deleted this run (phase 2)
    deleted_bytes: int = 0
    revived: int = 0  # condemned packs indexed again: a later point needs them
    unnamed_deleted: int = 0  # packs no index object named (killed runs)
    unnamed_bytes: int = 0
    index_objects: tuple[int, int] = (0, 0)  # before, after
    pending: int = 0  # condemned packs still waiting out the grace period
    pending_bytes: int = 0
    next_deletion: float | None = None  # when the earliest of them may go (epoch seconds)
    warnings: list[str] = field(default_factory=list)
    dry_run: bool = False

    @property
    def freed_bytes(self) -> int:
        return self.deleted_bytes + self.unnamed_bytes



class Repository(Protocol):
    name: str
    url: str

    def new_point(self, draft: PointDraft) -> PointWriter: ...
    def open_point(self, point_id: str) -> PointReader: ...
    def load_manifest(self, point_id: str) -> Manifest: ...
    def point_ids(self) -> Iterator[str]: ...
    def verify_point(self, point_id: str, *, full: bool = True, advance: Advance | None = None) -> VerifyReport: ...

    def copy_point(self, point_id: str, target: "Repository", advance: Advance | None = None
                   ) -> CopyStats:
        """Copy a point to ``target`` (a replica of this repository): the chunks it lacks,
        then the manifest. Idempotent and resumable."""
        ...

    def index_unnamed_packs(self) -> ReindexStats:
        """Name again, in a new index object, every sound pack no index object names."""
        ...

    def put_note(self, doc: dict[str, Any]) -> str:
        """Store a small record (``kind``, ``key``, ``time``...) that ``catalog rebuild``
        reads back; a later one with the same kind and key supersedes it."""
        ...

    def notes(self, *, with_gone: bool = False) -> dict[tuple[str, str], dict[str, Any]]:
        """(kind, key) -> the latest note, those marked ``gone`` left out unless
        ``with_gone``."""
        ...

    def remove_point(self, point_id: str) -> None:
        """Delete the point's manifest (prune); its chunks go with garbage collection.
        Removing a point that is not there is no error."""
        ...

    def collect_garbage(self, *, grace: float, now: float, dry_run: bool = False) -> GcReport:
        """One garbage collection run (see ``repo/gc.py``); ``grace`` in seconds."""
        ...

    def quarantine_chunks(self, chunk_ids: tuple[bytes, ...]) -> int:
        """Move damaged chunks out of the way so the next backup of the same data stores
        them again (healing every point that shares them). Returns how many were moved."""
        ...


@dataclass(frozen=True)
class BundleInfo:
    path: str
    digest: str  # SHA-256 of the bundle up to its seal: its id
    size: int
    points: int
    encrypted: bool


@dataclass(frozen=True)
class OpenedBundle:
    """A bundle checked whole and unpacked: its description and its repository."""

    description: dict[str, Any]
    repository: Repository
    digest: str
    encrypted: bool


class Bundles(Protocol):
    """Branch bundles (``repo/bundle.py``): a mini repository and a description, sealed."""

    def write(self, path: Path, description: dict[str, Any],
              points: list[tuple[Repository, str]], advance: Advance | None = None
              ) -> BundleInfo: ...

    def open(self, path: Path, into: Path, expect: str | None = None) -> OpenedBundle:
        """Check the bundle whole (``BadBundle``), then unpack it into the new folder
        ``into``; nothing is left there when it fails."""
        ...


# ---- nodes -----------------------------------------------------------------------------


@dataclass(frozen=True)
class GuestInfo:
    ref: GuestRef
    name: str
    node: str
    status: str = "unknown"  # running | stopped | unknown
    config: dict[str, Any] = field(default_factory=dict)

    # Selection by tag and pool (jobs) reads the guest's config, as Proxmox writes it:
    # ``tags: web;prod`` (';', ',' or spaces between tags) and ``pool: NAME``. A platform
    # that learns them elsewhere (pvesh) puts them under these keys.
    @property
    def tags(self) -> frozenset[str]:
        raw = str(self.config.get("tags") or "")
        return frozenset(t for t in raw.replace(",", ";").replace(" ", ";").split(";") if t)

    @property
    def pool(self) -> str | None:
        return str(self.config.get("pool") or "") or None

    def to_dict(self) -> dict[str, Any]:
        return {"ref": str(self.ref), "name": self.name, "node": self.node,
                "status": self.status, "config": self.config}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "GuestInfo":
        ref = parse_guest(d["ref"]).ref
        if ref is None:
            raise ValueError(f"not a guest reference: {d['ref']!r}")
        return cls(ref, d["name"], d["node"], d.get("status", "unknown"),
                   dict(d.get("config") or {}))


@dataclass
class Dump:
    """An open dump: read ``stream`` to EOF; leaving the context checks the dumper's exit
    and adds to ``warnings`` what did not fail the dump but must be told (files changed)."""

    guest: GuestInfo
    stream: BinaryIO
    config: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Leftover:
    """A snapshot vzbackup made and a crash left behind (found by its name and mark)."""

    id: str  # what the snapshotter removes: a path, or vg/lv
    guest: str  # the guest it was taken for (ct101), from its name
    kind: str  # the snapshotter: lvm | btrfs
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "guest": self.guest, "kind": self.kind, "detail": self.detail}


class PersistentSnapshots(Protocol):
    """Snapshots that outlive a dump (checkpoints): btrfs subvolumes."""

    def keep(self, path: Path, dest: Path) -> None:
        """A read-only snapshot of ``path`` at ``dest``."""
        ...

    def writable(self, snap: Path, dest: Path) -> None:
        """A writable snapshot of ``snap`` at ``dest`` (to put in the guest's place)."""
        ...

    def delete(self, snap: Path) -> None: ...


class VolumeCheckpoints(Protocol):
    """Checkpoints kept as snapshots of the whole volume holding the guests (LVM), one per
    guest and label; a guest is rolled back from its own folder in its snapshot."""

    def guard(self, guests: list[str], label: str) -> None:
        """Raise ``NoSpace`` with the numbers unless snapshots for all ``guests`` fit."""
        ...

    def take(self, guest: str, label: str) -> None: ...
    def exists(self, guest: str, label: str) -> bool: ...

    def view(self, guest: str, label: str, path: Path) -> AbstractContextManager[Path]:
        """``path`` (on the volume) as it was at the checkpoint, read-only, in the block."""
        ...

    def drop(self, guest: str, label: str) -> bool:
        """Remove it; False when it is not there."""
        ...


class Snapshotter(Protocol):
    name: str
    persistent: PersistentSnapshots | None  # None: cannot keep snapshots (no checkpoints)
    volume_checkpoints: VolumeCheckpoints | None  # lvm: checkpoints as volume snapshots

    def snapshot(self, path: Path, tag: str) -> AbstractContextManager[Path]:
        """A read-only, consistent view of ``path``, removed on exit whatever happens.
        ``tag`` is ``<guest>-<random>`` (ct101-1a2b3c4d): it names the snapshot, so that a
        sweep knows which guest's lock to take before removing a leftover."""
        ...

    def leftovers(self, guests_dir: Path) -> list[Leftover]:
        """Snapshots this snapshotter made on this node and did not remove (a crash);
        never one it did not make. ``guests_dir``: the folder holding the guests."""
        ...

    def remove(self, leftover: Leftover) -> None:
        """Unmount and remove a leftover; its guest's lock is held by the caller."""
        ...


class Platform(Protocol):
    name: str
    guests_dir: Path  # the folder holding the guests' folders (snapshots are made beside them)

    def list_guests(self) -> list[GuestInfo]: ...
    def find_guest(self, ref: GuestRef) -> GuestInfo | None: ...

    def dump(self, guest: GuestInfo, snapshotter: Snapshotter) -> AbstractContextManager[Dump]:
        """Open a dump stream of ``guest``. Raises ``DumpFailed`` on entry or on exit."""
        ...

    def restore(self, target: GuestRef, stream: BinaryIO, *, name: str, config: dict[str, Any],
                force: bool = False) -> GuestInfo:
        """Create ``target`` from ``stream``. Reads the stream to EOF *before* the guest is put
        in place, so a stream that fails verification never replaces anything. Raises
        ``GuestExists`` (without ``force``), ``UnsafeArchive``, ``RestoreFailed``."""
        ...

    def checkpoint_space(self, refs: list[GuestRef], label: str, snapshotter: Snapshotter) -> None:
        """Raise ``NoSpace`` (with the numbers) unless checkpoints of all ``refs`` fit."""
        ...

    def take_checkpoint(self, ref: GuestRef, label: str, snapshotter: Snapshotter) -> None: ...
    def rollback_checkpoint(self, ref: GuestRef, label: str, snapshotter: Snapshotter) -> None: ...
    def drop_checkpoint(self, ref: GuestRef, label: str, snapshotter: Snapshotter) -> None: ...

    def destroy(self, target: GuestRef) -> None:
        """Remove the guest and its volumes (a branch's clone). Raises ``GuestNotFound``."""
        ...

    def sanitize(self, target: GuestRef, script: str, env: dict[str, str]) -> None:
        """Run a sanitize script on the guest's offline file system (``platforms/sanitize.py``).
        Raises ``GuestCommandFailed`` when it fails."""
        ...

    def reconfigure(self, target: GuestRef, changes: dict[str, str]) -> GuestInfo:
        """Set config keys of an existing guest (``hostname``/``name``, ``netN``), as
        ``pct set``/``qm set`` do; other keys are left alone. Raises ``GuestNotFound``."""
        ...

    def start_guest(self, ref: GuestRef) -> GuestInfo:
        """Start a stopped guest (``pct start``, ``qm start``, ``vzctl start``). Raises
        ``UsageError`` where guests do not run (directory), ``GuestCommandFailed``."""
        ...


@dataclass
class ImportedArchive:
    """A vzdump archive being imported: its decompressed ``stream`` and what its name and
    sidecars say. Leaving the context checks the content (``UnsafeArchive``, ``BadArchive``)."""

    name: str  # the original file name
    guest: GuestRef
    guest_name: str
    platform: str  # proxmox | openvz
    created: datetime  # from the name (the node's local time)
    config: dict[str, Any]
    labels: dict[str, str]
    stream: BinaryIO
    warnings: list[str] = field(default_factory=list)


class Archives(Protocol):
    """vzdump archive files on this host (``vzbackup import`` and ``export``)."""

    def find(self, paths: list[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
        """Importable archives in ``paths`` (files or folders), and the files that look
        like vzdump's but cannot be imported, with why."""
        ...

    def open(self, path: Path) -> AbstractContextManager[ImportedArchive]: ...

    def write(self, stream: BinaryIO, directory: Path, name: str, *, prefix: bytes = b"",
              sidecars: dict[str, bytes] | None = None) -> Path:
        """Write ``prefix`` + ``stream`` as the archive ``name`` (compressed by its
        extension) in ``directory``, with ``sidecars`` (file name -> bytes) beside it."""
        ...

    def config_member(self, path: str, text: str) -> bytes:
        """A tar member holding ``text``, to put before a tar stream."""
        ...


class NodeAgent(Protocol):
    """``vzbackup agent`` on a node, reached over SSH: runs a whole job there, so that data
    flows between the node and a repository without passing through this process."""

    def run(self, job: dict[str, Any], advance: Advance | None = None) -> dict[str, Any]:
        """Run ``job`` on the node; its result. An error raised there is raised here as the
        same class (same exit code), naming the node."""
        ...


class Node(Protocol):
    """A place where guests live: this host, or a node over SSH. Dumps and restores run
    there; the streams pass through this process unless ``agent`` runs the whole job."""

    name: str
    platform_name: str
    agent: NodeAgent | None  # None: the node is this host

    def check(self) -> None:
        """Raise ``NodeUnreachable`` unless the node answers."""
        ...

    def list_guests(self) -> list[GuestInfo]: ...

    def dump(self, guest: GuestInfo) -> AbstractContextManager[Dump]:
        """A dump of ``guest`` taken on the node (through its snapshotter); see ``Platform``."""
        ...

    def restore(self, target: GuestRef, stream: BinaryIO, *, name: str, config: dict[str, Any],
                force: bool = False) -> GuestInfo:
        """``Platform.restore`` on the node."""
        ...

    def reconfigure(self, target: GuestRef, changes: dict[str, str]) -> GuestInfo:
        """``Platform.reconfigure`` on the node."""
        ...

    def start(self, ref: GuestRef) -> GuestInfo:
        """``Platform.start_guest`` on the node."""
        ...

    def checkpoint_space(self, refs: list[GuestRef], label: str) -> None:
        """Raise ``NoSpace`` (needed and available, in numbers) unless checkpoints of every
        guest in ``refs`` (a group, on this node) fit; called before any is taken."""
        ...

    def destroy(self, target: GuestRef) -> None:
        """``Platform.destroy`` on the node."""
        ...

    def sanitize(self, target: GuestRef, script: str, env: dict[str, str]) -> None:
        """``Platform.sanitize`` on the node (the script is a path on the node)."""
        ...

    def checkpoint(self, ref: GuestRef, label: str) -> None:
        """Take checkpoint ``label`` of ``ref`` (a snapshot on the node). Raises
        ``CheckpointFailed`` (platform cannot, exists) or ``NoSpace`` (the guard)."""
        ...

    def rollback(self, ref: GuestRef, label: str) -> None:
        """Put ``ref`` back as it was at checkpoint ``label``."""
        ...

    def drop_checkpoint(self, ref: GuestRef, label: str) -> None:
        """Remove checkpoint ``label`` of ``ref``; nothing if it is already gone."""
        ...

    def leftover_snapshots(self) -> list[Leftover]:
        """Snapshots vzbackup made on the node and a crash left (``Snapshotter.leftovers``)."""
        ...

    def remove_snapshot(self, leftover: Leftover) -> None:
        """Remove one leftover; the caller holds its guest's lock."""
        ...


class RepositoryAccess(Protocol):
    def spec_for(self, repository: str, node: str) -> dict[str, Any] | None:
        """How ``node`` opens ``repository`` by itself: URL, options and the secrets it
        needs (sent on the agent's stdin, never in argv or logs). None when it cannot: the
        repository is a folder on this host, so data passes through this process."""
        ...

    def home(self, repository: str) -> str | None:
        """The node whose own disk holds ``repository``, if any."""
        ...


# ---- catalogue, locks, reporting ----------------------------------------------------------


class Catalog(Protocol):
    def upsert_guest(self, guest: GuestInfo) -> None: ...
    def guests(self) -> list[GuestInfo]: ...
    def record_point(self, manifest: Manifest, point_id: str, repository: str) -> RestorePoint: ...
    def points(self, guest: GuestRef | None = None) -> list[RestorePoint]: ...
    def point(self, id_or_prefix: str) -> RestorePoint: ...
    def record_copy_state(self, point_id: str, repository: str, state: str, when: datetime,
                          verified_level: str | None = None) -> None: ...
    def forget_copy(self, point_id: str, repository: str) -> None: ...
    def start_run(self, kind: str, args: dict[str, Any], when: datetime) -> int: ...
    def record_item(self, run_id: int, item: GuestOutcome) -> None: ...
    def finish_run(self, run_id: int, status: str, when: datetime) -> None: ...
    def runs(self, limit: int = 20, kind: str | None = None) -> list[RunRecord]: ...
    def run(self, run_id: int) -> RunRecord: ...
    def last_failures(self) -> dict[str, tuple[RunRecord, GuestOutcome]]: ...
    def record_clone(self, clone: CloneRecord) -> None: ...
    def clones(self, source: GuestRef | None = None) -> list[CloneRecord]: ...
    def record_checkpoint(self, checkpoint: Checkpoint) -> None: ...
    def checkpoints(self) -> list[Checkpoint]: ...
    def forget_checkpoint(self, guest: GuestRef, label: str) -> None: ...
    def record_branch(self, branch: BranchRecord) -> None: ...
    def branches(self) -> list[BranchRecord]: ...
    def forget_branch(self, name: str) -> None: ...


class Locks(Protocol):
    def guest(self, ref: GuestRef, purpose: str) -> AbstractContextManager[None]:
        """Hold the guest's lock; raise ``LockBusy`` at once if another process has it."""
        ...


class JobLocks(Protocol):
    def job(self, name: str, purpose: str) -> AbstractContextManager[None]:
        """Hold job ``name``'s lock (cluster-wide with a PostgreSQL catalogue); raise
        ``LockBusy`` at once if another process, here or on another host, has it."""
        ...

    def repository(self, name: str, purpose: str) -> AbstractContextManager[None]:
        """Hold repository ``name``'s lock for what removes data from it (prune, GC);
        ``LockBusy`` at once if taken. Backups never need it."""
        ...


class DumpSlots(Protocol):
    def hold(self, node: str) -> AbstractContextManager[None]:
        """Wait for a free dump slot overall and on ``node``; hold it for the block."""
        ...


class Notifier(Protocol):
    def send(self, subject: str, text: str, document: dict[str, Any]) -> list[str]:
        """Send one message (mail: subject and text; webhook: the JSON document). Returns
        what could not be delivered, one line each; never raises for a delivery failure."""
        ...


class Reporter(Protocol):
    def info(self, message: str) -> None: ...
    def warning(self, message: str) -> None: ...
    def progress(self, description: str, total: int | None) -> AbstractContextManager[Advance]: ...


class Clock(Protocol):
    def now(self) -> datetime: ...
