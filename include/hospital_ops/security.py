"""Roles and grants (DOMAIN.md, "Audit and security").

    hospital_ops_writer  the pipeline: owns every schema it builds, the only role that reads raw
                         (where personal identifiers land, pseudonymized) and staging
    bi_reader            dashboards: the published marts and scoring schemas, read only
    auditor              snapshots, the audit schema (run ledger, change trail, publications) and
                         the quality results, read only
    hospital_ops_ledger  no login: owns the run ledger, its trigger and its append function, so the
                         writer can append (through audit.append_run) but never alter, disable or
                         drop what protects it

Every login role has a password (scram-sha-256); none is a superuser.

Roles are cluster-wide and need a superuser (or CREATEROLE) to create: the embedded warehouse does
it at start; on a hospital's server a DBA runs `hospital-ops warehouse roles` with an admin URL.
Grants are per database and re-applied by the writer at every publication, so relations dbt
recreates never lose them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from hospital_ops.db import fetch_one

if TYPE_CHECKING:
    from psycopg2.extensions import cursor as PgCursor

WRITER = "hospital_ops_writer"
BI_READER = "bi_reader"
AUDITOR = "auditor"
LEDGER_OWNER = "hospital_ops_ledger"
LOGIN_ROLES = (WRITER, BI_READER, AUDITOR)

# schema → roles that may read it (everything else: the writer only)
READABLE_SCHEMAS: dict[str, tuple[str, ...]] = {
    "marts": (BI_READER,),
    "scoring": (BI_READER,),
    "snapshots": (AUDITOR,),
    "audit": (AUDITOR,),
    "dq": (AUDITOR,),
}


def ensure_roles(cur: PgCursor) -> None:
    """Create the three login roles if missing (run as a superuser or a role with CREATEROLE)."""
    for role in LOGIN_ROLES:
        cur.execute("select 1 from pg_roles where rolname = %s", (role,))
        if cur.fetchone() is None:
            cur.execute(f'create role "{role}" login')
    cur.execute("select 1 from pg_roles where rolname = %s", (LEDGER_OWNER,))
    if cur.fetchone() is None:
        cur.execute(f'create role "{LEDGER_OWNER}" nologin')
    # nobody but the writer connects and creates by default
    cur.execute("revoke create on schema public from public")


ROLE_SETTINGS_SQL = Path(__file__).with_name("sql") / "role_settings.sql"


def role_settings_statements() -> list[str]:
    """sql/role_settings.sql as statements for psycopg2: its one psql variable (:'temp_file_limit')
    becomes a bound parameter. The compose stack's init script runs the same file with psql."""
    text = "\n".join(line for line in ROLE_SETTINGS_SQL.read_text(encoding="utf-8").splitlines()
                     if not line.lstrip().startswith("--"))
    return [statement.strip().replace(":'temp_file_limit'", "%(temp_file_limit)s")
            for statement in text.split(";") if statement.strip()]


def harden_roles(cur: PgCursor) -> None:
    """No login role is a superuser or may create roles; the writer's server-side errors are logged
    without their CONTEXT lines; the writer's temp_file_limit (as a superuser): sql/role_settings.sql.

    `log_error_verbosity = terse` for the writer: a COPY the server rejects would otherwise log
    the offending line (`CONTEXT: COPY …, line 5: "<the cells>"`) before anything is pseudonymized.
    The client still receives the full error; only the server log is terse."""
    from hospital_ops import limits

    for statement in role_settings_statements():
        cur.execute(statement, {"temp_file_limit": limits.temp_file_limit()})


def apply_grants(cur: PgCursor) -> None:
    """Give each reader role exactly its schemas (run as the writer, who owns them)."""
    for schema, readers in READABLE_SCHEMAS.items():
        cur.execute(f"create schema if not exists {schema}")
        # only what the writer owns: the audit schema and the run ledger in it belong to the ledger
        # role, which grants them itself (sql/run_ledger.sql); granting them here would only warn
        cur.execute("select nspowner = current_user::regrole from pg_namespace where nspname = %s", (schema,))
        owns_schema = fetch_one(cur)[0]
        cur.execute("select format('%%I.%%I', n.nspname, c.relname) from pg_class c "
                    "join pg_namespace n on n.oid = c.relnamespace "
                    "where n.nspname = %s and c.relowner = current_user::regrole and c.relkind in ('r', 'v', 'm', 'p', 'f')",
                    (schema,))
        relations = [row[0] for row in cur.fetchall()]
        cur.execute("select p.oid::regprocedure::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace "
                    "where n.nspname = %s and p.proowner = current_user::regrole and p.prokind = 'f'", (schema,))
        functions = [row[0] for row in cur.fetchall()]
        for role in readers:
            if owns_schema:
                cur.execute(f'grant usage on schema {schema} to "{role}"')
            if relations:
                cur.execute(f'grant select on {", ".join(relations)} to "{role}"')
            cur.execute(f'alter default privileges in schema {schema} grant select on tables to "{role}"')
            if schema == "audit" and functions:
                cur.execute(f'grant execute on function {", ".join(functions)} to "{role}"')
