"""The repository's self-description (the ``config`` object, the key, the generation) and
the names of its objects.

``config`` (JSON, plaintext) is written last by :func:`init_repository`: its presence is what
makes a directory or bucket a repository. ``generation`` holds a random token that any
operation removing data (a repair, GC) replaces with :func:`bump_generation`, so that every
client rebuilds its view of the index.

Format 3 stores chunks in packs (``packs/``) located by index objects (``index/``), each
pack named by the hash of its trailer. Formats 1 (one object per chunk under ``chunks/``) and
2 (packs named by the hash of all their bytes) were written by development versions only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ..errors import KeyUnavailable, ObjectNotFound, RepositoryError
from ..ports import Backend
from .chunker import ChunkerParams
from .keys import KDF_COST, KEY_OBJECT, Passphrase, RepoKeys, open_keys, seal_keys

log = logging.getLogger(__name__)

FORMAT_NAME = "vzbackup-repository"
FORMAT_VERSION = 3
CONFIG_KEY = "config"
GENERATION_KEY = "generation"
ENCRYPTIONS = ("none", "aes-256-gcm")
_DEVELOPMENT_FORMATS = {1: "one object per chunk", 2: "packs named by the hash of all their bytes"}
_INIT_LEFTOVERS = frozenset({KEY_OBJECT, GENERATION_KEY})  # an interrupted init may leave them


@dataclass(frozen=True)
class RepoConfig:
    repo_id: str
    chunker: ChunkerParams = ChunkerParams()
    compression_level: int = 3
    encryption: str = "none"
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    family: str = ""  # shared by a repository and its replicas: same keys, same chunk ids

    @property
    def family_id(self) -> str:
        return self.family or self.repo_id

    def to_bytes(self) -> bytes:
        doc = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "id": self.repo_id,
               "chunker": {"algorithm": "fastcdc2020", **self.chunker.to_dict(),
                           "seed": "from-id-key" if self.encrypted else "none"},
               "compression": {"algorithm": "zstd", "level": self.compression_level},
               "encryption": self.encryption,
               "chunk_id": "hmac-sha256" if self.encrypted else "sha256",
               "created": self.created, "family": self.family_id}
        return json.dumps(doc, indent=1, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> "RepoConfig":
        try:
            doc = json.loads(data)
            name, version = doc.get("format"), doc.get("version")
        except (ValueError, AttributeError):
            raise RepositoryError(f"{where}: the {CONFIG_KEY} object is not valid JSON") from None
        if name != FORMAT_NAME:
            raise RepositoryError(f"{where}: not a vzbackup repository (format {name!r})")
        if version in _DEVELOPMENT_FORMATS:
            raise RepositoryError(
                f"{where}: this repository was created by a development version of vzbackup "
                f"(format {version}, {_DEVELOPMENT_FORMATS[version]}); this version reads "
                f"format {FORMAT_VERSION} (packs named by their trailer) only",
                hint="Create a new repository in an empty location with 'vzbackup repo init' "
                     "and back up again; then delete the old one.")
        if version != FORMAT_VERSION:
            raise RepositoryError(
                f"{where}: repository format version {version!r} is not supported by this "
                f"vzbackup (it reads version {FORMAT_VERSION})",
                hint="Upgrade vzbackup on this host to a version that knows this format.")
        try:
            return cls(doc["id"], ChunkerParams.from_dict(doc["chunker"]),
                       int(doc["compression"]["level"]), doc["encryption"], doc.get("created", ""),
                       doc.get("family", ""))
        except (KeyError, TypeError, ValueError) as exc:
            raise RepositoryError(f"{where}: the {CONFIG_KEY} object is damaged ({exc})") from None

    @property
    def encrypted(self) -> bool:
        return self.encryption != "none"


def chunker_seed(keys: RepoKeys | None) -> int:
    """A secret FastCDC gear seed for encrypted repositories, so that chunk sizes do not
    fingerprint known content; 0 (the standard gear table) otherwise."""
    if keys is None:
        return 0
    digest = hmac.digest(keys.id_key, b"vzbackup fastcdc seed", hashlib.sha256)
    return int.from_bytes(digest[:7], "big") | 1


def init_repository(backend: Backend, *, encryption: str = "none",
                    passphrase: Passphrase | None = None, chunker: ChunkerParams = ChunkerParams(),
                    compression_level: int = 3, kdf_cost: int = KDF_COST) -> RepoConfig:
    """Create a repository on an empty backend; refuse to overwrite an existing one."""
    if encryption not in ENCRYPTIONS:
        raise RepositoryError(f"{backend.url}: unknown encryption {encryption!r} "
                              f"(choose {' or '.join(ENCRYPTIONS)})")
    _refuse_non_empty(backend)
    if encryption != "none":
        if passphrase is None:
            raise KeyUnavailable(f"{backend.url}: an encrypted repository needs a passphrase")
        backend.put(KEY_OBJECT, seal_keys(RepoKeys.generate(), passphrase, kdf_cost=kdf_cost))
    repo_id = secrets.token_hex(16)
    config = RepoConfig(repo_id, chunker, compression_level, encryption, family=repo_id)
    bump_generation(backend)
    backend.flush()
    backend.put(CONFIG_KEY, config.to_bytes())
    backend.flush()
    log.info("initialised repository %s at %s (encryption %s)", config.repo_id, backend.url,
             encryption)
    return config


def init_replica(source: Backend, source_config: RepoConfig, target: Backend) -> RepoConfig:
    """Make the empty ``target`` a replica of the repository on ``source``: its own id, the
    same family, chunker, compression and (sealed, same passphrase) key, so chunks and
    manifests copy over as they are."""
    _refuse_non_empty(target)
    if source_config.encrypted:
        target.put(KEY_OBJECT, source.get(KEY_OBJECT))
    config = RepoConfig(secrets.token_hex(16), source_config.chunker,
                        source_config.compression_level, source_config.encryption,
                        family=source_config.family_id)
    bump_generation(target)
    target.flush()
    target.put(CONFIG_KEY, config.to_bytes())
    target.flush()
    log.info("initialised repository %s at %s as a replica of %s", config.repo_id, target.url,
             source.url)
    return config


def _refuse_non_empty(backend: Backend) -> None:
    if backend.stat(CONFIG_KEY) is not None:
        raise RepositoryError(f"{backend.url}: a repository already exists here",
                              hint="Use another URL, or use the existing repository.")
    stray = next((i.key for i in backend.list() if i.key not in _INIT_LEFTOVERS), None)
    if stray is not None:
        raise RepositoryError(f"{backend.url}: not empty (it holds {stray}); refusing to "
                              "create a repository here", hint="Use an empty location.")


def open_repository(backend: Backend, passphrase: Passphrase | None
                    ) -> tuple[RepoConfig, RepoKeys | None]:
    """Read the repository's config and, when it is encrypted, open its key."""
    try:
        config = RepoConfig.from_bytes(backend.get(CONFIG_KEY), backend.url)
    except ObjectNotFound:
        raise RepositoryError(
            f"{backend.url}: no vzbackup repository here (no {CONFIG_KEY})",
            hint="Check the URL, or create one with 'vzbackup repo init'.") from None
    if not config.encrypted:
        return config, None
    if passphrase is None:
        raise KeyUnavailable(f"{backend.url}: the repository is encrypted and no passphrase "
                             "was given")
    try:
        sealed = backend.get(KEY_OBJECT)
    except ObjectNotFound:
        raise RepositoryError(f"{backend.url}: the key object {KEY_OBJECT} is missing") from None
    return config, open_keys(sealed, passphrase, backend.url)


