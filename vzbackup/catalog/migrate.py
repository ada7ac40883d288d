"""Schema migrations, run in code: no alembic.ini is needed at run time.

``upgrade_to_head`` is safe to call from several processes at once. The whole migration is
one transaction (both dialects have transactional DDL), serialised on PostgreSQL by a
transaction-scoped advisory lock and on SQLite by BEGIN IMMEDIATE (the write lock). A
process that gets the lock after another migrated finds the schema at head and does nothing.
"""

from __future__ import annotations

import functools
import logging
import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from ..errors import CatalogError
from .engine import database_errors, for_writing, safe_url

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
# pg_advisory_xact_lock key: b"vzbkcat1" as a signed 64-bit integer.
PG_MIGRATION_LOCK = int.from_bytes(b"vzbkcat1", "big", signed=True)
# Alembic runs env.py as an import: threads of one process must take turns before the database.
_IN_PROCESS = threading.Lock()


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


@functools.cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    head = _scripts().get_current_head()
    assert head is not None, "the package ships no migrations"
    return head


def current_revision(engine: Engine) -> str | None:
    with database_errors(engine.url, "reading the schema version"), engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade_to_head(engine: Engine) -> None:
    """Create or upgrade the schema to the newest revision this vzbackup knows."""
    head = head_revision()
    if _checked(current_revision(engine), engine) == head:
        return
    with _IN_PROCESS, database_errors(engine.url, "upgrading the schema"):
        with for_writing(engine).begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATION_LOCK})
            _upgrade(conn, engine, head)


def _upgrade(conn: Connection, engine: Engine, head: str) -> None:
    found = _checked(MigrationContext.configure(conn).get_current_revision(), engine)
    if found == head:
        return  # another process migrated while we waited for the lock
    log.info("upgrading catalogue %s from %s to %s", safe_url(engine.url), found or "empty", head)
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")


def _checked(revision: str | None, engine: Engine) -> str | None:
    if revision is None:
        return None
    known = {s.revision for s in _scripts().walk_revisions()}
    if revision not in known:
        raise CatalogError(
            f"catalogue {safe_url(engine.url)} has schema revision {revision}, "
            "which this vzbackup does not know: a newer vzbackup upgraded it",
            hint="Upgrade vzbackup on this machine to the version the other machines run.",
        )
    return revision
