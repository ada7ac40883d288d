"""Every catalogue test runs on SQLite and on a real PostgreSQL (marked ``server``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from vzbackup.catalog import SqlCatalog, open_catalog


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.server)])
def catalog_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """An empty catalogue database: a SQLite file in a directory not yet made, or a fresh
    PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state/catalog.db"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def catalog(catalog_url: str) -> Iterator[SqlCatalog]:
    cat = open_catalog(catalog_url)
    yield cat
    cat.close()
