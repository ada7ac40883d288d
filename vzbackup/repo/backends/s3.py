"""A repository in an S3-compatible bucket (``s3://bucket/prefix``): AWS, Ceph RGW,
MinIO, SeaweedFS.

S3 makes every completed PUT atomic and durable, so ``put`` is one request (multipart
above ``part_size``) with a SHA-256 checksum the server checks, and ``flush`` has nothing
to do. An interrupted multipart upload is never listed. Credentials are passed in by the
caller (read from a file or the environment) and never appear in a message or a log.

With ``lock_days``, every object is written with an Object Lock retention date, so no one
(GOVERNANCE: no one without the bypass permission; COMPLIANCE: no one at all) can delete
or overwrite that version before it: a replica that ransomware holding the controller's
keys cannot destroy. A ``delete`` then only hides the object behind a delete marker.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from ...errors import ObjectNotFound, RepositoryError
from ...ports import ObjectInfo
from .capabilities import ATOMIC_PUT, DURABLE_FLUSH, RANGED_GET, RETENTION
from .objectkeys import check_key

log = logging.getLogger(__name__)

_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
_AUTH = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"}


@dataclass(frozen=True)
class S3Settings:
    endpoint_url: str | None = None
    region: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    path_style: bool = True
    sse: str | None = None  # "AES256" or "aws:kms"
    part_size: int = 64 << 20
    lock_days: int = 0  # Object Lock retention of every object written; 0: none
    lock_mode: str = "GOVERNANCE"  # or "COMPLIANCE"

    def __repr__(self) -> str:  # never the keys
        return f"S3Settings(endpoint_url={self.endpoint_url!r}, region={self.region!r})"


class S3Backend:
    """``ports.Backend`` over one bucket and key prefix."""

    capabilities = frozenset({RANGED_GET, ATOMIC_PUT, DURABLE_FLUSH})

    def __init__(self, bucket: str, prefix: str, settings: S3Settings):
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        endpoint = f" at {settings.endpoint_url}" if settings.endpoint_url else ""
        self.url = f"s3://{bucket}/{self.prefix}{endpoint}"
        self._settings = settings
        self._client = boto3.session.Session().client(
            "s3", endpoint_url=settings.endpoint_url, region_name=settings.region or "us-east-1",
            aws_access_key_id=settings.access_key, aws_secret_access_key=settings.secret_key,
            config=Config(s3={"addressing_style": "path" if settings.path_style else "auto"},
                          retries={"mode": "standard", "max_attempts": 5},
                          connect_timeout=10, read_timeout=60, max_pool_connections=16))
        self._transfer = TransferConfig(multipart_threshold=settings.part_size,
                                        multipart_chunksize=settings.part_size, use_threads=False)
        self._lock_checked = threading.Event()
        if settings.lock_days:
            self.capabilities = self.capabilities | {RETENTION}
        self.retained: dict[str, float] = {}  # key -> retention date this process set

    @property
    def lock_days(self) -> int:
        return self._settings.lock_days

    @classmethod
    def from_url(cls, url: str, **options: Any) -> "S3Backend":
        parts = urlsplit(url)
        if not parts.netloc:
            raise RepositoryError(f"{url}: an s3:// URL names a bucket: s3://BUCKET/PREFIX")
        return cls(parts.netloc, parts.path, S3Settings(**options))

    def __repr__(self) -> str:
        return f"S3Backend({self.url!r})"

    def _key(self, key: str) -> str:
        return self.prefix + check_key(self.url, key)

    # ---- Backend -----------------------------------------------------------------------

    def put(self, key: str, data: bytes) -> None:
        extra: dict[str, Any] = {"ChecksumAlgorithm": "SHA256"}
        if self._settings.sse:
            extra["ServerSideEncryption"] = self._settings.sse
        if self._settings.lock_days:
            self._check_lock()
            until = datetime.now(timezone.utc) + timedelta(days=self._settings.lock_days)
            extra["ObjectLockMode"] = self._settings.lock_mode
            extra["ObjectLockRetainUntilDate"] = until
        with self._errors("write", key):
            if len(data) < self._settings.part_size:
                self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **extra)
            else:
                self._client.upload_fileobj(io.BytesIO(data), self.bucket, self._key(key),
                                            ExtraArgs=extra, Config=self._transfer)
        if self._settings.lock_days:
            self.retained[key] = until.timestamp()

    # ---- Object Lock (capability RETENTION) ---------------------------------------------

    def retention_until(self, key: str) -> float | None:
        """The retention date of the object's current version; None if it has none."""
        with self._errors("stat", key):
            head = self._client.head_object(Bucket=self.bucket, Key=self._key(key))
        until = head.get("ObjectLockRetainUntilDate")
        return until.timestamp() if until is not None else None

    def extend_retention(self, key: str, until: float) -> None:
        """Push the current version's retention date to ``until`` (never shortens it: the
        store refuses that in COMPLIANCE mode, and it is never asked)."""
        when = datetime.fromtimestamp(until, timezone.utc)
        with self._errors("extend the retention of", key):
            self._client.put_object_retention(
                Bucket=self.bucket, Key=self._key(key),
                Retention={"Mode": self._settings.lock_mode, "RetainUntilDate": when})
        self.retained[key] = until

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        if length == 0:
            self._require(key)
            return b""
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key)}
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            args["Range"] = f"bytes={offset}-{end}"
        with self._errors("read", key):
            try:
                return self._client.get_object(**args)["Body"].read()
            except ClientError as e:
                if _code(e) == "InvalidRange":  # offset at or past the end
                    self._require(key)
                    return b""
                raise

    def stat(self, key: str) -> ObjectInfo | None:
        with self._errors("stat", key):
            try:
                head = self._client.head_object(Bucket=self.bucket, Key=self._key(key))
            except ClientError as e:
                if _code(e) in _NOT_FOUND:
                    return None
                raise
        return ObjectInfo(key, int(head["ContentLength"]), head["LastModified"].timestamp())

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        paginator = self._client.get_paginator("list_objects_v2")
        with self._errors("list", prefix or "/"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for obj in page.get("Contents", ()):
                    yield ObjectInfo(obj["Key"][len(self.prefix):], int(obj["Size"]),
                                     obj["LastModified"].timestamp())

    def delete(self, key: str) -> None:
        with self._errors("delete", key):
            self._client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def flush(self) -> None:
        """Nothing to do: S3 acknowledges a PUT only once it is durable."""

    # ---- helpers -----------------------------------------------------------------------

    def create_bucket(self) -> None:
        """Create the bucket (tests and first-time set-up); an existing one is fine."""
        with self._errors("create bucket", "/"):
            try:
                self._client.create_bucket(Bucket=self.bucket)
            except ClientError as e:
                if _code(e) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

    def _check_lock(self) -> None:
        """Refuse to write "immutable" objects into a bucket that cannot keep them so."""
        if self._lock_checked.is_set():
            return
        with self._errors("read the Object Lock configuration of", self.bucket):
            try:
                conf = self._client.get_object_lock_configuration(Bucket=self.bucket)
                enabled = conf["ObjectLockConfiguration"].get("ObjectLockEnabled") == "Enabled"
            except ClientError as e:
                if _code(e) != "ObjectLockConfigurationNotFoundError":
                    raise
                enabled = False
        if not enabled:
            raise RepositoryError(
                f"{self.url}: object_lock_days is set, but the bucket {self.bucket} has no "
                "Object Lock", hint="Object Lock is switched on when a bucket is created "
                "(aws s3api create-bucket --object-lock-enabled-for-bucket ...; Ceph RGW and "
                "MinIO alike): replicate into such a bucket, or set object_lock_days = 0.")
        self._lock_checked.set()

    def _require(self, key: str) -> None:
        if self.stat(key) is None:
            raise ObjectNotFound(f"{self.url}: no object {key}")

    def _errors(self, action: str, key: str) -> "_ErrorMap":
        return _ErrorMap(self, action, key)


class _ErrorMap:
    """Turn boto errors into ``RepositoryError``s that name the URL and key, never a secret."""

    def __init__(self, backend: S3Backend, action: str, key: str):
        self.backend, self.action, self.key = backend, action, key

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> bool:  # noqa: ANN001
        if exc is None or isinstance(exc, RepositoryError):
            return False
        where = f"{self.backend.url}: cannot {self.action} {self.key}"
        if isinstance(exc, ClientError):
            code = _code(exc)
            if code in _NOT_FOUND:
                raise ObjectNotFound(f"{self.backend.url}: no object {self.key}") from None
            if code == "NoSuchBucket":
                raise RepositoryError(f"{where}: the bucket {self.backend.bucket} does not exist",
                                      hint="Create the bucket, or fix the repository URL.") from None
            if code in _AUTH:
                raise RepositoryError(f"{where}: the server refused the credentials ({code})",
                                      hint="Check the access key and secret the repository's "
                                           "credentials file or environment holds.") from None
            raise RepositoryError(f"{where}: {code}: {_message(exc)}") from None
        if isinstance(exc, EndpointConnectionError):
            raise RepositoryError(f"{where}: the endpoint does not answer",
                                  hint="Check endpoint_url and the network.") from None
        if isinstance(exc, BotoCoreError):
            raise RepositoryError(f"{where}: {type(exc).__name__}") from None
        return False


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _message(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Message", ""))[:200]
