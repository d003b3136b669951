"""The warehouse's own tables under versioned migrations (Alembic): `upgrade(url)` brings a database
to the newest revision, whatever release last set it up; `hospital-ops warehouse migrate` calls it.

What is migrated: every table, view, function, trigger and grant the pipeline owns outside dbt — the
raw schema's bookkeeping (quarantine, load files, the watermarks of every source kind, the batch
verdicts), the quality results (dq), the run ledger and the publications (audit), the people's and
the notifier's tables (ops). Not migrated: what dbt builds (staging, marts, scoring, snapshots), the
per-source raw tables, which the loader creates from the source specs (`load.loader.ensure_raw_schema`,
one function; a new column there is a new column in a spec), and the auditors' views and functions
over dbt's snapshots (`sql/audit_objects.sql`, re-created by the writer after each night, as they
need relations dbt builds).

Why Alembic rather than ordered SQL files applied by our own function: Alembic is the kept tool for
exactly this (a version table, an ordered chain of revisions, `upgrade` to any revision, an offline
mode that prints the SQL for a DBA who applies it by hand), already installed with Airflow, and its
revisions here are plain SQL in `op.execute` — no ORM models, so a revision reads like the SQL file
it would otherwise be.

Roles: a revision runs as the warehouse's administrator (the superuser of the embedded warehouse,
WAREHOUSE_ADMIN_URL on a hospital's server) with `set role hospital_ops_writer`, so what the pipeline
writes is owned by the writer as before; only the run ledger's objects are created under the
administrator's own rights and handed to `hospital_ops_ledger` (sql/run_ledger.sql). The version
table is `ops.alembic_version`.

The first revision is the schema of the release before migrations, written idempotently (`if not
exists`), so a warehouse that release set up is upgraded in place and only stamped; a new
warehouse gets the same objects. Nothing is ever reset.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import as_file, files
from typing import TYPE_CHECKING

from hospital_ops.db import fetch_one
from hospital_ops.security import WRITER

if TYPE_CHECKING:
    from alembic.config import Config
    from psycopg2.extensions import cursor as PgCursor

log = logging.getLogger(__name__)

VERSION_SCHEMA = "ops"
VERSION_TABLE = "alembic_version"


@contextmanager
def _config(url: str | None = None, *, output: io.StringIO | None = None) -> Iterator[Config]:
    from alembic.config import Config

    with as_file(files("hospital_ops").joinpath("migrations")) as script_location:
        config = Config(stdout=output) if output is not None else Config()
        config.set_main_option("script_location", str(script_location))
        if url is not None:
            config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
        if output is not None:
            config.output_buffer = output
        yield config


def upgrade(url: str, revision: str = "head") -> str | None:
    """Bring the database at `url` (an administrator's URL) to `revision`; return the new revision."""
    from alembic import command

    with _config(url) as config:
        command.upgrade(config, revision)
    return current(url)


def downgrade(url: str, revision: str) -> str | None:
    """Take the database at `url` back to `revision` (not below the baseline, which holds the history)."""
    from alembic import command

    with _config(url) as config:
        command.downgrade(config, revision)
    return current(url)


def upgrade_sql(revision: str = "head", *, start: str | None = None) -> str:
    """The SQL `upgrade` would run from `start` (default: an empty warehouse), for a DBA to apply."""
    from alembic import command

    buffer = io.StringIO()
    with _config("postgresql://", output=buffer) as config:
        command.upgrade(config, f"{start}:{revision}" if start else revision, sql=True)
    return buffer.getvalue()


class WarehouseNotMigrated(RuntimeError):
    """The warehouse's own tables are not at the revision this release needs."""


def require_current(cur: PgCursor) -> None:
    """Refuse to run a night on a warehouse not migrated to this release (psycopg2 cursor, any role)."""
    cur.execute(f"select to_regclass('{VERSION_SCHEMA}.{VERSION_TABLE}') is not null")
    found = None
    if fetch_one(cur)[0]:
        cur.execute(f"select version_num from {VERSION_SCHEMA}.{VERSION_TABLE}")
        row = cur.fetchone()
        found = row[0] if row else None
    needed = head()
    if found != needed:
        raise WarehouseNotMigrated(
            f"the warehouse is at revision {found or 'none (set up by a release before migrations)'}, this release "
            f"needs {needed}: run `hospital-ops warehouse migrate` (as the warehouse's administrator) first")


def current(url: str) -> str | None:
    """The revision the database is at (None: never migrated)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            exists = conn.execute(sa.text("select to_regclass(:t) is not null"),
                                  {"t": f"{VERSION_SCHEMA}.{VERSION_TABLE}"}).scalar()
            if not exists:
                return None
            return conn.execute(sa.text(f"select version_num from {VERSION_SCHEMA}.{VERSION_TABLE}")).scalar()
    finally:
        engine.dispose()


def head() -> str:
    """The newest revision this release ships."""
    from alembic.script import ScriptDirectory

    with _config() as config:
        newest = ScriptDirectory.from_config(config).get_current_head()
    if newest is None:
        raise RuntimeError("the migrations folder holds no revision")
    return newest


__all__ = ["WRITER", "WarehouseNotMigrated", "current", "downgrade", "head", "require_current", "upgrade", "upgrade_sql"]
