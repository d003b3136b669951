"""Alembic's environment for the warehouse's own tables (see hospital_ops.migrate).

Every revision runs as the pipeline's writer (`set role`), so what it creates is the writer's; a
revision that must act as the administrator (the run ledger, owned by hospital_ops_ledger) says
`reset role` and `set role` again itself. The version table is ops.alembic_version."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from hospital_ops.migrate import VERSION_SCHEMA, VERSION_TABLE
from hospital_ops.security import WRITER

PREAMBLE = (f'set role "{WRITER}"', f"create schema if not exists {VERSION_SCHEMA}")


def run_offline() -> None:
    context.configure(url=context.config.get_main_option("sqlalchemy.url"), literal_binds=True,
                      version_table=VERSION_TABLE, version_table_schema=VERSION_SCHEMA,
                      transactional_ddl=True, dialect_opts={"paramstyle": "named"})  # '%' printed as is
    with context.begin_transaction():
        for statement in PREAMBLE:
            context.execute(statement)
        context.run_migrations()


def run_online() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no sqlalchemy.url: hospital_ops.migrate.upgrade passes the warehouse's URL")
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        for statement in PREAMBLE:
            connection.exec_driver_sql(statement)
        connection.commit()
        context.configure(connection=connection, version_table=VERSION_TABLE,
                          version_table_schema=VERSION_SCHEMA, transactional_ddl=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
