"""Nightly hospital-operations pipeline: one run per business date (the run's logical date).

Wiring only — every step lives in the `hospital_ops` package (include/) and is tested there.

    extract_<source> → load_<source>          one pair per source in hospital_ops.sources.SOURCES
                                              (a SQL or API source without a configured database
                                              or URL is skipped)
      → dbt_build_marts                       source freshness, then staging, intermediate and marts
                                              (into *_build schemas); a stale source never fails it:
                                              recorded in dq.source_freshness, and a table past its
                                              error_after leaves out only the models downstream of it
      → quality_gate                          Great Expectations checkpoint; raises on failure
      → dbt_build_scoring                     warnings, decisions, ratings
      → dbt_snapshot                          history for auditors
      → publish                               one transaction: *_build → marts / scoring (BI);
                                              emits the asset `hospital_ops_published`
      → summary
    open_run_ledger → every extract           the run's "started" row in the ledger, before anything
    record_run_ledger                         always, whatever happened: the run's closing row in the
                                              hash-chained run ledger (a killed night leaves it open)
    notify_alerts                             each new red/yellow warning, service or DRG alert,
                                              once (ops.notifications_sent); a night finished late

Notifications go to the Apprise URLs of the connection `hospital_ops_alerts` (hospital_ops.notify):
every failed task (which, the error, the log link; the failed expectations of the quality gate),
the publish deadline missed (a deadline alert, HOSPITAL_OPS_PUBLISH_DEADLINE hospital time the
morning after), each new alert. Every task has an execution_timeout (TIMEOUTS).

A backfill night older than the newest publication is loaded but not built or published: its
dbt_build_marts and what follows are skipped, unless the run's conf says {"force_publish": true}.

Transient failures (a file share or the database briefly away) are retried on extract and load;
a failed dbt test or quality gate is not retried: it fails the task at once and nothing after it
runs, so BI keeps what the last good night published. No database call happens at parse time.
"""

from __future__ import annotations

import os
from datetime import date, timedelta

import pendulum
from airflow.sdk import Asset, CronDataIntervalTimetable, dag, get_current_context, task

from hospital_ops.sources import SOURCES  # specs only: no database, no heavy import at parse time

NO_RETRY = {"retries": 0}
HOSPITAL_TZ = "Asia/Shanghai"

# execution_timeout per task: the slowest figure of the benchmark (README, Performance: the 16x
# backfill), times the 25x a 10-hospital consortium's history is, with margin; a hung step fails
# (and notifies) instead of holding the night
TIMEOUTS = {"extract": timedelta(minutes=60), "load": timedelta(minutes=90), "dbt_build_marts": timedelta(minutes=60),
            "quality_gate": timedelta(minutes=60), "dbt_build_scoring": timedelta(minutes=15),
            "dbt_snapshot": timedelta(minutes=15), "publish": timedelta(minutes=10), "summary": timedelta(minutes=5),
            "record_run_ledger": timedelta(minutes=5), "open_run_ledger": timedelta(minutes=5),
            "notify_alerts": timedelta(minutes=10)}


def _business_date() -> date:
    """The business day a run processes: its data interval starts on it (hospital time)."""
    return get_current_context()["logical_date"].in_timezone(HOSPITAL_TZ).date()


def _run_id() -> str:
    return get_current_context()["run_id"]


def _warehouse_url() -> str:
    """The `warehouse` Airflow connection if defined, else WAREHOUSE_URL / the embedded server."""
    from hospital_ops.airflow_connections import warehouse_url

    return warehouse_url()


def _source_url(connection: str) -> str | None:
    """A SQL source's database: its Airflow connection if defined, else <CONNECTION>_URL."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    from hospital_ops.config import source_url

    try:
        return BaseHook.get_connection(connection).get_uri().replace("postgres://", "postgresql://", 1)
    except AirflowNotFoundException:  # not configured (any other secrets-backend error fails loudly)
        return source_url(connection)


def _api_endpoint(connection: str) -> tuple[str | None, str | None]:
    """An API source's base URL and bearer token: its Airflow connection (host/port/schema → URL,
    password → token) if defined, else <CONNECTION>_URL / <CONNECTION>_TOKEN."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    from hospital_ops.config import source_token, source_url
    from hospital_ops.extract.api import endpoint_from_connection

    try:
        conn = BaseHook.get_connection(connection)
    except AirflowNotFoundException:  # not configured (any other secrets-backend error fails loudly)
        return source_url(connection), source_token(connection)
    return endpoint_from_connection(conn.host, conn.port, conn.schema), conn.password


