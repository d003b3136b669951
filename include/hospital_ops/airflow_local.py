"""Run the project's DAGs with a project-local Airflow (AIRFLOW_HOME under var/).

`run_night` runs one night with `airflow dags test` (SQLite metadata; development and the tests);
`up`/`down` run the real deployment (scheduler, API server, DAG processor, triggerer) and
`trigger_night` runs a night through it."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote, urlsplit

from hospital_ops.config import settings

if TYPE_CHECKING:
    from collections.abc import Callable

    import requests


log = logging.getLogger(__name__)

DAG_ID = "hospital_ops_nightly"
DOCS_DAG_ID = "hospital_ops_docs_refresh"  # scheduled on the nightly publish's asset


def airflow_env(warehouse_url: str) -> dict[str, str]:
    cfg = settings()
    home = cfg.var_dir / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(cfg.project_root / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW_CONN_WAREHOUSE": warehouse_url,
        "HOSPITAL_OPS_VAR_DIR": str(cfg.var_dir),
        "HOSPITAL_OPS_INBOX": str(cfg.inbox_dir),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(cfg.project_root / "include"), env.get("PYTHONPATH")])),
        # `airflow dags test` of Airflow 3.3.2 fails at the end of a run with a deadline alert
        # (it looks the alerts up by their serialized form); the deployment sets it back on
        "HOSPITAL_OPS_DEADLINE_ALERT": "off",
    })
    alert_urls = env.get("HOSPITAL_OPS_ALERT_URLS")
    if alert_urls and "AIRFLOW_CONN_HOSPITAL_OPS_ALERTS" not in env:  # the embedded run's channels
        from hospital_ops.notify import connection_json, urls_from_text

        env["AIRFLOW_CONN_HOSPITAL_OPS_ALERTS"] = connection_json(urls_from_text(alert_urls))
    return env


def _airflow(*args: str, env: dict[str, str], log_file: Path | None = None) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).parent / "airflow"), *args]
    if log_file is None:
        return subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    with log_file.open("w") as handle:
        return subprocess.run(command, env=env, stdout=handle, stderr=subprocess.STDOUT, text=True, check=False)


def ensure_metadata_db(env: dict[str, str]) -> None:
    marker = Path(env["AIRFLOW_HOME"]) / ".migrated"
    if marker.exists():
        return
    result = _airflow("db", "migrate", env=env)
    if result.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    marker.touch()


@dataclass
class NightRun:
    business_date: date
    succeeded: bool
    failed_tasks: list[str]
    log_file: Path
    message: str = ""  # why a night did not succeed when no task says it (e.g. a date before the DAG's start)


_RUN_STATE = re.compile(r"DagRun Finished: .*?state=(\w+)")
_TASK_STARTED = re.compile(r"\[DAG TEST\] running task <TaskInstance: [\w.-]+?\.(\w+) .*?ti_id=([0-9a-f-]+)")
_TASK_FAILED = re.compile(r"new_state=failed .*?ti_id=([0-9a-f-]+)")


def run_night(business_date: date, warehouse_url: str) -> NightRun:
    """`airflow dags test` the nightly DAG for one business date (its logical date)."""
    env = airflow_env(warehouse_url)
    ensure_metadata_db(env)
    log_dir = settings().var_dir / "runs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / f"{DAG_ID}__{business_date.isoformat()}.log"
    result = _airflow("dags", "test", DAG_ID, business_date.isoformat(), env=env, log_file=log_file)
    text = log_file.read_text(errors="replace")
    states = _RUN_STATE.findall(text)
    task_of = {ti_id: task_id for task_id, ti_id in _TASK_STARTED.findall(text)}
    failed_tasks = sorted({task_of.get(ti_id, ti_id) for ti_id in _TASK_FAILED.findall(text)})
    succeeded = result.returncode == 0 and states[-1:] == ["success"]
    message = ""
    if succeeded and not task_of:
        # Airflow marks a run before the DAG's start_date "success" without scheduling one task: refuse it
        # rather than report a night that did nothing (the first night on or after the start date catches
        # up the whole history through the extract watermarks).
        succeeded = False
        message = (f"business date {business_date} was not run: no task of {DAG_ID} was scheduled for it "
                   f"(a date before the DAG's start_date); run a night on or after the start date, whose "
                   f"extract catches up on the history")
        log.error("%s (log: %s)", message, log_file)
    return NightRun(business_date, succeeded, failed_tasks, log_file, message)


# --------------------------------------------------------------------------- the local deployment
#
# `hospital-ops airflow up` runs Airflow as a deployment does: the API server (UI + REST API), the
# scheduler (LocalExecutor, which also serves the task logs), the DAG processor and the triggerer,
# each its own long-running process on the project's Airflow home, with the metadata database on the
# embedded PostgreSQL (its own database and role). `dags test` above stays the development path.

META_DATABASE = "airflow_meta"
META_ROLE = "airflow_meta"
ADMIN_USER = "admin"
HOSPITAL_TIMEZONE = "Asia/Shanghai"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


class AirflowDeploymentError(RuntimeError):
    pass


@dataclass(frozen=True)
class Deployment:
    """Where a running local deployment answers and how to log in."""

    url: str
    username: str
    password: str
    home: Path
    pids: dict[str, int]
    meta_database: str

    def token(self, timeout: float = 30.0) -> str:
        """A JWT for the REST API (/api/v2), from the simple auth manager's /auth/token."""
        import requests

        response = requests.post(f"{self.url}/auth/token", json={"username": self.username, "password": self.password},
                                 timeout=timeout)
        response.raise_for_status()
        return response.json()["access_token"]


