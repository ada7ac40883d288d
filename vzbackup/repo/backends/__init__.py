"""Storage backends chosen by URL scheme: ``file://`` here; ``sftp://``, ``s3://`` register
themselves with :func:`register_backend`."""

from __future__ import annotations

from typing import Any, Callable
from urllib.parse import urlsplit

from ...errors import RepositoryError
from ...ports import Backend
from .local import LocalBackend

BackendFactory = Callable[..., Backend]  # (url, **options) -> Backend

_REGISTRY: dict[str, BackendFactory] = {}


def register_backend(scheme: str, factory: BackendFactory) -> None:
    _REGISTRY[scheme] = factory


def open_backend(url: str, **options: Any) -> Backend:
    """The backend for ``url`` (``file:///srv/backup``...), built with ``options``."""
    scheme = urlsplit(url).scheme
    factory = _REGISTRY.get(scheme)
    if factory is None:
        known = ", ".join(f"{s}://" for s in sorted(_REGISTRY))
        raise RepositoryError(f"{url}: unknown repository URL scheme {scheme!r} (known: {known})",
                              hint="Use a file:///absolute/path URL or another known scheme.")
    return factory(url, **options)


def _s3(url: str, **options: Any) -> Backend:
    from .s3 import S3Backend  # boto3 costs ~0.3 s to import: only when an s3:// URL is used

    return S3Backend.from_url(url, **options)


def _sftp(url: str, **options: Any) -> Backend:
    from .sftp import SftpBackend  # paramiko likewise

    return SftpBackend.from_url(url, **options)


register_backend("file", LocalBackend.from_url)
register_backend("sftp", _sftp)
register_backend("s3", _s3)
