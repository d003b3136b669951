"""A breaking change to a contracted mart fails the dbt build (and so CI and the night), before any
dashboard sees it.

A copy of the dbt project is built, empty (`dbt run --empty`: the contract check needs only the
columns' names and types), into a throw-away database: first as it is, which must pass, then with one
mart's column changed in type and another's renamed, each of which must fail with dbt's contract error
naming the column.
"""

from __future__ import annotations

import shutil
from contextlib import closing
from pathlib import Path

import psycopg2
import pytest

from hospital_ops.config import settings
from hospital_ops.dbt_runner import warehouse_env
from hospital_ops.load.loader import ensure_raw_schema
from hospital_ops.sources import SOURCES

# a contracted mart a dashboard reads, and the subgraph that builds it
MART = "fct_drg_group_month"
SELECTION = f"+{MART}"


@pytest.fixture(scope="module")
def empty_warehouse(fresh_database) -> str:
    url = fresh_database("contracts")
    with closing(psycopg2.connect(url)) as conn:
        for source in SOURCES.values():
            ensure_raw_schema(conn, source)
    return url


def _project_copy(tmp_path: Path) -> Path:
    project = tmp_path / "dbt_project"
    shutil.copytree(settings().dbt_project_dir, project, ignore=shutil.ignore_patterns("target", "logs"))
    return project


def _run_empty(project: Path, url: str, monkeypatch) -> tuple[bool, list]:
    from dbt.cli.main import dbtRunner

    for key, value in warehouse_env(url).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    outcome = dbtRunner().invoke([
        "run", "--empty", "--select", SELECTION,
        "--project-dir", str(project), "--profiles-dir", str(project),
        "--target-path", str(project / "target"), "--log-path", str(project / "logs"),
        "--vars", '{"business_date": "2026-11-22"}',
    ])
    results = list(outcome.result.results) if outcome.result is not None else []
    return outcome.success, results


def _edit(project: Path, old: str, new: str) -> None:
    path = project / "models" / "marts" / "insurance" / f"{MART}.sql"
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} is not in {path.name} once: update this test with the model"
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_the_unchanged_project_meets_its_contracts(empty_warehouse: str, tmp_path: Path, monkeypatch) -> None:
    success, results = _run_empty(_project_copy(tmp_path), empty_warehouse, monkeypatch)
    assert success, [(r.node.name, r.message) for r in results if str(r.status) != "success"]
    assert MART in {r.node.name for r in results}


@pytest.mark.parametrize(("old", "new", "column"), [
    ("count(*) as cases,", "count(*)::integer as cases,", "cases"),        # bigint → integer
    ("sum(profit_cny) as profit_cny", "sum(profit_cny) as profit", "profit_cny"),  # renamed
])
def test_a_breaking_change_fails_the_build(empty_warehouse: str, tmp_path: Path, monkeypatch,
                                           old: str, new: str, column: str) -> None:
    project = _project_copy(tmp_path)
    _edit(project, old, new)
    success, results = _run_empty(project, empty_warehouse, monkeypatch)
    assert not success
    failed = {r.node.name: r.message for r in results if str(r.status) == "error"}
    assert set(failed) == {MART}, failed
    assert "contract" in failed[MART] and column in failed[MART], failed[MART]
