"""The writer's nightly sessions run under a statement timeout and a temporary-file limit."""

from __future__ import annotations

import os
from contextlib import closing

import psycopg2
import pytest

from hospital_ops import limits, pipeline
from hospital_ops.config import environment
from hospital_ops.dbt_runner import warehouse_env


def _show(conn, setting: str) -> str:  # type: ignore[no-untyped-def]
    with conn.cursor() as cur:
        cur.execute(f"show {setting}")
        return cur.fetchone()[0]


def test_the_writer_role_has_a_temp_file_limit(db_url: str) -> None:
    with closing(psycopg2.connect(db_url)) as conn:
        assert _show(conn, "temp_file_limit") == limits.temp_file_limit()
        assert _show(conn, "is_superuser") == "off"


def test_a_nightly_statement_over_the_timeout_is_cancelled(db_url: str) -> None:
    with environment({"HOSPITAL_OPS_STATEMENT_TIMEOUT": "300ms"}), closing(pipeline.connect(db_url)) as conn:
        assert _show(conn, "statement_timeout") == "300ms"
        with conn.cursor() as cur, pytest.raises(psycopg2.errors.QueryCanceled, match="statement timeout"):
            cur.execute("select pg_sleep(3)")


def test_dbt_sessions_get_the_limit_through_pgoptions(db_url: str) -> None:
    env = warehouse_env(db_url)
    assert env["PGOPTIONS"] == limits.session_options()
    # libpq, as dbt-postgres's psycopg2 connects
    with environment({"PGOPTIONS": env["PGOPTIONS"]}), closing(psycopg2.connect(db_url)) as conn:
        assert _show(conn, "statement_timeout") == limits.statement_timeout()
    assert "PGOPTIONS" not in os.environ or os.environ["PGOPTIONS"] != env["PGOPTIONS"]


def test_a_setting_that_is_not_an_amount_is_refused() -> None:
    with environment({"HOSPITAL_OPS_TEMP_FILE_LIMIT": "10GB; drop table x"}), pytest.raises(ValueError):
        limits.temp_file_limit()