def _api_settings(connection: str):  # type: ignore[no-untyped-def]
    """An API source's page size, timeouts and retries: its Airflow connection's extra if the connection
    is defined, else <CONNECTION>_PAGE_SIZE, … (hospital_ops.extract.api.ApiSettings); unset: the defaults."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    from hospital_ops.extract.api import ApiSettings

    try:
        conn = BaseHook.get_connection(connection)
    except AirflowNotFoundException:  # not configured (any other secrets-backend error fails loudly)
        return ApiSettings.from_env(connection)
    return ApiSettings.from_mapping(conn.extra_dejson, where=f"Airflow connection {connection!r}")


def _fhir_server():  # type: ignore[no-untyped-def]
    """The HIS's FHIR server (HIS_KIND=fhir): the Airflow connection `his_fhir` if defined, else the
    HIS_FHIR_* environment (hospital_ops.extract.fhir_night.FhirServerSettings)."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    from hospital_ops.extract.fhir_night import FHIR_CONNECTION, FhirServerSettings

    try:
        conn = BaseHook.get_connection(FHIR_CONNECTION)
    except AirflowNotFoundException:  # not configured (any other secrets-backend error fails loudly)
        return FhirServerSettings.from_env()
    return FhirServerSettings.from_connection(host=conn.host, port=conn.port, schema=conn.schema, login=conn.login,
                                              password=conn.password, extra=conn.extra_dejson)


def _fail_without_retry(exc: Exception) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    raise AirflowFailException(str(exc)) from exc


def _publication_env() -> dict[str, str]:
    """HOSPITAL_OPS_FORCE_PUBLISH=1 for a run whose conf says {"force_publish": true}: it may build
    and publish a night older than the newest publication (recorded as forced)."""
    from hospital_ops.airflow_local import run_forces_publication
    from hospital_ops.pipeline import FORCE_PUBLISH_ENV

    return {FORCE_PUBLISH_ENV: "1"} if run_forces_publication(get_current_context()["dag_run"].conf) else {}


def _skip_an_older_backfill_night() -> None:
    """A backfill night older than the newest publication stops after its load (skipped from here on)."""
    from airflow.sdk.exceptions import AirflowSkipException

    from hospital_ops.airflow_local import older_backfill_reason

    run_type = get_current_context()["dag_run"].run_type
    reason = older_backfill_reason(_warehouse_url(), _business_date(), forced=bool(_publication_env()),
                                   run_type=getattr(run_type, "value", str(run_type)))
    if reason:
        import logging

        logging.getLogger(__name__).warning("%s", reason)  # the task's log says why it was skipped
        raise AirflowSkipException(reason)


def _dbt(*stages: str) -> None:
    """Run dbt stages in order; a failed model or test fails the task at once, without retry."""
    from hospital_ops.config import environment
    from hospital_ops.dbt_runner import DbtStageFailed, run_stage

    try:
        with environment(_publication_env()):
            for stage in stages:
                run_stage(stage, warehouse_url=_warehouse_url(), business_date=_business_date())
    except DbtStageFailed as exc:
        _fail_without_retry(exc)


def _notifications() -> dict:
    """The failure notifier on every task and the publish deadline on the DAG (hospital_ops.notify)."""
    from airflow.providers.apprise.notifications.apprise import AppriseNotifier
    from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference

    from hospital_ops.notifiers import NightFailedNotifier, deadline_notifier_kwargs
    from hospital_ops.notify import publish_deadline

    deadline = publish_deadline()
    # the logical date is the business date's 02:00 (the cron's interval start): published by
    # <deadline> the next morning = one day plus (deadline - 02:00) after it
    after_logical = timedelta(days=1, hours=deadline.hour - 2, minutes=deadline.minute)
    if os.environ.get("HOSPITAL_OPS_DEADLINE_ALERT", "on") == "off":
        # `airflow dags test` (3.3.2) fails at the end of a run of a DAG with a deadline alert: the
        # development path (hospital_ops.airflow_local.run_night) parses the DAG without it
        return {"deadline": None, "on_failure_callback": [NightFailedNotifier()]}
    return {
        "deadline": DeadlineAlert(reference=DeadlineReference.DAGRUN_LOGICAL_DATE, interval=after_logical,
                                  callback=AsyncCallback(AppriseNotifier, kwargs=deadline_notifier_kwargs())),
        "on_failure_callback": [NightFailedNotifier()],
    }


NOTIFICATIONS = _notifications()
PUBLISHED = Asset(name="hospital_ops_published", uri="hospital-ops://warehouse/published")


