"""The compose stack's warehouse init script, run for real against the embedded PostgreSQL (as the
official image would run it, with the superuser's password): it creates the roles with their
passwords and installs the run ledger owned by the ledger role; run twice, it changes nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from contextlib import closing
from pathlib import Path
from urllib.parse import urlsplit

import psycopg2
import pytest

from hospital_ops import security, warehouse

ROOT = Path(__file__).resolve().parents[1]
# not the default (10GB), so the test sees the script pass the environment's value through
TEMP_FILE_LIMIT = "7GB"


@pytest.mark.skipif(shutil.which("psql") is None, reason="needs psql")
def test_the_init_script_secures_a_database_as_the_embedded_warehouse_does(server_url: str) -> None:
    if warehouse.is_external():
        pytest.skip("runs against the embedded server")
    admin = urlsplit(warehouse.admin_url())
    name = f"compose_{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, PGHOST="127.0.0.1", PGPORT=str(admin.port), POSTGRES_PASSWORD=admin.password,
               WAREHOUSE_DB=name, LEDGER_SQL=str(ROOT / "include/hospital_ops/sql/run_ledger.sql"),
               ROLE_SETTINGS_SQL=str(security.ROLE_SETTINGS_SQL), HOSPITAL_OPS_TEMP_FILE_LIMIT=TEMP_FILE_LIMIT,
               WAREHOUSE_WRITER_PASSWORD=warehouse.password(security.WRITER),
               WAREHOUSE_BI_READER_PASSWORD=warehouse.password(security.BI_READER),
               WAREHOUSE_AUDITOR_PASSWORD=warehouse.password(security.AUDITOR))
    env.pop("PGPASSWORD", None)
    script = ROOT / "docker" / "warehouse-init" / "10-hospital-ops-roles.sh"
    try:
        for _ in range(2):  # idempotent: rerun to rotate a password or repair an old volume
            subprocess.run(["bash", str(script)], env=env, check=True, capture_output=True, text=True, timeout=60)
        with closing(psycopg2.connect(warehouse.role_url(security.WRITER, name))) as conn, conn.cursor() as cur:
            cur.execute("select tableowner from pg_tables where schemaname = 'audit' and tablename = 'run_ledger'")
            assert cur.fetchone() == (security.LEDGER_OWNER,)
            cur.execute("show log_error_verbosity")
            assert cur.fetchone() == ("terse",)
            cur.execute("show temp_file_limit")  # the same role settings as the embedded warehouse's
            assert cur.fetchone() == (TEMP_FILE_LIMIT,)
            cur.execute("select rolname from pg_roles where rolname = any(%s) and not (rolsuper or rolcreaterole "
                        "or rolcreatedb or rolreplication or rolbypassrls) order by 1", (list(security.LOGIN_ROLES),))
            assert [row[0] for row in cur.fetchall()] == sorted(security.LOGIN_ROLES)
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute("alter table audit.run_ledger disable trigger user")
        with closing(psycopg2.connect(warehouse.role_url(security.AUDITOR, name))) as conn, conn.cursor() as cur:
            cur.execute("select count(*) from audit.run_ledger")
            assert cur.fetchone() == (0,)
    finally:
        warehouse.drop_database(name)
