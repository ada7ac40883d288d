"""Garbage collection: give back the space of chunks no restore point references.

Two phases, a grace period apart, so that a backup in flight never loses a chunk:

1. **Condemn.** Mark every chunk the manifests reference. A pack older than the grace period
   whose chunks are all unreferenced is condemned; one that is mostly unreferenced has its
   referenced chunks copied into a new pack first (repacked), then is condemned. Condemned
   packs go into a garbage record (``garbage.py``) and out of the index objects, which are
   rewritten (and merged). From then on no backup deduplicates against them, but a reader
   still finds their chunks through the record.
2. **Delete**, on a later run once a record's grace period is over: its packs are marked
   again against the manifests present *now*. A pack holding a chunk that a point written
   meanwhile references (a backup that started before the condemnation and deduplicated
   against it) is indexed again; the others are deleted, then the record.

Why it is safe:

- A pack younger than the grace period is never condemned: it may belong to a backup still
  writing, whose manifest does not exist yet.
- A backup that deduplicated against a chunk later condemned finds out at commit: it checks,
  after the index is refreshed, that every chunk it references is still indexed, and stores
  again (from the condemned pack, still there) any that is not (``rehome.py``).
- A point committed between a condemnation and its deletion is seen by phase 2, which keeps
  what it needs.
- Backups and GC never have to hold a lock against each other; two GCs of one repository
  must not run at once (the caller holds the repository's lock).
- Every step is flushed before the next one starts: generation, new packs, new index objects,
  garbage record, then the removal of replaced index objects. Killed at any point, the index
  names every chunk a manifest references (at worst twice); phase 2 treats a condemned pack
  that an index object names again as alive.
- A manifest that cannot be read stops GC: what it references is unknown.
- Packs no index object or record names (a killed run's last pack) are deleted once older
  than the grace period, unless a referenced chunk is missing from the index: then they may
  be what ``vzbackup repo reindex`` needs, and they are left alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from ..domain.manifest import Manifest, short_id
from ..errors import IntegrityError, ObjectNotFound, PointNotFound, RepositoryError
from ..ports import Backend, GcReport
from .cache import IndexCache
from .codec import Codec
from .format import PACK_PREFIX, bump_generation, garbage_key, index_key, pack_id_of, pack_key
from .garbage import encode_record
from .index import encode_index
from .packer import PackSink
from .packs import PACK_SIZE, PackEntry

log = logging.getLogger(__name__)

REPACK_UNUSED = 0.5  # repack a pack once at least this share of its bytes is unreferenced
INDEX_PACKS = 256  # packs per index object when GC rewrites the index


ManifestLoader = Callable[[str], Manifest]


def collect_garbage(backend: Backend, codec: Codec, index: IndexCache,
                    point_ids: Iterable[str], load_manifest: ManifestLoader, *,
                    grace: float, now: float, dry_run: bool = False,
                    repack_unused: float = REPACK_UNUSED,
                    pack_size: int = PACK_SIZE) -> GcReport:
    """One GC run (both phases) at time ``now`` with a grace period of ``grace`` seconds."""
    report = GcReport(dry_run=dry_run)
    index.refresh()
    referenced = _mark(point_ids, load_manifest, report)
    packs_on_backend = {pid: info for pid, info in _list_packs(backend)}
    unreachable = [c for c in referenced if index.locate(c) is None]
    if unreachable:
        report.warnings.append(
            f"{len(unreachable)} chunk(s) referenced by restore points are in no indexed pack: "
            "packs no index object names are kept ('vzbackup repo reindex' may find them; "
            "'vzbackup verify' names the points)")

    _delete_expired(backend, codec, index, referenced, now, dry_run, report)
    _condemn(backend, codec, index, referenced, packs_on_backend, grace, now, dry_run,
             repack_unused, pack_size, report)
    if not unreachable:
        _delete_unnamed(backend, index, packs_on_backend, grace, now, dry_run, report)
    if not dry_run:
        index.refresh()
    _pending(index, now, report)
    return report


# ---- marking ---------------------------------------------------------------------------

def _mark(point_ids: Iterable[str], load_manifest: ManifestLoader, report: GcReport
          ) -> set[bytes]:
    referenced: set[bytes] = set()
    for point_id in point_ids:
        try:
            manifest = load_manifest(point_id)
        except PointNotFound:
            continue  # removed since it was listed: it references nothing any more
        except (IntegrityError, RepositoryError) as exc:
            raise RepositoryError(
                f"garbage collection stopped: restore point {short_id(point_id)} cannot be "
                f"read ({exc.message}), so what it references is unknown; nothing was "
                "removed. Check it with 'vzbackup verify', then remove or restore that "
                "manifest before collecting garbage") from None
        referenced.update(ref.id for ref in manifest.chunks)
        report.points += 1
    report.referenced_chunks = len(referenced)
    return referenced


def _list_packs(backend: Backend) -> Iterator[tuple[bytes, "PackInfo"]]:
    for info in backend.list(PACK_PREFIX):
        pack_id = pack_id_of(info.key)
        if pack_id is not None:
            yield pack_id, PackInfo(info.size, info.mtime)


@dataclass(frozen=True)
class PackInfo:
    size: int
    mtime: float


# ---- phase 2: delete what waited out its grace period ----------------------------------

def _delete_expired(backend: Backend, codec: Codec, index: IndexCache, referenced: set[bytes],
                    now: float, dry_run: bool, report: GcReport) -> None:
    records = index.garbage_records()
    expired = [r for r in records if r.deletable_after <= now]
    if not expired:
        return
    waiting = {p for r in records if r.deletable_after > now for p in r.packs}
    revive: dict[bytes, list[PackEntry]] = {}
    delete: dict[bytes, int] = {}
    rescued: set[bytes] = set()
    for record in expired:
        for pack_id, entries in record.packs.items():
            if index.chunks.has_pack(pack_id) or pack_id in waiting or pack_id in revive:
                continue  # indexed again (a killed GC), or condemned again later
            needed = [e.chunk_id for e in entries
                      if e.chunk_id in referenced and e.chunk_id not in index
                      and e.chunk_id not in rescued]
            if needed:
                revive[pack_id] = entries
                rescued.update(needed)
            else:
                delete[pack_id] = sum(e.length for e in entries)
    report.revived, report.deleted = len(revive), len(delete)
    report.deleted_bytes = sum(delete.values())
    if dry_run:
        return
    if revive:
        index_id, blob = encode_index(codec, revive)
        backend.put(index_key(index_id), blob)
        backend.flush()
        index.add_object(index_id, blob, revive)
        log.warning("%s: %d condemned pack(s) indexed again: restore points written since "
                    "they were condemned need them", backend.url, len(revive))
    for pack_id in delete:
        _delete(backend, pack_key(pack_id))
    backend.flush()
    for record in expired:
        _delete(backend, garbage_key(record.record_id))
    backend.flush()
    log.info("%s: %d condemned pack(s) deleted (%d bytes), %d indexed again", backend.url,
             len(delete), report.deleted_bytes, len(revive))


# ---- phase 1: condemn unreferenced packs -------------------------------------------------

def _condemn(backend: Backend, codec: Codec, index: IndexCache, referenced: set[bytes],
             packs_on_backend: dict[bytes, PackInfo], grace: float, now: float, dry_run: bool,
             repack_unused: float, pack_size: int, report: GcReport) -> None:
    objects = {i: index.object_packs(i) for i in index.loaded_objects()}
    entries_of: dict[bytes, list[PackEntry]] = {}
    for packs in objects.values():
        for pack_id, entries in packs.items():
            entries_of.setdefault(pack_id, list(entries))
    report.packs = len(entries_of)
    report.index_objects = (len(objects), len(objects))
    keeper = _keepers(entries_of, referenced, packs_on_backend, grace, now)
    condemned: dict[bytes, list[PackEntry]] = {}
    repack: dict[bytes, list[PackEntry]] = {}  # pack -> the entries to copy out of it
    for pack_id, entries in entries_of.items():
        info = packs_on_backend.get(pack_id)
        if info is None or info.mtime > now - grace:
            continue  # young (maybe a backup in flight), or missing (verify reports it)
        used = list({e.chunk_id: e for e in reversed(entries)
                     if keeper.get(e.chunk_id) == pack_id}.values())
        total = sum(e.length for e in entries) or 1
        unused = 1 - sum(e.length for e in used) / total
        if not used:
            condemned[pack_id] = entries
        elif unused >= repack_unused:
            condemned[pack_id] = entries
            repack[pack_id] = used
    merge = len(objects) > max(4, len(entries_of) // INDEX_PACKS + 4)
    if not condemned and not merge:
        return
    report.condemned = len(condemned)
    report.condemned_bytes = sum(e.length for es in condemned.values() for e in es)
    report.repacked = len(repack)
    report.repacked_bytes = sum(e.length for es in repack.values() for e in es)
    kept = {p: e for p, e in entries_of.items() if p not in condemned}
    report.index_objects = (len(objects), -(-len(kept) // INDEX_PACKS))
    if dry_run:
        return
    bump_generation(backend)  # every client rebuilds its view of the index
    backend.flush()
    written: list[str] = []
    if repack:
        written = _repack(backend, codec, index, repack, pack_size)
    if condemned:
        record_id, blob = encode_record(codec, now, now + grace, condemned)
        backend.put(garbage_key(record_id), blob)
        backend.flush()
    _rewrite_index(backend, codec, kept, [i for i in objects if i not in written])
    log.info("%s: %d pack(s) condemned (%d bytes; %d repacked first), deletable after the "
             "grace period; %d index objects rewritten as %d", backend.url, len(condemned),
             report.condemned_bytes, len(repack), *report.index_objects)


def _keepers(entries_of: dict[bytes, list[PackEntry]], referenced: set[bytes],
             packs_on_backend: dict[bytes, PackInfo], grace: float, now: float
             ) -> dict[bytes, bytes]:
    """For each referenced chunk, the pack whose copy is kept when several hold it: a young
    pack (never condemned) first, then the pack with the largest referenced share, so that
    spare copies in sparse packs go without a repack."""
    share: dict[bytes, float] = {}
    holders: dict[bytes, list[bytes]] = {}
    for pack_id, entries in entries_of.items():
        live = [e for e in entries if e.chunk_id in referenced]
        share[pack_id] = sum(e.length for e in live) / (sum(e.length for e in entries) or 1)
        for e in live:
            holders.setdefault(e.chunk_id, []).append(pack_id)

    def rank(pack_id: bytes) -> tuple[int, float, bytes]:
        info = packs_on_backend.get(pack_id)
        state = 0 if info is None else 2 if info.mtime > now - grace else 1
        return state, share[pack_id], pack_id

    return {chunk: max(packs, key=rank) for chunk, packs in holders.items()}


def _repack(backend: Backend, codec: Codec, index: IndexCache,
            repack: dict[bytes, list[PackEntry]], pack_size: int) -> list[str]:
    """Copy the referenced chunks' stored forms, as they are, into new packs, each checked
    against its id on the way; flushed and indexed before anything is condemned. Returns
    the ids of the index objects put (one may be an old one put again: same content)."""
    sink = PackSink(backend, codec, index, pack_size=pack_size)
    with sink.slot() as pack:
        for pack_id, entries in repack.items():
            try:
                blob = memoryview(backend.get(pack_key(pack_id)))
            except ObjectNotFound:
                raise RepositoryError(f"{backend.url}: pack {short_id(pack_id.hex())} vanished "
                                      "while garbage was collected; nothing was removed") from None
            for e in entries:
                stored = blob[e.offset:e.offset + e.length]
                try:
                    codec.decode_chunk(e.chunk_id, stored, e.size)
                except IntegrityError as exc:
                    raise IntegrityError(
                        f"{backend.url}: pack {short_id(pack_id.hex())}: {exc.message}; garbage "
                        "collection stopped before removing anything. Run 'vzbackup verify "
                        "--all --repair' first") from None
                sink.append(pack, e.chunk_id, (stored,), e.size)
    sink.seal_all()
    sink.checkpoint()
    backend.flush()
    return sink.index_ids


def _rewrite_index(backend: Backend, codec: Codec, kept: dict[bytes, list[PackEntry]],
                   replaced: list[str]) -> None:
    """New index objects for ``kept`` (merged, INDEX_PACKS packs each), then the old ones go."""
    new_ids = set()
    items = sorted(kept.items())
    for start in range(0, len(items), INDEX_PACKS):
        index_id, blob = encode_index(codec, dict(items[start:start + INDEX_PACKS]))
        backend.put(index_key(index_id), blob)
        new_ids.add(index_id)
    backend.flush()
    for index_id in replaced:
        if index_id not in new_ids:
            _delete(backend, index_key(index_id))
    backend.flush()


# ---- packs nothing names --------------------------------------------------------------

def _delete_unnamed(backend: Backend, index: IndexCache, packs_on_backend: dict[bytes, PackInfo],
                    grace: float, now: float, dry_run: bool, report: GcReport) -> None:
    unnamed = {p: i for p, i in packs_on_backend.items()
               if not index.names_pack(p) and i.mtime <= now - grace}
    report.unnamed_deleted = len(unnamed)
    report.unnamed_bytes = sum(i.size for i in unnamed.values())
    if dry_run or not unnamed:
        return
    for pack_id in unnamed:
        _delete(backend, pack_key(pack_id))
    backend.flush()


def _pending(index: IndexCache, now: float, report: GcReport) -> None:
    waiting = [r for r in index.garbage_records() if r.deletable_after > now]
    named = {p: es for r in waiting for p, es in r.packs.items()}
    report.pending = len(named)
    report.pending_bytes = sum(e.length for es in named.values() for e in es)
    report.next_deletion = min((r.deletable_after for r in waiting), default=None)


def _delete(backend: Backend, key: str) -> None:
    try:
        backend.delete(key)
    except ObjectNotFound:
        pass  # gone already: a killed run got that far
