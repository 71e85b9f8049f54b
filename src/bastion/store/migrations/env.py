"""Alembic environment: runs Bastion's migrations on the engine handed over by ``Database.migrate``."""

from __future__ import annotations

from alembic import context

from bastion.store.schema import metadata

engine = context.config.attributes["engine"]
with engine.connect().execution_options(bastion_write=True) as connection:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(1650553716)")
        context.run_migrations()
