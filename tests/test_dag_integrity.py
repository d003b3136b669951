"""DAG integrity: every DAG file imports, has no cycle, the expected tasks and retry policy, and
touches no database while being parsed."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

DAGS_DIR = Path(__file__).resolve().parents[1] / "dags"
DAG_FILES = sorted(DAGS_DIR.glob("*.py"))


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory, monkeypatch_module):
    import psycopg2

    def no_database(*args, **kwargs):
        raise AssertionError("a DAG file opened a database connection at parse time")

    monkeypatch_module.setenv("AIRFLOW_HOME", str(tmp_path_factory.mktemp("airflow_home")))
    monkeypatch_module.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    monkeypatch_module.setattr(psycopg2, "connect", no_database)
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR))


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_dag_files_exist() -> None:
    assert DAG_FILES, f"no DAG files in {DAGS_DIR}"


def test_every_dag_file_imports_without_errors(dagbag) -> None:
    assert dagbag.import_errors == {}
    files_with_dags = {Path(dag.fileloc).name for dag in dagbag.dags.values()}
    assert files_with_dags == {path.name for path in DAG_FILES}


def test_no_cycles(dagbag) -> None:
    for dag in dagbag.dags.values():
        dag.check_cycle()


def test_nightly_dag_wiring(dagbag) -> None:
    from hospital_ops.sources import SOURCES

    dag = dagbag.dags["hospital_ops_nightly"]
    chain = ["dbt_build_marts", "quality_gate", "dbt_build_scoring", "dbt_snapshot", "publish", "summary"]
    expected = {f"{step}_{name}" for name in SOURCES for step in ("extract", "load")} | set(chain) | {"record_run_ledger", "notify_alerts"}
    expected |= {"open_run_ledger"}
    assert {task.task_id for task in dag.tasks} == expected
    assert set(SOURCES) <= {t.task_id.removeprefix("extract_") for t in dag.tasks if t.task_id.startswith("extract_")}
    assert {"vendor", "his", "insurance", "survey", "referral"} <= set(SOURCES)  # file, SQL and API sources
    for name in SOURCES:
        assert dag.get_task(f"load_{name}").upstream_task_ids == {f"extract_{name}"}
        assert f"load_{name}" in dag.get_task("dbt_build_marts").upstream_task_ids
        assert dag.get_task(f"extract_{name}").upstream_task_ids == {"open_run_ledger"}  # the ledger's started row first
    for before, after in itertools.pairwise(chain):
        assert dag.get_task(after).upstream_task_ids == {before}
    ledger = dag.get_task("record_run_ledger")
    assert ledger.upstream_task_ids == {"publish"} and ledger.trigger_rule == "all_done"
    assert dag.get_task("notify_alerts").upstream_task_ids == {"publish"}
    assert {t.task_id for t in dag.leaves} == {"summary", "record_run_ledger", "notify_alerts"}


def test_every_task_has_a_timeout_and_notifies_its_failure(dagbag) -> None:
    from datetime import timedelta

    from hospital_ops.notifiers import NightFailedNotifier

    dag = dagbag.dags["hospital_ops_nightly"]
    for task in dag.tasks:
        assert task.execution_timeout is not None and task.execution_timeout >= timedelta(minutes=5), task.task_id
        assert any(isinstance(cb, NightFailedNotifier) for cb in task.on_failure_callback or []), task.task_id
    assert dag.get_task("load_his").execution_timeout > dag.get_task("publish").execution_timeout


def test_publish_emits_the_published_asset_and_the_deadline_is_07_00_hospital_time(dagbag) -> None:
    import pendulum

    dag = dagbag.dags["hospital_ops_nightly"]
    assert [o.name for o in dag.get_task("publish").outlets] == ["hospital_ops_published"]
    (alert,) = dag.deadline if isinstance(dag.deadline, list) else [dag.deadline]
    logical = pendulum.datetime(2026, 11, 22, 2, tz="Asia/Shanghai")  # business date 11-22's interval start
    assert logical + alert.interval == pendulum.datetime(2026, 11, 23, 7, tz="Asia/Shanghai")
    docs = dagbag.dags["hospital_ops_docs_refresh"]
    assert [a.name for a in docs.timetable.asset_condition.objects] == ["hospital_ops_published"]


def test_failed_tests_and_gates_are_not_retried(dagbag) -> None:
    dag = dagbag.dags["hospital_ops_nightly"]
    assert dag.get_task("dbt_build_marts").trigger_rule == "none_failed_min_one_success"
    for task_id in ("dbt_build_marts", "quality_gate", "dbt_build_scoring", "dbt_snapshot"):
        assert dag.get_task(task_id).retries == 0, task_id
    for task in dag.tasks:
        if task.task_id.startswith(("extract_", "load_")):
            assert task.retries > 0, task.task_id


def _nightly_module():  # type: ignore[no-untyped-def]
    import importlib.util

    spec = importlib.util.spec_from_file_location("hospital_ops_nightly_under_test", DAGS_DIR / "hospital_ops_nightly.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_survey_api_endpoint_comes_from_its_airflow_connection_else_the_environment(monkeypatch) -> None:
    import json

    nightly = _nightly_module()
    monkeypatch.setenv("SURVEY_API_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("SURVEY_API_TOKEN", "token-from-the-environment")
    monkeypatch.delenv("AIRFLOW_CONN_SURVEY_API", raising=False)
    assert nightly._api_endpoint("survey_api") == ("http://127.0.0.1:9000", "token-from-the-environment")
    # an Airflow connection (HTTP style: schema is the scheme, password the bearer token) wins
    monkeypatch.setenv("AIRFLOW_CONN_SURVEY_API", json.dumps(
        {"conn_type": "http", "host": "survey.example.org", "port": 8443, "schema": "https",
         "password": "token-from-the-connection"}))
    assert nightly._api_endpoint("survey_api") == ("https://survey.example.org:8443", "token-from-the-connection")


def test_survey_api_settings_come_from_its_airflow_connection_extra_else_the_environment(monkeypatch) -> None:
    import json

    from hospital_ops.extract.api import ApiSettings

    nightly = _nightly_module()
    monkeypatch.delenv("AIRFLOW_CONN_SURVEY_API", raising=False)
    monkeypatch.setenv("SURVEY_API_PAGE_SIZE", "50")
    assert nightly._api_settings("survey_api") == ApiSettings(page_size=50)
    monkeypatch.setenv("AIRFLOW_CONN_SURVEY_API", json.dumps(
        {"conn_type": "http", "host": "survey.example.org", "extra": {"page_size": 200, "retries": 2}}))
    assert nightly._api_settings("survey_api") == ApiSettings(page_size=200, retries=2)  # the connection wins
    monkeypatch.setenv("AIRFLOW_CONN_SURVEY_API", json.dumps({"conn_type": "http", "host": "survey.example.org"}))
    assert nightly._api_settings("survey_api") == ApiSettings()  # a connection without extras: the defaults


def test_connection_lookups_fall_back_only_when_the_connection_is_not_found(monkeypatch) -> None:
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    from hospital_ops import notifiers

    nightly = _nightly_module()
    monkeypatch.setenv("HIS_URL", "postgresql://reader@127.0.0.1:5432/his")

    def not_found(conn_id):
        raise AirflowNotFoundException(f"The conn_id `{conn_id}` isn't defined")

    def backend_down(conn_id):
        raise ConnectionError(f"secrets backend unreachable while reading {conn_id}")

    monkeypatch.setattr(BaseHook, "get_connection", staticmethod(not_found))
    assert nightly._source_url("his") == "postgresql://reader@127.0.0.1:5432/his"
    assert notifiers.alert_urls() == []
    monkeypatch.setattr(BaseHook, "get_connection", staticmethod(backend_down))
    for lookup in (lambda: nightly._source_url("his"), lambda: nightly._api_endpoint("survey_api"),
                   lambda: nightly._api_settings("survey_api"),
                   nightly._warehouse_url, notifiers.alert_urls):
        with pytest.raises(ConnectionError, match="secrets backend unreachable"):
            lookup()