@dag(
    dag_id="hospital_ops_nightly",
    # each run covers one business day and starts at 02:00 the next morning, once the HIS and the
    # vendors' feeds have closed the day; its logical date is the start of that day
    schedule=CronDataIntervalTimetable("0 2 * * *", timezone=HOSPITAL_TZ),
    start_date=pendulum.datetime(2026, 1, 1, tz=HOSPITAL_TZ),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2),
                  "on_failure_callback": NOTIFICATIONS["on_failure_callback"],
                  "execution_timeout": TIMEOUTS["extract"]},
    deadline=NOTIFICATIONS["deadline"],
    tags=["hospital_ops", "nightly"],
    doc_md=__doc__,
)
def hospital_ops_nightly() -> None:
    @task(trigger_rule="none_failed_min_one_success", execution_timeout=TIMEOUTS["dbt_build_marts"],
          **NO_RETRY)  # a source not configured is skipped
    def dbt_build_marts() -> None:
        # freshness records dbt's result per source table and never fails the task; the marts stage then
        # leaves out what depends on a table past its error_after (hospital_ops.dbt_runner.run_stage)
        _skip_an_older_backfill_night()
        _dbt("freshness", "marts")

    @task(execution_timeout=TIMEOUTS["quality_gate"], **NO_RETRY)
    def quality_gate() -> dict:
        from hospital_ops.quality.gate import QualityGateFailed, check_quarantine_share, run_quality_gate

        try:
            result = run_quality_gate(_warehouse_url(), run_id=_run_id(), business_date=_business_date())
            # a source whose night was mostly quarantined fails too (seed quality_quarantine_thresholds)
            check_quarantine_share(_warehouse_url(), run_id=_run_id(), business_date=_business_date())
        except QualityGateFailed as exc:
            _fail_without_retry(exc)
        return {"success": result.success, "expectations": len(result.results)}

    @task(execution_timeout=TIMEOUTS["dbt_build_scoring"], **NO_RETRY)
    def dbt_build_scoring() -> None:
        _dbt("scoring")

    @task(execution_timeout=TIMEOUTS["dbt_snapshot"], **NO_RETRY)
    def dbt_snapshot() -> None:
        _dbt("snapshots")

    @task(execution_timeout=TIMEOUTS["publish"], outlets=[PUBLISHED])
    def publish() -> list[dict]:
        from hospital_ops.config import environment
        from hospital_ops.pipeline import publish as publish_night

        with environment(_publication_env()):
            published = publish_night(warehouse_url=_warehouse_url(), business_date=_business_date(), run_id=_run_id())
        get_current_context()["outlet_events"][PUBLISHED].extra = {"business_date": _business_date().isoformat()}
        return published

    @task(execution_timeout=TIMEOUTS["summary"])
    def summary() -> dict:
        import logging

        from hospital_ops.pipeline import format_summary, night_summary

        result = night_summary(warehouse_url=_warehouse_url(), business_date=_business_date())
        logging.getLogger(__name__).info("\n%s", format_summary(result))
        return result

    @task(trigger_rule="all_done", execution_timeout=TIMEOUTS["record_run_ledger"])
    def record_run_ledger() -> dict:
        from hospital_ops.audit import record_run

        payload = record_run(_warehouse_url(), run_id=_run_id(), business_date=_business_date())
        return {"status": payload["status"], "inputs": len(payload["inputs"])}

    @task(execution_timeout=TIMEOUTS["open_run_ledger"], **NO_RETRY)  # a retry would append a second started row
    def open_run_ledger() -> dict:
        from hospital_ops.audit import record_started

        return record_started(_warehouse_url(), run_id=_run_id(), business_date=_business_date())

    opened = open_run_ledger()

    @task(execution_timeout=TIMEOUTS["notify_alerts"])
    def notify_alerts() -> dict:
        from hospital_ops.notifiers import alert_urls
        from hospital_ops.notify import notify_if_late, notify_new_alerts

        urls = alert_urls()
        result = notify_new_alerts(_warehouse_url(), business_date=_business_date(), run_id=_run_id(), urls=urls)
        late = notify_if_late(_warehouse_url(), dag_id=get_current_context()["dag"].dag_id,
                              business_date=_business_date(), run_id=_run_id(), urls=urls)
        return {**result.as_dict(), "late_notice_sent": late}

    loads = []
    for source_name in SOURCES:

        @task(task_id=f"extract_{source_name}")
        def extract(source_name: str = source_name) -> dict:
            from airflow.sdk.exceptions import AirflowSkipException

            from hospital_ops.pipeline import SourceNotConfigured
            from hospital_ops.pipeline import extract as extract_source

            source = SOURCES[source_name]
            url = token = api = None
            if source.extract == "api":
                url, token = _api_endpoint(source.connection)
                api = _api_settings(source.connection)
            elif source.connection:
                url = _source_url(source.connection)
            from hospital_ops.extract.fhir_night import his_kind

            fhir = _fhir_server() if source_name == "his" and his_kind() == "fhir" else None
            try:
                return extract_source(source_name, warehouse_url=_warehouse_url(), business_date=_business_date(),
                                      source_url=url, source_token=token, fhir_server=fhir, api_settings=api)
            except SourceNotConfigured as exc:
                raise AirflowSkipException(str(exc)) from exc

        @task(task_id=f"load_{source_name}", execution_timeout=TIMEOUTS["load"])
        def load(extracted: dict, source_name: str = source_name) -> dict:
            from hospital_ops.pipeline import load as load_source

            return load_source(source_name, extracted, warehouse_url=_warehouse_url(),
                               business_date=_business_date(), run_id=_run_id())

        extracted = extract()
        opened >> extracted
        loads.append(load(extracted))

    marts = dbt_build_marts()
    loads >> marts
    published = marts >> quality_gate() >> dbt_build_scoring() >> dbt_snapshot() >> publish()
    published >> summary()
    published >> record_run_ledger()  # a leaf beside summary: a failed night still fails the run
    published >> notify_alerts()


hospital_ops_nightly()
