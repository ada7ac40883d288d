"""Every ``ports.Backend`` implementation the contract suite runs against.

Adding a backend is one entry in ``BACKEND_FACTORIES``: a function ``(request, tmp_path) ->
BackendCase``. A server-backed factory asks for its server fixture with
``request.getfixturevalue(...)`` (and uses ``tests.support.require``).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from vzbackup.ports import Backend
from tests.lab.s3 import SEAWEED_ACCESS, SEAWEED_SECRET, reset_moto
from vzbackup.repo.backends import open_backend


@dataclass
class BackendCase:
    backend: Backend
    # Leaves in the store what a process killed in the middle of ``put(key, data)`` leaves.
    leave_partial_put: Callable[[str, bytes], None]


def dot_temp_leaver(root: Path) -> Callable[[str, bytes], None]:
    """What a put killed before its rename leaves on a file system: a half-written dot-file."""

    def leave_partial_put(key: str, data: bytes) -> None:
        folder, _, name = key.rpartition("/")
        where = root / folder if folder else root
        where.mkdir(parents=True, exist_ok=True)
        (where / f".{name}.deadbeef0000.tmp").write_bytes(data[: len(data) // 2])

    return leave_partial_put


def local_backend(request: pytest.FixtureRequest, tmp_path: Path) -> BackendCase:
    root = tmp_path / "store"
    backend = open_backend(root.as_uri())
    return BackendCase(backend, dot_temp_leaver(root))


def local_backend_fsync(request: pytest.FixtureRequest, tmp_path: Path) -> BackendCase:
    case = local_backend(request, tmp_path)
    case.backend = open_backend(case.backend.url, durability="fsync")
    return case


def s3_case(backend) -> BackendCase:
    """A fresh bucket; what a killed put leaves in S3 is an upload begun, never completed."""
    backend.create_bucket()

    def leave_partial_put(key: str, data: bytes) -> None:
        client = backend._client
        up = client.create_multipart_upload(Bucket=backend.bucket, Key=backend.prefix + key)
        client.upload_part(Bucket=backend.bucket, Key=backend.prefix + key, PartNumber=1,
                           UploadId=up["UploadId"], Body=data[: len(data) // 2])

    return BackendCase(backend, leave_partial_put)


def s3_moto_backend(request: pytest.FixtureRequest, tmp_path: Path) -> BackendCase:
    endpoint = request.getfixturevalue("moto_endpoint")
    reset_moto(endpoint)
    backend = open_backend("s3://vzbackup-test/repo", endpoint_url=endpoint, region="us-east-1",
                           access_key="test", secret_key="test-secret")
    return s3_case(backend)


def s3_seaweed_backend(request: pytest.FixtureRequest, tmp_path: Path) -> BackendCase:
    endpoint = request.getfixturevalue("seaweed_endpoint")
    # one bucket, a prefix per test: SeaweedFS gives every bucket volumes of its own
    backend = open_backend(f"s3://vzcontract/{secrets.token_hex(6)}", endpoint_url=endpoint,
                           access_key=SEAWEED_ACCESS, secret_key=SEAWEED_SECRET)
    return s3_case(backend)


def sftp_backend(request: pytest.FixtureRequest, tmp_path: Path) -> BackendCase:
    lab = request.getfixturevalue("ssh_lab")
    node = lab.nodes[0]
    root = node.data / f"repo-{secrets.token_hex(4)}"
    backend = open_backend(f"sftp://root@127.0.0.1:{node.port}{root}", key_file=str(lab.client_key),
                           known_hosts=str(lab.known_hosts))
    return BackendCase(backend, dot_temp_leaver(root))


BACKEND_FACTORIES: dict[str, Callable[[pytest.FixtureRequest, Path], BackendCase]] = {
    "local": local_backend,
    "local-fsync": local_backend_fsync,
    "s3-moto": s3_moto_backend,
    "s3-seaweedfs": s3_seaweed_backend,
    "sftp": sftp_backend,
}
