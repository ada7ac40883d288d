"""Schema migrations, run in code: no alembic.ini is needed at run time.

``upgrade_to_head`` is safe to call from several processes at once. The whole migration is
one transaction (both dialects have transactional DDL), serialised on PostgreSQL by a
transaction-scoped advisory lock and on SQLite by BEGIN IMMEDIATE (the write lock). A
process that gets the lock after another migrated finds the schema at head and does nothing.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from ..errors import CatalogError
from .engine import database_errors, for_writing, safe_url

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

# Alembic is imported only when the schema is not already at head (it costs ~0.1 s of start-up
# on every command): see ``_quick_head`` and ``_quick_current``.

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
# pg_advisory_xact_lock key: b"vzbkcat1" as a signed 64-bit integer.
PG_MIGRATION_LOCK = int.from_bytes(b"vzbkcat1", "big", signed=True)
# Alembic runs env.py as an import: threads of one process must take turns before the database.
_IN_PROCESS = threading.Lock()


def alembic_config() -> "Config":
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


@functools.cache
def _scripts() -> "ScriptDirectory":
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    head = _scripts().get_current_head()
    assert head is not None, "the package ships no migrations"
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with database_errors(engine.url, "reading the schema version"), engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


_REVISION_LINE = re.compile(r"^(revision|down_revision)\s*(?::[^=]*)?=\s*(.+?)\s*$", re.M)
_QUOTED = re.compile(r"""^(['"])([\w.-]+)\1$""")


@functools.cache
def _quick_head() -> str | None:
    """The head revision read from the migration files without Alembic, when they form one
    plain chain (each file one quoted revision and one quoted or None down_revision);
    else None, and Alembic decides."""
    revisions, parents = set(), set()
    files = sorted((MIGRATIONS / "versions").glob("*.py"))
    for path in files:
        found = dict((m.group(1), m.group(2)) for m in _REVISION_LINE.finditer(path.read_text()))
        rev = _QUOTED.match(found.get("revision", ""))
        down = found.get("down_revision", "")
        down_match = _QUOTED.match(down)
        if rev is None or (down != "None" and down_match is None):
            return None
        revisions.add(rev.group(2))
        if down_match is not None:
            parents.add(down_match.group(2))
    heads = revisions - parents
    if len(revisions) != len(files) or not parents <= revisions or len(heads) != 1:
        return None
    return heads.pop()


def _quick_current(engine: Engine) -> str | None:
    """The revision in ``alembic_version`` by plain SQL, or None when it cannot be read."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    except DBAPIError:
        return None
    return rows[0][0] if len(rows) == 1 else None


def upgrade_to_head(engine: Engine) -> None:
    """Create or upgrade the schema to the newest revision this vzbackup knows."""
    quick = _quick_head()
    if quick is not None and _quick_current(engine) == quick:
        return  # at head: the usual case, decided without importing Alembic
    head = head_revision()
    if _checked(current_revision(engine), engine) == head:
        return
    with _IN_PROCESS, database_errors(engine.url, "upgrading the schema"):
        with for_writing(engine).begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATION_LOCK})
            _upgrade(conn, engine, head)


def _upgrade(conn: Connection, engine: Engine, head: str) -> None:
    from alembic.runtime.migration import MigrationContext

    found = _checked(MigrationContext.configure(conn).get_current_revision(), engine)
    if found == head:
        return  # another process migrated while we waited for the lock
    log.info("upgrading catalogue %s from %s to %s", safe_url(engine.url), found or "empty", head)
    from alembic import command

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
