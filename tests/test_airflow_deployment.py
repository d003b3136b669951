"""The local Airflow deployment as a hospital runs it: `airflow_local.up` starts the API server,
scheduler (LocalExecutor), DAG processor and triggerer on a metadata database of their own on the
test PostgreSQL; a night is triggered through the REST API (/api/v2, JWT from /auth/token), runs
under the real scheduler, and its task logs and duration are read back through the API. Then
Airflow's own backfill: a range is planned, a range before the DAG's start date is refused."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

import psycopg2
import pytest

from hospital_ops import airflow_local, notify, warehouse
from hospital_ops.generate.vendor import generate_vendor_source
from nightly_runs import query

pytestmark = pytest.mark.e2e

END = date(2026, 11, 22)


@pytest.fixture(scope="module")
def webhook():
    """An HTTP endpoint standing in for a messaging webhook (Apprise json://): the messages it got."""
    received: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield {"url": f"json://127.0.0.1:{server.server_address[1]}/hook", "received": received}
    server.shutdown()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, fresh_database, webhook):
    var_dir = tmp_path_factory.mktemp("var")
    url = fresh_database("airflow")
    meta = f"airflow_meta_test_{os.getpid()}"
    admin = warehouse.admin_url()  # before the var dir moves (the embedded server's state lives there)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOSPITAL_OPS_VAR_DIR", str(var_dir))
        patch.setenv("HOSPITAL_OPS_INBOX", str(var_dir / "inbox"))
        for name in ("HIS_URL", "SURVEY_API_URL", "SURVEY_API_TOKEN"):  # a tiny night: the vendor files only
            patch.delenv(name, raising=False)
        patch.setenv("HOSPITAL_OPS_ALERT_URLS", webhook["url"])
        generate_vendor_source(var_dir / "inbox", end=END, months=3, vendors=12)
        deployed = airflow_local.up(url, admin, meta_database=meta,
                                    extra_env=airflow_local.MANUAL_ONLY)
        try:
            yield {"deployment": deployed, "url": url, "var_dir": var_dir, "meta": meta, "admin": admin}
        finally:
            airflow_local.down()
    warehouse.drop_database(meta)


@pytest.fixture(scope="module")
def night(deployment):
    api = airflow_local.AirflowApi(deployment["deployment"])
    started = datetime.now().astimezone()
    runs = airflow_local.trigger_nights(deployment["deployment"], [END])
    finished = datetime.now().astimezone()
    for ti in api.task_instances(runs[0]["dag_run_id"]):  # a retried task: say why its first try failed
        if ti["try_number"] > 1:
            print(f"{ti['task_id']} needed {ti['try_number']} tries; try 1:\n"
                  f"{api.task_log(runs[0]['dag_run_id'], ti['task_id'], 1)[-3000:]}")
    return {"api": api, "run": runs[0], "started": started, "finished": finished}


def test_every_component_is_up_and_healthy(deployment):
    status = airflow_local.deployment_status()
    assert status["running"], status
    assert set(status["processes"]) == set(airflow_local.COMPONENTS)
    for part in ("metadatabase", "scheduler", "triggerer", "dag_processor"):
        assert status["health"][part]["status"] == "healthy", status["health"]


def test_metadata_lives_in_its_own_database_and_role(deployment):
    meta = deployment["meta"]
    with psycopg2.connect(deployment["admin"]) as conn, conn.cursor() as cur:
        cur.execute("select pg_get_userbyid(datdba) from pg_database where datname = %s", (meta,))
        assert cur.fetchone() == (airflow_local.META_ROLE,)
    conn.close()
    with psycopg2.connect(warehouse.with_database(deployment["admin"], meta)) as conn, conn.cursor() as cur:
        cur.execute("select count(*) from dag where dag_id = %s", (airflow_local.DAG_ID,))
        assert cur.fetchone() == (1,)
    conn.close()


def test_the_login_is_refused_without_the_generated_password(deployment):
    import requests

    deployed = deployment["deployment"]
    secrets_file = deployment["var_dir"] / "secrets" / "airflow_passwords.json"
    assert deployed.password in secrets_file.read_text()
    assert oct(secrets_file.stat().st_mode & 0o777) == "0o600"
    wrong = requests.post(f"{deployed.url}/auth/token", json={"username": deployed.username, "password": "x"},
                          timeout=10)
    assert wrong.status_code == 401
    assert requests.get(f"{deployed.url}/api/v2/dags", timeout=10).status_code == 401


