"""Alembic environment. Run through ``vzbackup.catalog.migrate``, which hands over a connection
(and holds the migration lock); there is no alembic.ini at run time.

To write the next migration after changing ``models.py``, autogenerate against a database
at head, then edit the file by hand (write types out in full; never import the models):

    from alembic import command
    from vzbackup.catalog import open_catalog
    from vzbackup.catalog.migrate import alembic_config
    cat = open_catalog("sqlite:////tmp/at-head.db")
    cfg = alembic_config()
    with cat._engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.revision(cfg, message="what changed", autogenerate=True, rev_id="0002")

``tests/unit/catalog/test_migrations.py::test_models_match_migrations`` fails until the
models and the migrations agree again.
"""

from __future__ import annotations

from alembic import context

from vzbackup.catalog.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through vzbackup.catalog.migrate, which passes a connection")
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
