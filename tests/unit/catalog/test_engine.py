"""Engines: SQLite settings, and errors that name the database without its password."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import text

from tests.lab.pg import free_port
from vzbackup.catalog import open_catalog
from vzbackup.catalog.engine import make_engine, scrub_url_text
from vzbackup.errors import CatalogError

SECRET = "s3cr3t-Pa55"


def test_sqlite_creates_its_directory_and_sets_wal_fk_busy_timeout(tmp_path):
    path = tmp_path / "deep" / "er" / "catalog.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        pragmas = {p: conn.execute(text(f"PRAGMA {p}")).scalar()
                   for p in ("journal_mode", "foreign_keys", "busy_timeout")}
    engine.dispose()
    assert path.parent.is_dir()
    assert pragmas == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 30000}


def test_sqlite_directory_that_cannot_be_made(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(CatalogError, match="cannot create directory"):
        open_catalog(f"sqlite:///{tmp_path}/file/sub/catalog.db")


def assert_no_secret(err: CatalogError, caplog: pytest.LogCaptureFixture) -> None:
    for text_ in (str(err), err.message, err.hint, repr(err.args), caplog.text):
        assert SECRET not in text_
    assert err.__cause__ is None and err.__suppress_context__  # no driver text in tracebacks


def test_unreachable_postgresql_names_url_without_password(caplog):
    caplog.set_level(logging.DEBUG)
    url = f"postgresql+psycopg://vz:{SECRET}@127.0.0.1:{free_port()}/catalog"
    with pytest.raises(CatalogError) as caught:
        open_catalog(url)
    err = caught.value
    assert_no_secret(err, caplog)
    assert "postgresql+psycopg://vz:***@127.0.0.1" in err.message
    assert "running and reachable" in err.hint


@pytest.mark.server
def test_missing_postgresql_database_names_url_without_password(pg_server, caplog):
    caplog.set_level(logging.DEBUG)
    url = f"postgresql+psycopg://postgres:{SECRET}@127.0.0.1:{pg_server.port}/no_such_db"
    with pytest.raises(CatalogError, match="no_such_db") as caught:
        open_catalog(url)
    assert_no_secret(caught.value, caplog)


def test_unknown_driver_without_password(caplog):
    with pytest.raises(CatalogError, match="no database driver") as caught:
        open_catalog(f"mysql+nosuchdriver://vz:{SECRET}@db/catalog")
    assert_no_secret(caught.value, caplog)


def test_not_a_url():
    with pytest.raises(CatalogError, match="not a database URL"):
        open_catalog("catalog.db")


def test_scrub_url_text():
    assert scrub_url_text(f"postgresql://vz:{SECRET}@h/db") == "postgresql://vz:***@h/db"


def test_in_memory_sqlite_works():
    cat = open_catalog("sqlite://")
    assert cat.guests() == [] and cat.url == "sqlite://"
    cat.close()