def read_generation(backend: Backend) -> str:
    try:
        return backend.get(GENERATION_KEY).decode("ascii").strip()
    except (ObjectNotFound, UnicodeDecodeError):
        return ""


def bump_generation(backend: Backend) -> str:
    """Mark that chunks may have been deleted: every client cache becomes invalid.
    Call it *before* deleting chunks, and flush."""
    token = secrets.token_hex(16)
    backend.put(GENERATION_KEY, token.encode("ascii"))
    return token


PACK_PREFIX = "packs/"
INDEX_PREFIX = "index/"
MANIFEST_PREFIX = "manifests/"
QUARANTINE_PREFIX = "quarantine/"
GARBAGE_PREFIX = "garbage/"
_HEX = frozenset("0123456789abcdef")


def is_object_id(name: str) -> bool:
    """Whether ``name`` is a 64-digit lowercase hex id (a manifest's, a pack's...)."""
    return len(name) == 64 and set(name) <= _HEX


def pack_key(pack_id: bytes) -> str:
    """Packs fan out over 256 folders by their first byte."""
    hexid = pack_id.hex()
    return f"{PACK_PREFIX}{hexid[:2]}/{hexid}"


def pack_id_of(key: str) -> bytes | None:
    """The pack id a ``packs/`` key names, or None for a stray object."""
    name = key.rpartition("/")[2]
    return bytes.fromhex(name) if key.startswith(PACK_PREFIX) and is_object_id(name) else None


def index_key(index_id: str) -> str:
    return INDEX_PREFIX + index_id


def manifest_key(point_id: str) -> str:
    return MANIFEST_PREFIX + point_id


def garbage_key(record_id: str) -> str:
    return GARBAGE_PREFIX + record_id
