"""Downstream of the nightly publish: regenerate the dbt documentation site whenever the nightly
DAG publishes (scheduled on the asset `hospital_ops_published`, never by hand), on the warehouse of
the same `warehouse` connection the nightly DAG publishes through. Wiring only."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, dag, get_current_context, task

PUBLISHED = Asset(name="hospital_ops_published", uri="hospital-ops://warehouse/published")


@dag(
    dag_id="hospital_ops_docs_refresh",
    schedule=[PUBLISHED],
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=2), "execution_timeout": timedelta(minutes=15)},
    tags=["hospital_ops", "docs"],
    doc_md=__doc__,
)
def hospital_ops_docs_refresh() -> None:
    @task
    def dbt_docs_generate() -> str:
        from datetime import date

        from hospital_ops.airflow_connections import warehouse_url
        from hospital_ops.dbt_runner import generate_docs

        events = get_current_context()["triggering_asset_events"]
        dates = [date.fromisoformat(e.extra["business_date"]) for evs in events.values() for e in evs
                 if e.extra.get("business_date")]
        business_date = max(dates) if dates else date.today() - timedelta(days=1)
        return str(generate_docs(warehouse_url=warehouse_url(), business_date=business_date))

    dbt_docs_generate()


hospital_ops_docs_refresh()
