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


def up(warehouse_url: str, admin_url: str, *, meta_database: str = META_DATABASE,
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
    meta_url = ensure_meta_database(admin_url, meta_database)
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

    def request(self, method: str, path: str, *, ok: tuple[int, ...] = (200,), **kwargs: Any) -> requests.Response:
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

    def task_instances(self, run_id: str, *, dag_id: str = DAG_ID) -> list[dict]:
        return self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                            params={"limit": 100}).json()["task_instances"]

    def task_log(self, run_id: str, task_id: str, try_number: int = 1, *, dag_id: str = DAG_ID) -> str:
        """A task's log as the UI shows it (one event per line)."""
        response = self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
                                params={"full_content": "true"}, headers={"Accept": "application/json"})
        content = response.json()["content"]
        return "\n".join(line if isinstance(line, str) else str(line.get("event", line)) for line in content)


def trigger_nights(deployment: Deployment, nights: list[date], *, replace: bool = True,
                   progress: Callable[[str], None] | None = None) -> list[dict]:
    """Run nights one after another through the scheduler (the demo's `--scheduler`); stop at the
    first failed one. Returns the finished runs as the REST API reports them."""
    api = AirflowApi(deployment)
    api.wait_for_dag()
    api.set_paused(False)
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


# the scheduler runs triggered runs only (the demo and the tests): no 02:00 run of its own
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


def backfill(first: date, last: date, *, dry_run: bool = False) -> subprocess.CompletedProcess:
    """Airflow's own backfill (`airflow backfill create`) of the business dates first..last, both
    included, run by the scheduler one night at a time (the DAG's max_active_runs)."""
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
    return deployment_cli(*args, *(["--dry-run"] if dry_run else []))
