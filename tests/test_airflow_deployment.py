"""The local Airflow deployment as a hospital runs it: `airflow_local.up` starts the API server,
scheduler (LocalExecutor), DAG processor and triggerer on a metadata database of their own on the
test PostgreSQL; a night is triggered through the REST API (/api/v2, JWT from /auth/token), runs
under the real scheduler, and its task logs and duration are read back through the API; its publish
triggers the docs refresh scheduled on the published asset. Then Airflow's own backfill: a range is
planned, a range before the DAG's start date is refused, and a backfilled night older than the newest
publication is loaded but neither built nor published."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

import psycopg2
import pytest

from hospital_ops import airflow_local, notify, warehouse
from hospital_ops_sim.vendor import generate_vendor_source
from nightly_runs import query

pytestmark = pytest.mark.e2e

END = date(2026, 11, 22)


class AirflowApi(airflow_local.AirflowApi):
    """The deployment's REST API with what only these tests read: task instances and their logs, and
    asset-triggered runs."""

    def wait_for_asset_run(self, dag_id: str, business_date: date, *, timeout: float = 600.0) -> dict:
        """The finished run of an asset-scheduled DAG that the publication of `business_date`
        triggered (its upstream asset events carry the business date)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for run in self.runs(dag_id):
                if run["run_type"] != "asset_triggered":
                    continue
                events = self.request("GET", f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}/upstreamAssetEvents"
                                      ).json()["asset_events"]
                dates = {(event.get("extra") or {}).get("business_date") for event in events}
                if business_date.isoformat() in dates and run["state"] in ("success", "failed"):
                    return run
            time.sleep(3)
        raise airflow_local.AirflowDeploymentError(f"no finished run of {dag_id} for the publication of "
                                                   f"{business_date} within {timeout:.0f} s")

    def task_instances(self, run_id: str, *, dag_id: str = airflow_local.DAG_ID) -> list[dict]:
        return self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                            params={"limit": 100}).json()["task_instances"]

    def task_log(self, run_id: str, task_id: str, try_number: int = 1, *,
                 dag_id: str = airflow_local.DAG_ID) -> str:
        """A task's log as the UI shows it (one event per line)."""
        response = self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
                                params={"full_content": "true"}, headers={"Accept": "application/json"})
        content = response.json()["content"]
        return "\n".join(line if isinstance(line, str) else str(line.get("event", line)) for line in content)


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
    meta = f"airflow_meta_test_{os.getpid()}"  # its database and role: not the checkout's own deployment's
    admin = warehouse.admin_url()  # before the var dir moves (the embedded server's state lives there)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOSPITAL_OPS_VAR_DIR", str(var_dir))
        patch.setenv("HOSPITAL_OPS_INBOX", str(var_dir / "inbox"))
        for name in ("HIS_URL", "SURVEY_API_URL", "SURVEY_API_TOKEN"):  # a tiny night: the vendor files only
            patch.delenv(name, raising=False)
        patch.setenv("HOSPITAL_OPS_ALERT_URLS", webhook["url"])
        generate_vendor_source(var_dir / "inbox", end=END, months=3, vendors=12)
        deployed = airflow_local.up(url, admin, meta_database=meta, meta_role=meta,
                                    extra_env=airflow_local.MANUAL_ONLY)
        try:
            yield {"deployment": deployed, "url": url, "var_dir": var_dir, "meta": meta, "admin": admin}
        finally:
            airflow_local.down()
    warehouse.drop_database(meta)
    with psycopg2.connect(admin) as conn, conn.cursor() as cur:
        cur.execute(f'drop role if exists "{meta}"')
    conn.close()


@pytest.fixture(scope="module")
def night(deployment):
    api = AirflowApi(deployment["deployment"])
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
        assert cur.fetchone() == (meta,)  # the test's own role (a checkout's deployment: airflow_local.META_ROLE)
    conn.close()
    # the DAG processor parses the DAG files a while after it starts (longer on a loaded machine)
    deadline = time.monotonic() + 180
    while True:
        with psycopg2.connect(warehouse.with_database(deployment["admin"], meta)) as conn, conn.cursor() as cur:
            cur.execute("select count(*) from dag where dag_id = %s", (airflow_local.DAG_ID,))
            found = cur.fetchone()
        conn.close()
        if found == (1,) or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert found == (1,)


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


