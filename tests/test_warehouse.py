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
    assert url.startswith("postgresql://hospital_ops_writer@127.0.0.1:")
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
