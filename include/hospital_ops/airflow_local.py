"""Run the project's DAGs with a project-local Airflow (AIRFLOW_HOME under var/, SQLite metadata)."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from hospital_ops.config import settings

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
    })
    return env


def _airflow(*args: str, env: dict[str, str], log_file: Path | None = None) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).parent / "airflow"), *args]
    if log_file is None:
        return subprocess.run(command, env=env, capture_output=True, text=True)
    with log_file.open("w") as handle:
        return subprocess.run(command, env=env, stdout=handle, stderr=subprocess.STDOUT, text=True)


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
