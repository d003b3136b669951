"""The run ledger's life cycle without Airflow: a started row first, a closing row at the end, an open
row left by a night killed in between, and `verify` against the anchor outside the database."""

from __future__ import annotations

from contextlib import closing
from datetime import date

import psycopg2
import pytest

from hospital_ops import security
from hospital_ops.audit import anchor_path, read_anchor, record_run, record_started, verify

NIGHT = date(2026, 11, 20)


@pytest.fixture
def ledger(db_url: str, role_url, tmp_path, monkeypatch):
    monkeypatch.setenv("HOSPITAL_OPS_VAR_DIR", str(tmp_path / "var"))  # this test's own anchor and key
    return db_url, role_url(db_url, security.AUDITOR)


def _verify(url: str, **kwargs):  # type: ignore[no-untyped-def]
    with closing(psycopg2.connect(url)) as conn:
        return verify(conn, **kwargs)


def _open_runs(url: str) -> list[str]:
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.execute("select run_id from audit.open_runs order by seq")
        return [row[0] for row in cur.fetchall()]


def test_an_empty_ledger_fails_verify(ledger) -> None:
    _, auditor = ledger
    result = _verify(auditor)
    assert not result.ok and "empty" in result.problem


def test_a_killed_night_leaves_an_open_row_and_a_closed_one_does_not(ledger) -> None:
    writer, auditor = ledger
    record_started(writer, run_id="night-1", business_date=NIGHT)
    record_run(writer, run_id="night-1", business_date=NIGHT)
    record_started(writer, run_id="night-2", business_date=NIGHT)  # then the machine went down
    assert _open_runs(auditor) == ["night-2"]
    result = _verify(auditor)
    assert result.ok and result.rows == 3, result.problem
    with closing(psycopg2.connect(writer)) as conn, conn.cursor() as cur:
        cur.execute("select payload from audit.run_ledger where run_id = 'night-1' order by seq")
        started, closed = (row[0] for row in cur.fetchall())
    assert started["status"] == "started" and closed["status"] == "failed"  # nothing was published
    assert closed["closes_seq"] == 1

    record_run(writer, run_id="night-2", business_date=NIGHT)  # a rerun closes it
    assert _open_runs(auditor) == []
    assert _verify(auditor).ok


def test_an_anchor_behind_the_ledger_or_missing_fails(ledger) -> None:
    writer, auditor = ledger
    record_started(writer, run_id="night-1", business_date=NIGHT)
    with closing(psycopg2.connect(writer)) as conn, conn.cursor() as cur:
        cur.execute("select current_database()")
        database = cur.fetchone()[0]
        # the writer can append (that is its job) but not sign: a row it slips in is seen
        cur.execute("select * from audit.append_run(jsonb_build_object('run_id', 'slipped', 'status', 'published', "
                    "'business_date', %s), %s)", (NIGHT.isoformat(), NIGHT))
        conn.commit()
    assert read_anchor(database)["rows"] == 1
    result = _verify(auditor)
    assert not result.ok and "1 row(s) after the anchored head" in result.problem
    anchor_path(database).unlink()
    result = _verify(auditor)
    assert not result.ok and "no anchor" in result.problem


def test_the_append_function_refuses_a_row_without_run_id_or_a_mismatched_date(ledger) -> None:
    writer, _ = ledger
    for payload in ("{\"status\": \"published\", \"business_date\": \"2026-11-20\"}",
                    "{\"run_id\": \"r\", \"status\": \"published\", \"business_date\": \"2026-11-19\"}"):
        with closing(psycopg2.connect(writer)) as conn, conn.cursor() as cur, pytest.raises(psycopg2.errors.RaiseException):
            cur.execute("select * from audit.append_run(%s::jsonb, %s)", (payload, NIGHT))


_OLDER_RELEASE = """
create schema audit;
create table audit.run_ledger (
    seq bigint generated always as identity primary key,
    payload jsonb not null,
    prev_hash text not null,
    row_hash text not null unique,
    run_id text generated always as (payload ->> 'run_id') stored,
    status text generated always as (payload ->> 'status') stored,
    business_date date not null,
    recorded_at timestamptz not null default now()
);
create function audit.refuse_change() returns trigger language plpgsql as $$
begin
    raise exception '% is append-only: % refused', tg_table_schema || '.' || tg_table_name, tg_op;
end $$;
create trigger run_ledger_append_only before update or delete on audit.run_ledger
    for each row execute function audit.refuse_change();
insert into audit.run_ledger (payload, business_date, prev_hash, row_hash)
select p, '2026-11-20', repeat('0', 64), encode(sha256(convert_to(repeat('0', 64) || p::text, 'UTF8')), 'hex')
from (select '{"run_id": "old-night", "status": "published", "business_date": "2026-11-20"}'::jsonb as p) x;
"""


