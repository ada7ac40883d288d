"""The catalogue: an SQL index of guests, restore points, their copies and runs.

It is an index, never the only truth: everything in it can be rebuilt from the repositories.
SQLite is the embedded default; PostgreSQL serves several nodes or controllers.

``open_catalog`` creates or upgrades the schema to the newest migration on first use, on
SQLite and on PostgreSQL alike (concurrent openers are serialised; see ``migrate``).
"""

from __future__ import annotations

from .engine import make_engine
from .migrate import current_revision, head_revision, upgrade_to_head
from .records import RunRecord
from .store import AmbiguousPoint, SqlCatalog

__all__ = ["AmbiguousPoint", "RunRecord", "SqlCatalog", "current_revision", "head_revision",
           "open_catalog", "upgrade_to_head"]


def open_catalog(url: str, *, upgrade: bool = True) -> SqlCatalog:
    """The catalogue at ``url`` (``sqlite:///PATH`` or ``postgresql+psycopg://USER@HOST/DB``),
    its schema brought to head first unless ``upgrade`` is false.

    Raises ``CatalogError`` (never showing a password) when it cannot be reached or migrated.
    """
    engine = make_engine(url)
    try:
        if upgrade:
            upgrade_to_head(engine)
    except BaseException:
        engine.dispose()
        raise
    return SqlCatalog(engine)
