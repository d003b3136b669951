"""The warehouse as every DAG of the project reaches it: the Airflow connection `warehouse` (what a
deployment defines, AIRFLOW_CONN_WAREHOUSE locally), else WAREHOUSE_URL / the embedded server.

Only "not found" means not configured; any other error of a secrets backend fails the task."""

from __future__ import annotations

WAREHOUSE_CONN_ID = "warehouse"


def warehouse_url() -> str:
    """The `warehouse` Airflow connection's URI (postgresql://…) if defined, else the project default."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(WAREHOUSE_CONN_ID)
    except AirflowNotFoundException:  # not configured: the project default (other errors fail loudly)
        from hospital_ops import warehouse

        return warehouse.url()
    return conn.get_uri().replace("postgres://", "postgresql://", 1)