def _secret(name: str, make: Callable[[], str]) -> str:
    """A secret created once under <var>/secrets/ (git-ignored, mode 600) and reused afterwards."""
    path = settings().var_dir / "secrets" / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


def _token() -> str:
    import secrets

    return secrets.token_urlsafe(32)


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def admin_password() -> str:
    """The UI/API login's password: written once to <var>/secrets/airflow_passwords.json, which is
    the simple auth manager's passwords file (so Airflow reads the same one)."""
    import json
    import secrets

    path = settings().var_dir / "secrets" / "airflow_passwords.json"
    passwords = json.loads(path.read_text()) if path.exists() else {}
    if ADMIN_USER not in passwords:
        passwords[ADMIN_USER] = secrets.token_urlsafe(12)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(passwords) + "\n")
        path.chmod(0o600)
    return passwords[ADMIN_USER]


def ensure_meta_database(admin_url: str, database: str = META_DATABASE, role: str = META_ROLE) -> str:
    """Airflow's metadata database on the warehouse server: its own role (with a password kept in
    <var>/secrets/) owning its own database; nothing of the warehouse is granted to it. Returns the
    SQLAlchemy URL Airflow connects with. Idempotent."""
    import psycopg2
    from psycopg2 import sql

    from hospital_ops.warehouse import with_database

    password = _secret(f"{role}.password", _token)
    conn = psycopg2.connect(admin_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("select 1 from pg_roles where rolname = %s", (role,))
        verb = "alter" if cur.fetchone() else "create"
        # a SCRAM verifier, never the clear password, in the SQL text (pg_stat_activity, the server log)
        verifier = psycopg2.extensions.encrypt_password(password, role, conn, "scram-sha-256")
        cur.execute(sql.SQL(verb + " role {} login password %s").format(sql.Identifier(role)), (verifier,))
        cur.execute("select 1 from pg_database where datname = %s", (database,))
        if cur.fetchone() is None:
            cur.execute(sql.SQL("create database {} owner {}").format(sql.Identifier(database), sql.Identifier(role)))
    conn.close()
    parts = urlsplit(with_database(admin_url, database))
    host = parts.hostname or "127.0.0.1"
    return f"postgresql+psycopg2://{role}:{quote(password, safe='')}@{host}:{parts.port or 5432}/{database}"


def _state_path(home: Path) -> Path:
    return home / "deployment.json"


def deployment_env(warehouse_url: str, meta_url: str, ports: dict[str, int],
                   extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment every component of the local deployment shares."""
    env = airflow_env(warehouse_url)
    home = Path(env["AIRFLOW_HOME"])
    base_url = f"http://127.0.0.1:{ports['api']}"
    env.update({
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": meta_url,
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",  # a 2-core machine: the night's extracts run side by side, no more
        "AIRFLOW__CORE__DEFAULT_TIMEZONE": HOSPITAL_TIMEZONE,
        "AIRFLOW__CORE__FERNET_KEY": _secret("airflow_fernet.key", _fernet_key),
        "AIRFLOW__CORE__AUTH_MANAGER":
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(settings().var_dir / "secrets" / "airflow_passwords.json"),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
        "AIRFLOW__API__BASE_URL": base_url,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(ports["api"]),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__SECRET_KEY": _secret("airflow_api_secret.key", _token),
        "AIRFLOW__API__INSTANCE_NAME": "hospital-ops 医院运营数据平台",
        "AIRFLOW__API_AUTH__JWT_SECRET": _secret("airflow_jwt_secret.key", _token),
        # task logs are files under AIRFLOW_HOME/logs; the scheduler's log server serves them (the
        # API server reads them from there), on ports of their own so several checkouts can run
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(ports["worker_logs"]),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(ports["trigger_logs"]),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "HOSPITAL_OPS_DEADLINE_ALERT": "on",
    })
    env.update(extra or {})
    return env


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_deployment_state(home: Path) -> dict:
    import json

    path = _state_path(home)
    return json.loads(path.read_text()) if path.exists() else {}


def _wait_healthy(url: str, pids: dict[str, int], logs: Path, timeout: float) -> None:
    """Wait for /api/v2/monitor/health to report the metadatabase, scheduler, triggerer and DAG
    processor healthy; name the component and its log if one dies first."""
    import requests

    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        for name, pid in pids.items():
            if not _pid_alive(pid):
                tail = (logs / f"{name}.log").read_text(errors="replace")[-3000:]
                raise AirflowDeploymentError(f"airflow {name} exited during start-up; its log "
                                             f"({logs / f'{name}.log'}) ends:\n{tail}")
        try:
            health = requests.get(f"{url}/api/v2/monitor/health", timeout=5).json()
            states = {part: (health.get(part) or {}).get("status")
                      for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")}
            if all(state == "healthy" for state in states.values()):
                return
            last = str(states)
        except (requests.RequestException, ValueError) as exc:
            last = str(exc)
        time.sleep(2)
    raise AirflowDeploymentError(f"Airflow did not become healthy within {timeout:.0f} s (last: {last}); "
                                 f"logs in {logs}")


def _wait_answering(url: str, pid: int, log_file: Path, timeout: float) -> None:
    """Wait until the API server answers HTTP at all (healthy or not); fail with its log if it exits."""
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            raise AirflowDeploymentError(f"airflow api-server exited during start-up; its log ({log_file}) ends:\n"
                                         f"{log_file.read_text(errors='replace')[-3000:]}")
        try:
            requests.get(f"{url}/api/v2/monitor/health", timeout=5)
            return
        except requests.RequestException:
            time.sleep(1)
    raise AirflowDeploymentError(f"the API server did not answer within {timeout:.0f} s; log in {log_file}")


def up(warehouse_url: str, admin_url: str, *, meta_database: str = META_DATABASE, meta_role: str = META_ROLE,
       extra_env: dict[str, str] | None = None, timeout: float = 240.0) -> Deployment:
    """Start (or find running) the local deployment: migrate the metadata database, then the API
    server, scheduler, DAG processor and triggerer. Idempotent."""
    import json

    home = settings().var_dir / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    state = _read_deployment_state(home)
    if state and all(_pid_alive(pid) for pid in state["pids"].values()):
        return Deployment(state["url"], ADMIN_USER, admin_password(), home, state["pids"], state["meta_database"])
    if state:
        down()
    # the role is the server's: a second deployment on the same server (a test's) takes a role of its own,
    # or setting its password would lock out the first one's new connections
    meta_url = ensure_meta_database(admin_url, meta_database, meta_role)
    from hospital_ops.warehouse import free_port

    ports = {"api": free_port(), "worker_logs": free_port(), "trigger_logs": free_port()}
    env = deployment_env(warehouse_url, meta_url, ports, extra_env)
    password = admin_password()
    logs = home / "logs" / "components"
    logs.mkdir(parents=True, exist_ok=True)
    migrated = home / f".migrated-{meta_database}"
    if not migrated.exists():
        result = _airflow("db", "migrate", env=env, log_file=logs / "db-migrate.log")
        if result.returncode != 0:
            tail = (logs / "db-migrate.log").read_text(errors="replace")[-3000:]
            raise AirflowDeploymentError(f"airflow db migrate failed:\n{tail}")
        migrated.touch()
    airflow_bin = str(Path(sys.executable).parent / "airflow")
    pids: dict[str, int] = {}
    for component in COMPONENTS:
        with (logs / f"{component}.log").open("a") as handle:
            process = subprocess.Popen([airflow_bin, component], env=env, stdout=handle, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
        pids[component] = process.pid
        if component == "api-server":
            # tasks report to the API server's execution API: a scheduler that starts first would run
            # queued tasks (e.g. the docs refresh's, from queued asset events) into "connection refused"
            _wait_answering(f"http://127.0.0.1:{ports['api']}", process.pid, logs / "api-server.log", timeout)
    url = f"http://127.0.0.1:{ports['api']}"
    state_file = _state_path(home)
    state_file.write_text(json.dumps({"url": url, "pids": pids, "ports": ports, "meta_database": meta_database,
                                      "warehouse_url": warehouse_url, "meta_url": meta_url,
                                      "extra_env": extra_env or {}}))
    state_file.chmod(0o600)  # it holds the metadata database's URL
    try:
        _wait_healthy(url, pids, logs, timeout)
    except AirflowDeploymentError:
        down()
        raise
    return Deployment(url, ADMIN_USER, password, home, pids, meta_database)


def down(timeout: float = 30.0) -> list[str]:
    """Stop the components this project started (by their recorded process groups); return their names."""
    import signal

    home = settings().var_dir / "airflow"
    state = _read_deployment_state(home)
    stopped = []
    for name, pid in state.get("pids", {}).items():
        if _pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            stopped.append(name)
    deadline = time.monotonic() + timeout
    for pid in state.get("pids", {}).values():
        while _pid_alive(pid) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    break
            time.sleep(0.5)
        if _pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    _state_path(home).unlink(missing_ok=True)
    return stopped


def deployment_cli(*args: str, timeout: float = 600.0) -> subprocess.CompletedProcess:
    """Run an `airflow` command against the running deployment (same metadata database and settings)."""
    state = _read_deployment_state(settings().var_dir / "airflow")
    if not state:
        raise AirflowDeploymentError("the local Airflow deployment is not running: `hospital-ops airflow up`")
    env = deployment_env(state["warehouse_url"], state["meta_url"], state["ports"], state["extra_env"])
    command = [str(Path(sys.executable).parent / "airflow"), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def deployment_status() -> dict:
    """Each component's process and Airflow's own health report."""
    import requests

    home = settings().var_dir / "airflow"
    state = _read_deployment_state(home)
    if not state:
        return {"running": False}
    result = {"url": state["url"], "meta_database": state["meta_database"],
              "processes": {name: ("running" if _pid_alive(pid) else "exited") + f" (pid {pid})"
                            for name, pid in state["pids"].items()}}
    try:
        result["health"] = requests.get(f"{state['url']}/api/v2/monitor/health", timeout=5).json()
    except requests.RequestException as exc:
        result["health"] = f"no answer: {exc}"
    result["running"] = all(_pid_alive(pid) for pid in state["pids"].values())
    return result


class AirflowApi:
    """The deployment's REST API (/api/v2), authenticated with a JWT from /auth/token."""

    def __init__(self, deployment: Deployment, timeout: float = 30.0) -> None:
        import requests

        self.base = f"{deployment.url}/api/v2"
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {deployment.token()}"

    def request(self, method: str, path: str, *, ok: tuple[int, ...] = (200,), retries: int = 5,
                **kwargs: Any) -> requests.Response:
        """One API call; a read that meets a server error (the API server answers 500 "Database
        error" when its metadata session loses a race under load) is tried again a few times, as
        Airflow's own task client does."""
        response = self.session.request(method, f"{self.base}{path}", timeout=self.timeout, **kwargs)
        while method == "GET" and response.status_code >= 500 and retries > 0:
            log.warning("%s %s: HTTP %s, trying again", method, path, response.status_code)
            time.sleep(2)
            retries -= 1
            response = self.session.request(method, f"{self.base}{path}", timeout=self.timeout, **kwargs)
        if response.status_code not in ok:
            raise AirflowDeploymentError(f"{method} {path}: HTTP {response.status_code} {response.text[:500]}")
        return response

    def wait_for_dag(self, dag_id: str = DAG_ID, timeout: float = 180.0) -> dict:
        """Wait until the DAG processor has parsed the DAG; raise with its import error if it failed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            response = self.request("GET", f"/dags/{dag_id}", ok=(200, 404))
            if response.status_code == 200:
                return response.json()
            errors = self.request("GET", "/importErrors").json().get("import_errors", [])
            if errors:
                raise AirflowDeploymentError(f"DAG {dag_id} failed to import: {errors[0].get('stack_trace', '')[-2000:]}")
            time.sleep(3)
        raise AirflowDeploymentError(f"DAG {dag_id} was not parsed within {timeout:.0f} s")

    def set_paused(self, paused: bool, dag_id: str = DAG_ID) -> None:
        self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": paused})

    def runs(self, dag_id: str = DAG_ID) -> list[dict]:
        return self.request("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100, "order_by": "run_after"}
                            ).json()["dag_runs"]

    def delete_runs(self, dag_id: str = DAG_ID) -> int:
        runs = self.runs(dag_id)
        for run in runs:
            if run["state"] in ("queued", "running"):  # left by a stopped deployment: Airflow deletes only finished runs
                self.request("PATCH", f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}", json={"state": "failed"})
            self.request("DELETE", f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}", ok=(204,))
        return len(runs)

    def trigger_night(self, business_date: date, *, dag_id: str = DAG_ID, replace: bool = False) -> str:
        """Queue the night of one business date as the schedule would have: logical date and data
        interval = that day's 02:00 → next day's 02:00 hospital time (the DAG's cron), run after now,
        so the run's start, end and duration are the real ones. `replace` deletes an earlier run of
        the same date first (the demo starts its warehouse from nothing)."""
        import pendulum

        start = pendulum.datetime(business_date.year, business_date.month, business_date.day, 2, tz=HOSPITAL_TIMEZONE)
        run_id = f"night__{business_date.isoformat()}"
        body = {"dag_run_id": run_id, "logical_date": start.isoformat(),
                "data_interval_start": start.isoformat(), "data_interval_end": start.add(days=1).isoformat(),
                "note": f"business date 业务日期 {business_date.isoformat()}"}
        response = self.request("POST", f"/dags/{dag_id}/dagRuns", json=body, ok=(200, 409))
        if response.status_code == 409:
            if not replace:
                raise AirflowDeploymentError(f"a run for {business_date} already exists: {response.text[:300]}")
            existing = self.request("GET", f"/dags/{dag_id}/dagRuns",
                                    params={"logical_date_gte": start.isoformat(),
                                            "logical_date_lte": start.isoformat()}).json()["dag_runs"]
            for run in existing:
                self.request("DELETE", f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}", ok=(204,))
            self.request("POST", f"/dags/{dag_id}/dagRuns", json=body)
        return run_id

    def wait_for_run(self, run_id: str, *, dag_id: str = DAG_ID, timeout: float = 1800.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}").json()
            if run["state"] in ("success", "failed"):
                return run
            time.sleep(3)
        raise AirflowDeploymentError(f"run {run_id} did not finish within {timeout:.0f} s")


def trigger_nights(deployment: Deployment, nights: list[date], *, replace: bool = True, fresh: bool = False,
                   progress: Callable[[str], None] | None = None) -> list[dict]:
    """Run nights one after another through the scheduler (the demo's `--scheduler`); stop at the
    first failed one. The docs refresh, scheduled on the publish's asset, is unpaused too (its runs
    are the scheduler's, see MANUAL_ONLY). `fresh` first deletes every earlier run of the project's DAGs (the
    demo starts its warehouse from nothing, so their history would describe another warehouse).
    Returns the finished nights as the REST API reports them."""
    api = AirflowApi(deployment)
    for dag_id in (DAG_ID, DOCS_DAG_ID):
        api.wait_for_dag(dag_id)
        if fresh:
            api.delete_runs(dag_id)
        api.set_paused(False, dag_id)
    finished = []
    for night in nights:
        run_id = api.trigger_night(night, replace=replace)
        run = api.wait_for_run(run_id)
        finished.append(run)
        if progress:
            progress(f"night {night}: {run['state']} in {run.get('duration') or 0:.0f} s "
                     f"(run {run_id}, {deployment.url}/dags/{DAG_ID}/runs/{run_id})")
        if run["state"] != "success":
            break
    return finished


def pause_and_stop(deployment: Deployment) -> None:
    """After the demo: pause the nightly DAG again (it starts paused; the demo's simulated sources
    are gone, so a scheduled night must wait for someone to unpause it) and stop the deployment. The
    runs, their durations and task logs stay in the metadata database and var/airflow/logs for the
    next `hospital-ops airflow up`."""
    AirflowApi(deployment).set_paused(True)
    down()


# the scheduler runs triggered runs and backfills only (the demo and the tests): no 02:00 night, and
# no asset-triggered run either (Airflow 3.3 ties both to the job schedule, and refuses a scheduled DAG
# that disallows scheduled runs); the publications' asset events stay queued for the docs refresh,
# which the next deployment with its schedule on (`hospital-ops airflow up`) runs
MANUAL_ONLY = {"AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"}


class BackfillRefused(ValueError):
    pass


def check_backfill_range(first: date, last: date, start_date: date) -> None:
    """Business dates before the DAG's start date are refused: the platform's first night already
    catches up on every drop folder before it, so there is no night of its own to run for them."""
    if last < first:
        raise BackfillRefused(f"backfill range is empty: {first} is after {last}")
    if first < start_date:
        raise BackfillRefused(
            f"backfill from {first} refused: the DAG {DAG_ID} starts on {start_date} (its start_date); "
            f"history before it is caught up by the first night. Backfill from {start_date} or later.")


FORCE_PUBLISH_CONF = "force_publish"  # a run's conf key: publish even an older night (recorded as forced)


def run_forces_publication(conf: dict | None) -> bool:
    """Whether a run was asked to publish even if older than the newest publication: its conf says
    {"force_publish": true} (`hospital-ops airflow backfill --force-publish`, or the UI's Trigger
    with config)."""
    value = (conf or {}).get(FORCE_PUBLISH_CONF, False)
    return value is True or str(value).strip().lower() in ("1", "true", "yes")


def older_backfill_reason(warehouse_url: str, business_date: date, *, run_type: str, forced: bool) -> str | None:
    """Why a backfill night is loaded but neither built nor published, or None to run it whole.

    A backfill rebuilds history: each night's extract and load land its rows (idempotent). A night
    older than the newest publication would put older figures over newer ones in BI and write
    backwards versions into the snapshots, so, unless forced, such a backfill night stops after its
    load (dbt_build_marts and what follows are skipped, the run succeeds) and the next night builds
    on the rows it loaded. A triggered or scheduled night of an older date still fails, as
    `run-night` does: someone asked for that night to publish."""
    from hospital_ops.pipeline import PublicationOutOfOrder, check_publication_order

    if run_type != "backfill" or forced:
        return None
    try:
        check_publication_order(warehouse_url=warehouse_url, business_date=business_date, force=False)
    except PublicationOutOfOrder as exc:
        newest = str(exc).split(": ", 1)[1].split(" is already published", 1)[0]
        return (f"backfill of {business_date}: its rows are loaded, but it is neither built nor published: "
                f"{newest} is already published and BI keeps it; the next night builds on these rows. To "
                f"publish it anyway: hospital-ops airflow backfill --from {business_date} --to {business_date} "
                f"--force-publish (recorded in audit.publications.forced)")
    return None


def backfill(first: date, last: date, *, dry_run: bool = False, force_publish: bool = False
             ) -> subprocess.CompletedProcess:
    """Airflow's own backfill (`airflow backfill create`) of the business dates first..last, both
    included, run by the scheduler one night at a time (the DAG's max_active_runs). Nights older than
    the newest publication are loaded only (`older_backfill_reason`), unless `force_publish`."""
    import pendulum

    state = _read_deployment_state(settings().var_dir / "airflow")
    if not state:
        raise AirflowDeploymentError("the local Airflow deployment is not running: `hospital-ops airflow up`")
    deployment = Deployment(state["url"], ADMIN_USER, admin_password(), settings().var_dir / "airflow",
                            state["pids"], state["meta_database"])
    details = AirflowApi(deployment).request("GET", f"/dags/{DAG_ID}/details").json()
    start_date = cast("pendulum.DateTime", pendulum.parse(details["start_date"])).in_timezone(HOSPITAL_TIMEZONE).date()
    check_backfill_range(first, last, start_date)
    # a night's logical date is its business date at 02:00 hospital time (the cron's interval start);
    # Airflow takes the runs whose logical date lies within [from, to]
    to = pendulum.datetime(last.year, last.month, last.day, 2, tz=HOSPITAL_TIMEZONE)
    args = ["backfill", "create", "--dag-id", DAG_ID, "--from-date", first.isoformat(),
            "--to-date", to.isoformat(), "--max-active-runs", "1"]
    if force_publish:
        import json

        args += ["--dag-run-conf", json.dumps({FORCE_PUBLISH_CONF: True})]
    return deployment_cli(*args, *(["--dry-run"] if dry_run else []))