def test_a_forced_backfill_passes_its_conf_to_airflow(night):
    result = airflow_local.backfill(date(2026, 11, 1), date(2026, 11, 1), dry_run=True, force_publish=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "2026-10-31 18:00:00+00:00" in result.stdout


def test_a_backfilled_night_older_than_the_newest_publication_is_loaded_only(night, deployment):
    # END is published; a backfill of the day before lands its rows but must not put older figures
    # over newer ones: dbt_build_marts and what follows are skipped, and the run succeeds
    older = END - timedelta(days=1)
    api, url = night["api"], deployment["url"]
    published_before = query(url, "select run_id, business_date from audit.publications group by 1, 2")
    result = airflow_local.backfill(older, older)
    assert result.returncode == 0, result.stderr[-2000:]
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        runs = [r for r in api.runs() if r["run_type"] == "backfill"]
        if runs and all(r["state"] in ("success", "failed") for r in runs):
            break
        time.sleep(3)
    (run,) = runs
    assert run["state"] == "success", run
    states = {ti["task_id"]: ti["state"] for ti in api.task_instances(run["dag_run_id"])}
    assert states["load_vendor"] == "success" and states["record_run_ledger"] == "success", states
    assert {states[t] for t in ("dbt_build_marts", "quality_gate", "dbt_build_scoring", "dbt_snapshot", "publish",
                                "summary", "notify_alerts")} == {"skipped"}, states
    skipped_log = api.task_log(run["dag_run_id"], "dbt_build_marts")
    assert f"backfill of {older}: its rows are loaded, but it is neither built nor published: {END} is " \
           "already published" in skipped_log
    assert "--force-publish" in skipped_log
    assert query(url, "select run_id, business_date from audit.publications group by 1, 2") == published_before


def test_backfill_before_the_start_date_is_refused_clearly(night):
    with pytest.raises(airflow_local.BackfillRefused, match="starts on 2026-01-01"):
        airflow_local.backfill(date(2025, 12, 30), date(2026, 1, 2), dry_run=True)


def test_the_publish_triggers_the_docs_refresh_on_its_asset(night, deployment):
    # the nightly's publish emitted the asset hospital_ops_published; the manual-only scheduler makes
    # no run of its own, so the event waits, queued, until a deployment with its schedule on (as
    # `hospital-ops airflow up` after the demo) runs the DAG scheduled on it. That DAG regenerates the
    # dbt docs from the warehouse of the `warehouse` connection (the test's database, not the default).
    # The nightly DAG is paused first, as the demo leaves it: no 02:00 night starts on the test's data.
    night["api"].set_paused(True)
    airflow_local.down()
    scheduling = airflow_local.up(deployment["url"], deployment["admin"], meta_database=deployment["meta"],
                                  meta_role=deployment["meta"])
    api = AirflowApi(scheduling)
    docs = api.wait_for_asset_run(airflow_local.DOCS_DAG_ID, END)
    assert docs["state"] == "success", api.task_log(docs["dag_run_id"], "dbt_docs_generate",
                                                   dag_id=airflow_local.DOCS_DAG_ID)[-3000:]
    events = api.request("GET", f"/dags/{airflow_local.DOCS_DAG_ID}/dagRuns/{docs['dag_run_id']}/upstreamAssetEvents"
                         ).json()["asset_events"]
    assert night["run"]["dag_run_id"] in {e["source_run_id"] for e in events}
    catalog = json.loads((deployment["var_dir"] / "dbt_docs" / "catalog.json").read_text())
    (published,) = query(deployment["url"], "select relation from audit.publications where run_id = %s limit 1",
                         (night["run"]["dag_run_id"],))[0]
    schema, table = published.split(".")
    # the docs describe the relations dbt built (in the *_build schemas the night publishes from)
    assert any(node["metadata"]["schema"] in (schema, f"{schema}_build") and node["metadata"]["name"] == table
               for node in catalog["nodes"].values()), published
    # the demo's nights stay readable after the restart: the run and a task log, through the new API server
    run = api.request("GET", f"/dags/{airflow_local.DAG_ID}/dagRuns/{night['run']['dag_run_id']}").json()
    assert run["duration"] == pytest.approx(night["run"]["duration"], abs=1)
    tries = {ti["task_id"]: ti["try_number"] for ti in api.task_instances(run["dag_run_id"])}
    log_text = api.task_log(run["dag_run_id"], "publish", tries["publish"])
    assert f"for {END}" in log_text and "Could not read served logs" not in log_text


def test_the_missed_publish_deadline_is_sent_by_the_triggerer(night, webhook):
    # business date 2026-11-22 was due by 07:00 on the 23rd: its deadline alert fires in the
    # triggerer as soon as the run exists, through the Apprise provider's notifier
    # the deadline it missed, rendered by Airflow (UTC): 07:00 hospital time the morning after
    due = notify.deadline_for(END).astimezone(UTC).isoformat(sep=" ")
    deadline = datetime.now().timestamp() + 120
    while datetime.now().timestamp() < deadline:
        missed = [m for m in webhook["received"]
                  if m["title"] == "【未按时发布】hospital_ops_nightly" and due in m["message"]]
        if missed:
            break
        time.sleep(2)
    assert len(missed) == 1, [(m["title"], m["message"]) for m in webhook["received"]]
    assert "PUBLISH_DEADLINE" in missed[0]["message"] and airflow_local.DAG_ID in missed[0]["message"]
    late = [m for m in webhook["received"] if m["title"] == f"【夜间运行超时】hospital_ops_nightly {END}"]
    assert len(late) == 1
