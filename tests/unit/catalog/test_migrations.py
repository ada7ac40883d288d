"""The schema comes from the shipped migrations, matches the models, and migrates once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from vzbackup.catalog import current_revision, head_revision, open_catalog
from vzbackup.catalog.engine import make_engine
from vzbackup.catalog.migrate import MIGRATIONS
from vzbackup.catalog.models import Base
from vzbackup.errors import CatalogError

PROJECT = Path(__file__).resolve().parents[3]

TABLES = {"alembic_version", "nodes", "guests", "restore_points", "copies", "runs", "run_items",
          "clones", "checkpoints", "branches", "branch_members"}


def test_open_migrates_an_empty_database_to_head(catalog_url):
    engine = make_engine(catalog_url)
    assert current_revision(engine) is None
    open_catalog(catalog_url).close()
    assert current_revision(engine) == head_revision()
    assert set(inspect(engine).get_table_names()) == TABLES
    engine.dispose()


def test_models_match_migrations(catalog_url):
    open_catalog(catalog_url).close()
    engine = make_engine(catalog_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == [], "models and migrations differ: write a migration for the change"


def test_migrations_ship_inside_the_package():
    assert (MIGRATIONS / "env.py").is_file() and (MIGRATIONS / "script.py.mako").is_file()
    assert head_revision() == "0004"


def test_reopening_at_head_changes_nothing(catalog_url):
    open_catalog(catalog_url).close()
    cat = open_catalog(catalog_url)
    assert cat.guests() == []
    cat.close()


OPENER = """
import sys, time
from vzbackup.catalog import open_catalog
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # all start migrating together
open_catalog(sys.argv[1]).close()
"""


def test_concurrent_first_opens_migrate_once(catalog_url):
    """Four processes open an empty catalogue at once: one migrates, the others wait and find
    the schema at head (advisory lock on PostgreSQL, BEGIN IMMEDIATE on SQLite)."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    start_at = str(time.time() + 2.0)
    procs = [subprocess.Popen([sys.executable, "-c", OPENER, catalog_url, start_at], env=env,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    failures = []
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        if proc.returncode:
            failures.append(err[-1500:])
    assert failures == []
    engine = make_engine(catalog_url)
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_schema_from_a_newer_vzbackup_is_refused(catalog_url):
    open_catalog(catalog_url).close()
    engine = make_engine(catalog_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(CatalogError, match="revision 9999.*newer vzbackup") as caught:
        open_catalog(catalog_url)
    assert "Upgrade vzbackup" in caught.value.hint
