"""Engines for the catalogue: SQLite (embedded default) or PostgreSQL, and their errors.

No message or log line made here holds a password: URLs are shown with ``***`` instead.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError, StatementError

from ..errors import CatalogError

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000
_WRITE_OPTION = "vzbackup_write"
_PASSWORD_IN_URL = re.compile(r"(//[^/:@]*:)[^@/]*@")


def parse_url(url: str) -> URL:
    try:
        return make_url(url)
    except ArgumentError:
        raise CatalogError(
            f"catalog.url {scrub_url_text(url)!r} is not a database URL",
            hint="Use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB in catalog.url.",
        ) from None


def scrub_url_text(url: str) -> str:
    """Hide a password in a URL that may not even parse."""
    return _PASSWORD_IN_URL.sub(r"\1***@", url)


def safe_url(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite files get their directory, WAL and a busy timeout."""
    parsed = parse_url(url)
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        _prepare_sqlite_dir(parsed)
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(parsed, **kwargs)
    except (NoSuchModuleError, ImportError) as exc:
        raise CatalogError(
            f"catalogue {safe_url(parsed)}: no database driver for it ({type(exc).__name__})",
            hint="Install the driver (pip install 'psycopg[binary]' for postgresql+psycopg://).",
        ) from None
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
    log.debug("catalogue engine for %s", safe_url(parsed))
    return engine


def _prepare_sqlite_dir(url: URL) -> None:
    if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
        path = Path(url.database).expanduser()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CatalogError(
                f"catalogue {safe_url(url)}: cannot create directory {path.parent}: {exc.strerror}",
                hint="Create the directory or point catalog.url at a writable place.",
            ) from None


def for_writing(engine: Engine) -> Engine:
    """The same engine (and pool), its transactions marked as writers: on SQLite they start
    with BEGIN IMMEDIATE, so they queue for the write lock (up to the busy timeout) instead of
    failing with "database is locked" when upgrading from a read. Elsewhere it changes nothing."""
    return engine.execution_options(**{_WRITE_OPTION: True})


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # the driver must not BEGIN: _sqlite_begin does
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        _ensure_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")  # durable with WAL, much faster than FULL
    finally:
        cursor.close()


def _ensure_wal(cursor: Any) -> None:
    """Switch a new database to WAL. The switch fails at once with "database is locked"
    (no busy wait) while another connection is inside a transaction, so retry it."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        try:
            if cursor.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() != "wal":
                return  # an in-memory database cannot use WAL
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _sqlite_begin(conn: Connection) -> None:
    mode = "IMMEDIATE" if conn.get_execution_options().get(_WRITE_OPTION) else "DEFERRED"
    conn.exec_driver_sql(f"BEGIN {mode}")


@contextmanager
def database_errors(url: URL, doing: str) -> Iterator[None]:
    """Turn driver errors into ``CatalogError`` naming the (password-free) URL and a next step."""
    try:
        yield
    except CatalogError:
        raise
    except DBAPIError as exc:
        raise CatalogError(
            f"catalogue {safe_url(url)}: {doing} failed: {_driver_message(exc, url)}",
            hint=_hint_for(exc),
        ) from None
    except StatementError as exc:
        if isinstance(exc.orig, (TypeError, ValueError)):
            raise exc.orig from None  # a caller's bad value (naive datetime...), not the database's
        raise CatalogError(
            f"catalogue {safe_url(url)}: {doing} failed: {_first_line(str(exc), url)}"
        ) from None
    except SQLAlchemyError as exc:
        raise CatalogError(
            f"catalogue {safe_url(url)}: {doing} failed: {_first_line(str(exc), url)}"
        ) from None


def _driver_message(exc: DBAPIError, url: URL) -> str:
    return _first_line(str(exc.orig) if exc.orig is not None else str(exc), url)


def _first_line(text: str, url: URL) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "unknown error"
    if url.password:
        line = line.replace(str(url.password), "***")
    return line


def _hint_for(exc: DBAPIError) -> str:
    if exc.connection_invalidated or "connect" in str(exc.orig).lower():
        return (
            "Check that the database server in catalog.url is running and reachable, and "
            "that the user, password and database are right."
        )
    if "locked" in str(exc.orig).lower():
        return "Another process held the catalogue too long; run again when it has finished."
    return CatalogError.default_hint
