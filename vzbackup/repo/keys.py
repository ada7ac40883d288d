"""Repository keys: a data encryption key and an id key, sealed under a passphrase.

The object ``keys/repokey`` (JSON) holds scrypt parameters, a salt, a nonce and the
AES-256-GCM-sealed key material. The passphrase is read only from a file or an environment
variable; neither it nor the keys ever appear in a message, a repr or a log.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ..errors import KeyUnavailable, RepositoryError

log = logging.getLogger(__name__)

KEY_OBJECT = "keys/repokey"
KEYFILE_VERSION = 1
KDF_COST = 2**17  # scrypt N: ~0.3 s and 128 MiB to open, once per process


class Passphrase:
    """A secret string that never shows itself in a repr, str or traceback."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        if not value:
            raise KeyUnavailable("the passphrase is empty")
        self._value = value

    @classmethod
    def from_file(cls, path: Path | str) -> "Passphrase":
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise KeyUnavailable(
                f"cannot read the passphrase file {path}: {exc.strerror}") from None
        return cls(text.rstrip("\r\n"))

    @classmethod
    def from_env(cls, name: str) -> "Passphrase":
        value = os.environ.get(name)
        if value is None:
            raise KeyUnavailable(
                f"the environment variable {name} holding the passphrase is not set")
        return cls(value)

    def reveal(self) -> bytes:
        return self._value.encode("utf-8")

    def __repr__(self) -> str:
        return "Passphrase(<redacted>)"

    __str__ = __repr__

    def __reduce__(self):  # never pickle a secret into a subprocess or a cache by accident
        raise TypeError("a Passphrase cannot be pickled")


def as_passphrase(value: "Passphrase | str | None") -> "Passphrase | None":
    if value is None or isinstance(value, Passphrase):
        return value
    return Passphrase(value)


@dataclass(frozen=True)
class RepoKeys:
    """The data encryption key (AES-256-GCM) and the id key (HMAC-SHA-256 chunk ids)."""

    enc_key: bytes = field(repr=False)
    id_key: bytes = field(repr=False)

    @classmethod
    def generate(cls) -> "RepoKeys":
        return cls(os.urandom(32), os.urandom(32))

    def __repr__(self) -> str:
        return "RepoKeys(<redacted>)"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _kek(passphrase: Passphrase, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.reveal())


def seal_keys(keys: RepoKeys, passphrase: Passphrase, *, kdf_cost: int = KDF_COST) -> bytes:
    """The bytes of a ``keys/repokey`` object holding ``keys`` under ``passphrase``."""
    salt, nonce = os.urandom(16), os.urandom(12)
    params = {"n": kdf_cost, "r": 8, "p": 1}
    secret = json.dumps({"enc_key": _b64(keys.enc_key), "id_key": _b64(keys.id_key)}).encode()
    sealed = AESGCM(_kek(passphrase, salt, **params)).encrypt(nonce, secret, b"vzbackup-repokey")
    doc = {"version": KEYFILE_VERSION, "kdf": "scrypt", **params, "salt": _b64(salt),
           "cipher": "aes-256-gcm", "nonce": _b64(nonce), "sealed": _b64(sealed)}
    return json.dumps(doc, indent=1).encode()


def open_keys(data: bytes, passphrase: Passphrase, where: str) -> RepoKeys:
    """Unseal a ``keys/repokey`` object; ``where`` names the repository in messages."""
    try:
        doc = json.loads(data)
        if doc.get("version") != KEYFILE_VERSION or doc.get("kdf") != "scrypt":
            raise ValueError(f"unsupported key format {doc.get('version')!r}/{doc.get('kdf')!r}")
        salt, nonce, sealed = (base64.b64decode(doc[k]) for k in ("salt", "nonce", "sealed"))
        kek = _kek(passphrase, salt, int(doc["n"]), int(doc["r"]), int(doc["p"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise RepositoryError(f"{where}: the key object {KEY_OBJECT} is damaged ({exc})") from None
    try:
        secret = json.loads(AESGCM(kek).decrypt(nonce, sealed, b"vzbackup-repokey"))
    except InvalidTag:
        raise KeyUnavailable(f"{where}: wrong passphrase (it does not open the repository "
                             f"key {KEY_OBJECT})") from None
    return RepoKeys(base64.b64decode(secret["enc_key"]), base64.b64decode(secret["id_key"]))
