"""Branch bundles: a self-contained, verifiable file holding a branch's restore points.

A bundle is an uncompressed POSIX (ustar) tar, every member a regular file under
``vzbackup-bundle/``, in this order:

    branch.json                the branch's description (members, their points and configs)
    repo/config, repo/generation, repo/keys/repokey (encrypted only), repo/index/<id>,
    repo/manifests/<point id>, repo/packs/<2 hex>/<pack id>
                               a replica of the source repository (same family: same keys,
                               same chunk ids) holding only the branch's points
    SEAL                       JSON: the size and SHA-256 of every byte of the file before
                               SEAL's header, and, when encrypted, that digest sealed with
                               AES-256-GCM under the repository's key

The data is the repository's own stored form: compressed, and encrypted when the repository
is; the key object is sealed by the repository's passphrase, as in the repository, so the
bundle holds no key in the clear and the passphrase is needed to import an encrypted one.

Reading checks before anything is written: only known member names (no path outside the
bundle, no link, no device), no duplicate, nothing after SEAL, the bytes after SEAL all zero
(the tar's end blocks, at least two: a truncated file fails), then the digest of everything
before SEAL (a flipped byte anywhere fails), then the sealed digest with the key (an
encrypted bundle cannot be re-sealed without the passphrase). The members are then copied
into a folder while the digest is computed again, so a file changed between the two passes
is refused too. The digest is the bundle's id: ``export`` prints it and ``import --expect``
compares it, which also authenticates an unencrypted bundle.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import shutil
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import BadBundle, IntegrityError, KeyUnavailable, RepositoryError
from ..ports import Advance, BundleInfo, OpenedBundle, Repository
from .backends.local import LocalBackend
from .keys import Passphrase
from .repository import ChunkRepository, init_replica_repository, open_chunk_repository

log = logging.getLogger(__name__)

FORMAT = "vzbackup-bundle"
VERSION = 1
TOP = "vzbackup-bundle/"
DESCRIPTION = TOP + "branch.json"
SEAL = TOP + "SEAL"
REPO = TOP + "repo/"
SEAL_ID = hashlib.sha256(b"vzbackup-bundle-seal").digest()  # binds the sealed digest
MAX_MEMBER = 1 << 30
MAX_SMALL = 16 << 20  # branch.json, SEAL
BLOCK = tarfile.BLOCKSIZE
_MEMBER = re.compile(
    r"^vzbackup-bundle/(branch\.json|SEAL|repo/(config|generation|keys/repokey"
    r"|index/[0-9a-f]{64}|manifests/[0-9a-f]{64}|packs/([0-9a-f]{2})/\3[0-9a-f]{62}))$")

Opener = Callable[[str], Passphrase | None]  # repository name -> its passphrase


# ---- writing ---------------------------------------------------------------------------


class _Hashing:
    """A write-only file that hashes what goes through it."""

    def __init__(self, out: BinaryIO):
        self.out, self.sha, self.count = out, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.count += len(data)
        return self.out.write(data)

    def tell(self) -> int:
        return self.count


def write_bundle(path: Path, description: dict, points: list[tuple[Repository, str]],
                 passphrase_of: Opener, work_root: Path, advance: Advance | None = None
                 ) -> BundleInfo:
    """Write the bundle to ``path`` (atomically: a temporary file beside it, renamed). The
    mini repository is first built in a folder under ``work_root`` (not beside ``path``:
    a USB stick then needs room for the bundle once, not twice)."""
    sources = [r for r, _ in points]
    if not sources:
        raise RepositoryError("a bundle needs at least one restore point")
    first: ChunkRepository = sources[0]  # type: ignore[assignment]
    for repo in sources[1:]:
        if repo.config.family_id != first.config.family_id:  # type: ignore[attr-defined]
            raise RepositoryError(
                f"the branch's points are in repositories of different families ({first.name}, "
                f"{repo.name}): one bundle holds one family's chunks",
                hint="Replicate the points into one repository, or make the branch again "
                     "from points of one repository.")
    path = path.absolute()
    work = work_root / f".export-{secrets.token_hex(4)}"
    partial = path.parent / f".{path.name}.partial-{secrets.token_hex(4)}"
    try:
        work.mkdir(parents=True)
        backend = LocalBackend(work)
        init_replica_repository(first, backend)
        mini = open_chunk_repository("bundle", backend, passphrase=passphrase_of(first.name),
                                     cache_dir=None)
        for repo, point_id in points:
            repo.copy_point(point_id, mini, advance)
        body = json.dumps(description, indent=1, sort_keys=True).encode()
        digest, size = _archive(partial, body, mini)
        os.replace(partial, path)
        _fsync_dir(path.parent)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if partial.exists():
            partial.unlink()
    log.info("bundle %s written: %d bytes, digest %s", path, size, digest)
    return BundleInfo(str(path), digest, size, len(points), mini.config.encrypted)


def _archive(partial: Path, description: bytes, mini: ChunkRepository) -> tuple[str, int]:
    now = int(time.time())
    with open(partial, "xb") as raw:
        hashing = _Hashing(raw)
        with tarfile.open(fileobj=hashing, mode="w", format=tarfile.USTAR_FORMAT) as tar:  # type: ignore[call-overload]
            _add(tar, DESCRIPTION, description, now)
            for key in sorted(_repo_keys(mini)):
                _add(tar, REPO + key, mini.backend.get(key), now)
            digest, prefix = hashing.sha.hexdigest(), hashing.count
            assert prefix == tar.offset, "tarfile buffered a member"
            _add(tar, SEAL, _seal(digest, prefix, mini), now)
        raw.flush()
        os.fsync(raw.fileno())
        return digest, raw.tell()


def _repo_keys(mini: ChunkRepository) -> Iterator[str]:
    for info in mini.backend.list(""):
        if _MEMBER.match(REPO + info.key):
            yield info.key
        else:
            raise RepositoryError(f"bundle: unexpected object {info.key} in the bundle's repository")


def _add(tar: tarfile.TarFile, name: str, data: bytes, mtime: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), mtime, 0o600
    info.uname = info.gname = "root"
    tar.addfile(info, _BytesReader(data))


class _BytesReader:
    def __init__(self, data: bytes):
        self.view, self.pos = memoryview(data), 0

    def read(self, n: int = -1) -> bytes:
        end = len(self.view) if n < 0 else self.pos + n
        out = bytes(self.view[self.pos:end])
        self.pos += len(out)
        return out


def _seal(digest: str, prefix: int, mini: ChunkRepository) -> bytes:
    sealed = None
    if mini.config.encrypted:
        sealed = base64.b64encode(mini.codec.encode(SEAL_ID, digest.encode())).decode()
    return json.dumps({"format": FORMAT, "version": VERSION, "prefix_size": prefix,
                       "prefix_sha256": digest, "encrypted": mini.config.encrypted,
                       "sealed": sealed}, indent=1).encode()


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---- reading ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Member:
    name: str
    offset: int  # of its header
    data: int  # offset of its data
    size: int


def open_bundle(path: Path, into: Path, passphrase: Passphrase | None,
                expect: str | None = None) -> OpenedBundle:
    """Check the bundle at ``path`` whole, then copy its repository into the new folder
    ``into`` and open it. ``BadBundle`` (nothing left in ``into``) when anything is off."""
    where = f"bundle {path}"
    try:
        f = open(path, "rb")
    except OSError as e:
        raise BadBundle(f"{where}: cannot be read: {e.strerror or e}",
                        hint="Check the path and the file's permissions.") from None
    with f:
        members, seal = _members(f, where)
        digest, description = _walk(f, members, seal, None, where)
        if expect and not hmac.compare_digest(digest, expect.strip().lower()):
            raise BadBundle(f"{where}: its digest is {digest}, not the expected {expect}",
                            hint="This is not the bundle that was exported: copy it again.")
        encrypted = seal.get("encrypted")
        if encrypted not in (True, False) or (encrypted and not seal.get("sealed")):
            raise BadBundle(f"{where}: its seal is damaged")
        if encrypted and passphrase is None:
            raise KeyUnavailable(f"{where}: the bundle is encrypted; its repository's "
                                 "passphrase is needed to import it",
                                 hint="Give --passphrase-file FILE or --passphrase-env VAR.")
        if not encrypted and passphrase is not None:
            raise BadBundle(f"{where}: a passphrase was given but the bundle is not encrypted",
                            hint="A bundle exported from an encrypted repository is encrypted: "
                                 "this one was not, or was replaced. Compare its digest.")
        into.mkdir(parents=True)
        try:
            again, _ = _walk(f, members, seal, LocalBackend(into.absolute()), where)
            if again != digest:
                raise BadBundle(f"{where}: the file changed while it was read")
            repo = open_chunk_repository("bundle", LocalBackend(into.absolute()),
                                         passphrase=passphrase, cache_dir=None)
            if repo.config.encrypted != encrypted:
                raise BadBundle(f"{where}: its seal and its repository disagree on encryption")
            if encrypted:
                _check_sealed(repo, seal, digest, where)
            doc = _description(description, where)
        except BaseException:
            shutil.rmtree(into, ignore_errors=True)
            raise
    return OpenedBundle(doc, repo, digest, encrypted)


def _members(f: BinaryIO, where: str) -> tuple[list[_Member], dict]:
    """The members, checked by name and kind, with the parsed SEAL (not yet trusted)."""
    size = os.fstat(f.fileno()).st_size
    found: list[_Member] = []
    seen: set[str] = set()
    try:
        tar = tarfile.open(fileobj=f, mode="r:")  # type: ignore[call-overload]
        for ti in tar:
            if ti.name in seen:
                raise BadBundle(f"{where}: member {ti.name!r} appears twice")
            seen.add(ti.name)
            if found and found[-1].name == SEAL:
                raise BadBundle(f"{where}: member {ti.name!r} after the seal: an extra "
                                "member was added")
            if not _MEMBER.match(ti.name) or ".." in ti.name.split("/"):
                raise BadBundle(f"{where}: member {ti.name!r} is not part of a bundle (an "
                                "extra member or a path outside the bundle); nothing was "
                                "extracted")
            if not ti.isreg() or ti.sparse is not None:
                raise BadBundle(f"{where}: member {ti.name!r} is not a regular file")
            if ti.size > MAX_MEMBER or ti.offset_data + ti.size > size:
                raise BadBundle(f"{where}: member {ti.name!r} is cut short or too large: the "
                                "file is truncated")
            found.append(_Member(ti.name, ti.offset, ti.offset_data, ti.size))
    except tarfile.TarError as e:
        raise BadBundle(f"{where}: not a readable bundle (tar: {e}): damaged or truncated") from None
    if not found or found[0].name != DESCRIPTION:
        raise BadBundle(f"{where}: not a vzbackup branch bundle (no {DESCRIPTION} first)")
    if found[-1].name != SEAL:
        raise BadBundle(f"{where}: no seal at its end: the file is truncated or not a bundle")
    last = found[-1]
    tail = _read(f, last.data + _padded(last.size), size - last.data - _padded(last.size))
    if len(tail) < 2 * BLOCK or tail.count(0) != len(tail):
        raise BadBundle(f"{where}: its end blocks are missing or not zero: truncated or "
                        "changed after the seal")
    if last.size > MAX_SMALL:
        raise BadBundle(f"{where}: its seal is too large")
    try:
        seal = json.loads(_read(f, last.data, last.size))
        ok = (seal.get("format") == FORMAT and seal.get("version") == VERSION
              and int(seal["prefix_size"]) == last.offset)
    except (ValueError, KeyError, TypeError, AttributeError):
        ok = False
    if not ok:
        raise BadBundle(f"{where}: its seal is damaged or does not describe this file")
    return found[:-1], seal


def _walk(f: BinaryIO, members: list[_Member], seal: dict, sink: LocalBackend | None,
          where: str) -> tuple[str, bytes]:
    """Hash every byte before the seal, in order; put each repository member in ``sink``.
    Returns the digest and branch.json."""
    sha = hashlib.sha256()
    pos = 0
    description = b""
    for m in members:
        sha.update(_read(f, pos, m.data - pos))  # the header blocks
        data = _read(f, m.data, m.size)
        if len(data) != m.size:
            raise BadBundle(f"{where}: member {m.name} is cut short: the file is truncated")
        sha.update(data)
        pad = _read(f, m.data + m.size, _padded(m.size) - m.size)
        sha.update(pad)
        pos = m.data + _padded(m.size)
        if m.name == DESCRIPTION:
            description = data
        elif sink is not None:
            sink.put(m.name[len(REPO):], data)
    sha.update(_read(f, pos, int(seal["prefix_size"]) - pos))
    if sink is not None:
        sink.flush()
    digest = sha.hexdigest()
    if not hmac.compare_digest(digest, str(seal.get("prefix_sha256"))):
        raise BadBundle(f"{where}: its content does not match its seal (a byte was changed, "
                        "a member added or removed); nothing was written")
    return digest, description


def _check_sealed(repo: ChunkRepository, seal: dict, digest: str, where: str) -> None:
    if not repo.config.encrypted:
        raise BadBundle(f"{where}: the seal says encrypted, its repository is not")
    try:
        blob = base64.b64decode(str(seal["sealed"]), validate=True)
        ok = repo.codec.decode(SEAL_ID, blob, what="bundle seal", max_size=1024) == digest.encode()
    except (ValueError, IntegrityError, RepositoryError):
        ok = False
    if not ok:
        raise BadBundle(f"{where}: its seal was not made with this repository's key: the "
                        "bundle was changed and sealed again, or it is damaged")


def _description(data: bytes, where: str) -> dict:
    try:
        doc = json.loads(data)
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise BadBundle(f"{where}: {DESCRIPTION} is not a branch description")
    return doc


def _read(f: BinaryIO, offset: int, length: int) -> bytes:
    if length <= 0:
        return b""
    f.seek(offset)
    return f.read(length)


def _padded(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


class BundleStore:
    """``ports.Bundles``: writes with each repository's passphrase (building in
    ``work_root``), opens with the one given."""

    def __init__(self, passphrase_of: Opener, work_root: Path,
                 passphrase: Passphrase | None = None):
        self._passphrase_of = passphrase_of
        self._work_root = work_root
        self._passphrase = passphrase

    def write(self, path: Path, description: dict, points: list[tuple[Repository, str]],
              advance: Advance | None = None) -> BundleInfo:
        return write_bundle(path, description, points, self._passphrase_of, self._work_root,
                            advance)

    def open(self, path: Path, into: Path, expect: str | None = None) -> OpenedBundle:
        return open_bundle(path, into, self._passphrase, expect)