def test_a_ledger_the_writer_owned_in_an_older_release_is_taken_over_at_setup(db_url, role_url, admin_database_url,
                                                                               tmp_path, monkeypatch) -> None:
    from hospital_ops import migrate
    from hospital_ops.audit import anchor_existing_head

    monkeypatch.setenv("HOSPITAL_OPS_VAR_DIR", str(tmp_path / "var"))
    migrate.downgrade(admin_database_url(db_url), "0001_baseline")  # the tables of the release before migrations
    with closing(psycopg2.connect(admin_database_url(db_url))) as conn, conn.cursor() as cur:
        cur.execute("drop schema audit cascade")
        cur.execute("drop table ops.alembic_version")  # that release kept no version
        conn.commit()
    with closing(psycopg2.connect(db_url)) as conn, conn.cursor() as cur:  # as an older release did it
        cur.execute(_OLDER_RELEASE)
        conn.commit()
    database = db_url.rsplit("/", 1)[1]
    # what `hospital-ops warehouse start` / `roles` / `migrate` do (warehouse.migrate_database), as the superuser
    migrate.upgrade(admin_database_url(db_url))
    with closing(psycopg2.connect(admin_database_url(db_url))) as conn, conn.cursor() as cur:
        anchor_existing_head(cur, database)
        conn.commit()

    with closing(psycopg2.connect(db_url)) as conn, conn.cursor() as cur:
        cur.execute("select tableowner from pg_tables where schemaname = 'audit' and tablename = 'run_ledger'")
        assert cur.fetchone() == (security.LEDGER_OWNER,)
        cur.execute("select nspowner::regrole::text from pg_namespace where nspname = 'audit'")
        assert cur.fetchone() == (security.LEDGER_OWNER,)
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("alter table audit.run_ledger disable trigger user")
    auditor = role_url(db_url, security.AUDITOR)
    result = _verify(auditor)
    assert result.ok and result.rows == 1, result.problem  # the old chain holds, anchored at its head
    record_started(db_url, run_id="new-night", business_date=NIGHT)
    assert _verify(auditor).ok


@pytest.mark.e2e
def test_a_night_killed_mid_run_leaves_its_started_row_open(fresh_database, role_url, tmp_path, monkeypatch) -> None:
    """The real DAG, killed (SIGKILL to its process group) once its started row is in."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from hospital_ops.airflow_local import DAG_ID, airflow_env, ensure_metadata_db
    from hospital_ops_sim.vendor import generate_vendor_source

    url = fresh_database("killed")
    var = tmp_path / "var"
    monkeypatch.setenv("HOSPITAL_OPS_VAR_DIR", str(var))
    monkeypatch.setenv("HOSPITAL_OPS_INBOX", str(var / "inbox"))
    monkeypatch.setenv("WAREHOUSE_URL", url)
    generate_vendor_source(var / "inbox", end=NIGHT, months=3, vendors=12)
    env = airflow_env(url)
    ensure_metadata_db(env)
    night = subprocess.Popen([str(Path(sys.executable).parent / "airflow"), "dags", "test", DAG_ID, NIGHT.isoformat()],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        started = []
        while not started and time.monotonic() < deadline and night.poll() is None:
            time.sleep(0.2)
            with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
                cur.execute("select run_id from audit.run_ledger where status = 'started'")
                started = [row[0] for row in cur.fetchall()]
    finally:
        if night.poll() is None:
            os.killpg(night.pid, signal.SIGKILL)
        night.wait()
    assert started, "the night never wrote its started row"
    auditor = role_url(url, security.AUDITOR)
    assert _open_runs(auditor) == started
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.execute("select count(*) from audit.run_ledger where status <> 'started'")
        assert cur.fetchone() == (0,)  # killed before its closing row
    result = _verify(auditor)
    assert result.ok and result.rows == 1, result.problem
