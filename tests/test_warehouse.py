"""The embedded warehouse: a real PostgreSQL the project starts itself, whose data survives a stop
and a start, and which WAREHOUSE_URL replaces entirely."""

from __future__ import annotations

import psycopg2
import pytest

from hospital_ops import warehouse


@pytest.fixture
def own_warehouse(tmp_path, monkeypatch):
    """A second embedded server in its own var dir, so stopping it disturbs no other test."""
    monkeypatch.setenv("HOSPITAL_OPS_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("WAREHOUSE_URL", raising=False)
    yield
    warehouse.stop()


def test_data_survives_stop_and_start(own_warehouse) -> None:
    url = warehouse.start()
    assert url.startswith("postgresql://hospital_ops_writer:")
    assert warehouse.status()["running"]
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("create table kept (value text); insert into kept values ('科室台账')")
    conn.close()

    warehouse.stop()
    assert not warehouse.status()["running"]
    url_again = warehouse.start()
    assert warehouse.start() == url_again  # starting a running server is a no-op
    with psycopg2.connect(url_again) as conn, conn.cursor() as cur:
        cur.execute("select value from kept")
        assert cur.fetchall() == [("科室台账",)]
    conn.close()


def test_warehouse_url_points_everything_elsewhere(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HOSPITAL_OPS_VAR_DIR", str(tmp_path / "never-started"))
    monkeypatch.setenv("WAREHOUSE_URL", "postgresql://etl@db.hospital.example:5432/ops")
    assert warehouse.start() == "postgresql://etl@db.hospital.example:5432/ops"
    assert warehouse.url() == "postgresql://etl@db.hospital.example:5432/ops"
    assert warehouse.status()["mode"] == "external"
    assert not (tmp_path / "never-started").exists()
    with pytest.raises(warehouse.WarehouseError, match="refusing to reset an external warehouse"):
        warehouse.reset_database()


def test_url_before_first_start_is_a_clear_error(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HOSPITAL_OPS_VAR_DIR", str(tmp_path / "fresh"))
    monkeypatch.delenv("WAREHOUSE_URL", raising=False)
    with pytest.raises(warehouse.WarehouseError, match="never been started"):
        warehouse.url()


def _refused(url: str) -> bool:
    try:
        psycopg2.connect(url).close()
    except psycopg2.OperationalError as exc:
        return "password" in str(exc)
    return False


def test_every_role_needs_its_password_and_none_is_a_superuser(own_warehouse, tmp_path) -> None:
    from urllib.parse import urlsplit

    from hospital_ops import security

    warehouse.start()
    hba = (tmp_path / "var" / "warehouse" / "pgdata" / "pg_hba.conf").read_text()
    rules = [line.split() for line in hba.splitlines() if line.strip() and not line.startswith("#")]
    assert rules and all(rule[-1] == "scram-sha-256" for rule in rules)  # no trust, no md5
    assert {rule[3] for rule in rules if rule[0] == "host"} == {"127.0.0.1/32", "::1/128"}  # localhost only
    secrets_dir = tmp_path / "var" / "secrets"
    assert secrets_dir.stat().st_mode & 0o777 == 0o700
    for role in (*security.LOGIN_ROLES, warehouse.SUPERUSER):
        assert (secrets_dir / f"warehouse_{role}.password").stat().st_mode & 0o777 == 0o600
    for role in security.LOGIN_ROLES:
        good = warehouse.role_url(role)
        parts = urlsplit(good)
        without = good.replace(f":{parts.password}@", "@")
        wrong = good.replace(f":{parts.password}@", ":not-the-password@")
        assert _refused(without) and _refused(wrong), role
        with psycopg2.connect(good) as conn, conn.cursor() as cur:
            cur.execute("select rolsuper, rolcreaterole, rolcreatedb from pg_roles where rolname = current_user")
            assert cur.fetchone() == (False, False, False), role
            # what trust let anyone do: run a program as the server's system user
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute("copy (select 1) to program 'true'")
        conn.close()
    admin = warehouse.admin_url()
    assert _refused(admin.replace(f":{urlsplit(admin).password}@", "@"))


def test_a_trust_warehouse_of_an_older_release_is_upgraded_in_place(own_warehouse, tmp_path) -> None:
    """What an older release left: pg_hba `trust` and roles without passwords; start secures it and
    keeps the data."""
    from hospital_ops import security

    url = warehouse.start()
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("create table kept (value text); insert into kept values ('工作台账')")
    conn.close()
    hba = tmp_path / "var" / "warehouse" / "pgdata" / "pg_hba.conf"
    admin = psycopg2.connect(warehouse.admin_url())
    admin.autocommit = True
    with admin.cursor() as cur:
        hba.write_text("local all all trust\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n")
        cur.execute("select pg_reload_conf()")
        for role in (*security.LOGIN_ROLES, warehouse.SUPERUSER):
            cur.execute(f'alter role "{role}" password null')
    admin.close()
    port = warehouse.status()["url"].rsplit(":", 1)[1].split("/")[0]
    old_url = f"postgresql://{warehouse.SUPERUSER}@127.0.0.1:{port}/postgres"
    psycopg2.connect(old_url).close()  # anyone on the machine got in as the superuser

    assert warehouse.start() == url  # the same server, running: upgraded without a restart
    assert _refused(old_url)
    assert [line.split()[-1] for line in hba.read_text().splitlines() if line and not line.startswith("#")] == \
        ["scram-sha-256"] * 3
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("select value from kept")
        assert cur.fetchall() == [("工作台账",)]
    conn.close()
    for role in security.LOGIN_ROLES:
        psycopg2.connect(warehouse.role_url(role)).close()


def test_a_deleted_password_file_rotates_that_password_at_the_next_start(own_warehouse) -> None:
    from hospital_ops import security

    warehouse.start()
    old = warehouse.role_url(security.BI_READER)
    warehouse.password_file(security.BI_READER).unlink()
    warehouse.start()
    new = warehouse.role_url(security.BI_READER)
    assert new != old and _refused(old)
    psycopg2.connect(new).close()
    psycopg2.connect(warehouse.role_url(security.AUDITOR)).close()  # the others are unchanged