def test_a_triggered_night_runs_under_the_scheduler(night):
    run = night["run"]
    assert run["state"] == "success", run
    assert run["run_type"] == "manual"
    tis = night["api"].task_instances(run["dag_run_id"])
    states = {ti["task_id"]: ti["state"] for ti in tis}
    assert states["publish"] == "success" and states["summary"] == "success", states
    assert {ti["executor"] or "LocalExecutor" for ti in tis} <= {"LocalExecutor"}
    assert all(ti["hostname"] for ti in tis if ti["state"] == "success")


def test_the_run_duration_is_the_real_run_time(night):
    run = night["run"]
    start = datetime.fromisoformat(run["start_date"])
    end = datetime.fromisoformat(run["end_date"])
    wall = (night["finished"] - night["started"]).total_seconds()
    assert night["started"] <= start <= end <= night["finished"]
    assert run["duration"] == pytest.approx((end - start).total_seconds(), abs=1)
    assert 0 < run["duration"] <= wall
    # queued now, not on the business date: the data interval carries the business date instead
    assert datetime.fromisoformat(run["run_after"]) >= night["started"].replace(microsecond=0)
    interval_start = datetime.fromisoformat(run["data_interval_start"]).astimezone(
        ZoneInfo(airflow_local.HOSPITAL_TIMEZONE))
    assert (interval_start.date(), interval_start.hour) == (END, 2)


def test_task_logs_are_readable_through_the_api(night, deployment):
    api, run_id = night["api"], night["run"]["dag_run_id"]
    tries = {ti["task_id"]: ti["try_number"] for ti in api.task_instances(run_id)}  # the attempt that succeeded
    extracted = api.request("GET", f"/dags/{airflow_local.DAG_ID}/dagRuns/{run_id}/taskInstances/extract_vendor/"
                                   "xcomEntries/return_value").json()["value"]
    files = len(extracted["files"] if isinstance(extracted, dict) else json.loads(extracted)["files"])
    assert files > 0
    assert f"vendor: {files} files for night {END}" in api.task_log(run_id, "extract_vendor", tries["extract_vendor"])
    (published,) = query(deployment["url"], "select count(*) from audit.publications where run_id = %s", (run_id,))[0]
    assert f"published {published} relations for {END}" in api.task_log(run_id, "publish", tries["publish"])
    assert "Could not read served logs" not in api.task_log(run_id, "summary", tries["summary"])


def test_backfill_runs_airflow_own_backfill_over_business_dates(night):
    result = airflow_local.backfill(date(2026, 11, 1), date(2026, 11, 3), dry_run=True)
    assert result.returncode == 0, result.stderr[-2000:]
    planned = sorted(set(re.findall(r"\| (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+00:00) \|", result.stdout)))
    # each business date's 02:00 hospital time (18:00 UTC the day before), the last date included
    assert planned == ["2026-10-31 18:00:00+00:00", "2026-11-01 18:00:00+00:00", "2026-11-02 18:00:00+00:00"], \
        result.stdout


def test_backfill_before_the_start_date_is_refused_clearly(night):
    with pytest.raises(airflow_local.BackfillRefused, match="starts on 2026-01-01"):
        airflow_local.backfill(date(2025, 12, 30), date(2026, 1, 2), dry_run=True)


def test_the_missed_publish_deadline_is_sent_by_the_triggerer(night, webhook):
    # business date 2026-11-22 was due by 07:00 on the 23rd: its deadline alert fires in the
    # triggerer as soon as the run exists, through the Apprise provider's notifier
    deadline = datetime.now().timestamp() + 120
    while datetime.now().timestamp() < deadline:
        missed = [m for m in webhook["received"] if m["title"] == "【未按时发布】hospital_ops_nightly"]
        if missed:
            break
        time.sleep(2)
    assert len(missed) == 1, [m["title"] for m in webhook["received"]]
    assert "PUBLISH_DEADLINE" in missed[0]["message"] and airflow_local.DAG_ID in missed[0]["message"]
    # the deadline it missed, rendered by Airflow (UTC): 07:00 hospital time the morning after
    due = notify.deadline_for(END).astimezone(UTC)
    assert due.isoformat(sep=" ") in missed[0]["message"]
    late = [m for m in webhook["received"] if m["title"] == f"【夜间运行超时】hospital_ops_nightly {END}"]
    assert len(late) == 1
