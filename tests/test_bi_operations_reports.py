"""The data team's and the auditors' dashboards count what the pipeline recorded, nothing else.

A throw-away database gets two nights of quality-gate results (recorded by the gate's own writer), the
batch verdicts the gate appends for them (one rejected batch then accepted by a person), quarantined rows,
a publication (pipeline.publish of a planted build table) and the run ledger's rows (hospital_ops.audit). dbt builds just the six rpt_
models and the stg_platform__ views they read; each figure must equal a count computed from the planted
rows. A new database, where the migrations created those tables and no night has run, builds the same
models, empty.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from contextlib import closing
from datetime import date
from decimal import Decimal
from pathlib import Path

import psycopg2
import pytest

from hospital_ops import audit, batches
from hospital_ops.dbt_runner import _record_freshness, run_dbt
from hospital_ops.load.loader import ensure_raw_schema
from hospital_ops.pipeline import publish
from hospital_ops.quality import gate
from hospital_ops.sources import SOURCES

MODELS = ("rpt_quality_gate_results", "rpt_quarantine_reasons", "rpt_batch_verdicts", "rpt_audit_publications",
          "rpt_audit_run_ledger", "rpt_source_freshness")
NIGHTS = (date(2026, 11, 20), date(2026, 11, 21))
CHECKPOINT = "his_nightly"


def _result(table: str, expectation: str, success: bool, unexpected: int) -> dict:
    return {"suite": table, "target_table": table, "expectation_type": expectation, "column_name": "patient_id",
            "kwargs": {"column": "patient_id"}, "success": success, "observed_value": None,
            "unexpected_count": unexpected, "element_count": 100}


# per night: the gate's expectation results (suite = the raw table validated)
GATE = {
    NIGHTS[0]: [_result("raw.his__patients", "expect_column_values_to_not_be_null", False, 7),
                _result("raw.his__patients", "expect_column_values_to_be_unique", True, 0),
                _result("raw.his__patients", "expect_column_values_to_match_regex", False, 2),
                _result("raw.his__beds", "expect_column_values_to_not_be_null", True, 0)],
    NIGHTS[1]: [_result("raw.his__charges", "expect_column_values_to_not_be_null", False, 3),
                _result("raw.his__charges", "expect_column_values_to_be_unique", True, 0),
                _result("raw.his__beds", "expect_column_values_to_not_be_null", True, 0),
                _result("raw.his__beds", "expect_column_values_to_be_unique", True, 0)],
}
# (batch date, source, entity, file, reason) → rows quarantined
QUARANTINE = {
    (NIGHTS[0], "his", "patients", "his_patients.csv", "birth_date 'x' is not a date"): 4,
    (NIGHTS[0], "his", "patients", "his_patients_2.csv", "birth_date 'x' is not a date"): 2,
    (NIGHTS[0], "survey", "answers", "survey_answers.csv", "row has 3 cells, header has 9"): 1,
    (NIGHTS[1], "his", "charges", "his_charges.csv", "amount_cny '-' is not a number"): 5,
}
# per night: dbt source freshness results as check_freshness records them (source, table, status, age in s)
FRESHNESS = {
    NIGHTS[0]: [("his", "charges", "pass", 5400.0), ("vendor", "deliveries", "pass", 7200.0)],
    NIGHTS[1]: [("his", "charges", "pass", 3600.0), ("vendor", "deliveries", "warn", 190800.0),
                ("survey", "answers", "error", 604800.0)],
}
PUBLISHED_ROWS = 6
ACCEPTED = ("his", "patients", NIGHTS[0])  # rejected the first night, accepted by a person


def _run_id(night: date) -> str:
    return f"planted__{night.isoformat()}"


def _build(url: str, tmp_path: Path) -> dict[str, list[dict]]:
    run_dbt(["build", "--select", *(f"+{model}" for model in MODELS)], warehouse_url=url, business_date=NIGHTS[-1], label="reporting",
            target_path=tmp_path / "target")
    rows = {}
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        for model in MODELS:
            cur.execute(f"select * from marts_build.{model}")
            names = [d[0] for d in cur.description]
            rows[model] = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    return rows


@pytest.fixture(scope="module")
def planted(fresh_database, tmp_path_factory) -> tuple[str, dict[str, list[dict]], list[dict]]:
    url = fresh_database("bi_operations")
    with closing(psycopg2.connect(url)) as conn:
        for source in SOURCES.values():
            ensure_raw_schema(conn, source)
        for night, results in GATE.items():
            gate._record(conn, results, run_id=_run_id(night), business_date=night, checkpoint=CHECKPOINT)
            batches.record_gate_verdicts(conn, results, {r["target_table"] for r in results},
                                         run_id=_run_id(night), business_date=night)
        assert batches.accept(conn, ACCEPTED[0], ACCEPTED[2], by="data team", note="planted") == [ACCEPTED[1]]
        with conn.cursor() as cur:
            for (night, source, entity, source_file, reason), count in QUARANTINE.items():
                for row_number in range(1, count + 1):
                    cur.execute("insert into raw._quarantine (run_id, source, entity, batch_date, source_file, "
                                "row_number, reason) values (%s, %s, %s, %s, %s, %s, %s)",
                                (_run_id(night), source, entity, night, source_file, row_number, reason))
            cur.execute("create schema if not exists marts_build")
            cur.execute(f"create table marts_build.planted_publication as select generate_series(1, {PUBLISHED_ROWS}) as n")
        conn.commit()
    for night, checks in FRESHNESS.items():
        _record_freshness(url, night, [
            {"source": source, "table_name": table, "status": status, "max_loaded_at": None, "checked_at": None,
             "age_seconds": age, "warn_after": "24 hour", "error_after": "72 hour",
             "message": None} for source, table, status, age in checks])
    night = NIGHTS[-1]
    payloads = [audit.record_started(url, run_id=_run_id(night), business_date=night)]
    publish(warehouse_url=url, business_date=night, run_id=_run_id(night))
    payloads.append(audit.record_run(url, run_id=_run_id(night), business_date=night))
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.execute("drop table marts_build.planted_publication")  # only the rpt_ models are built below
        conn.commit()
    return url, _build(url, tmp_path_factory.mktemp("dbt")), payloads


def test_gate_results_count_the_expectations_evaluated_and_failed(planted) -> None:
    _, rows, _ = planted
    expected = {}
    for night, results in GATE.items():
        for suite in {r["suite"] for r in results}:
            mine = [r for r in results if r["suite"] == suite]
            expected[(night, suite)] = (len(mine), sum(not r["success"] for r in mine),
                                        sum(r["unexpected_count"] for r in mine if not r["success"]))
    got = {(r["business_date"], r["suite"]): (r["expectations_evaluated"], r["expectations_failed"],
                                              r["unexpected_rows"]) for r in rows["rpt_quality_gate_results"]}
    assert got == expected
    assert any(failed for _, failed, _ in got.values()) and any(not failed for _, failed, _ in got.values())
    for row in rows["rpt_quality_gate_results"]:
        assert row["suite_passed"] == (row["expectations_failed"] == 0)
        assert row["suite_result"] == ("通过 Passed" if row["suite_passed"] else "未通过 Failed")


def test_quarantine_counts_rows_and_files_by_source_and_reason(planted) -> None:
    _, rows, _ = planted
    counted: Counter = Counter()
    files: dict[tuple, set] = defaultdict(set)
    for (night, source, entity, source_file, reason), count in QUARANTINE.items():
        counted[(night, source, entity, reason)] += count
        files[(night, source, entity, reason)].add(source_file)
    got = {(r["batch_date"], r["source"], r["entity"], r["reason"]): (r["rows_quarantined"], r["files"])
           for r in rows["rpt_quarantine_reasons"]}
    assert got == {key: (counted[key], len(files[key])) for key in counted}
    names = {r["source"]: r["source_system_name"] for r in rows["rpt_quarantine_reasons"]}
    assert names == {"his": "医院信息系统 HIS", "survey": "满意度调查 Satisfaction surveys"}


def test_batch_verdicts_are_the_gates_and_the_held_ones_are_the_rejected_not_accepted(planted) -> None:
    _, rows, _ = planted
    rejected: dict[tuple, set] = {}
    validated = set()
    for night, results in GATE.items():
        for r in results:
            source, entity = r["target_table"].removeprefix("raw.").split("__")
            validated.add((source, entity, night))
            if not r["success"]:
                rejected.setdefault((source, entity, night), set()).add(f"{r['expectation_type']} on {r['column_name']}")
    expected = {(*batch, "rejected" if batch in rejected else "passed") for batch in validated} | {(*ACCEPTED, "accepted")}
    got = rows["rpt_batch_verdicts"]
    assert {(r["source"], r["entity"], r["batch_date"], r["verdict"]) for r in got} == expected
    assert len(got) == len(expected)
    for r in got:
        key = (r["source"], r["entity"], r["batch_date"])
        if r["verdict"] == "rejected":
            assert set(r["reasons"].split("; ")) == rejected[key]
        # held: rejected and not accepted since; the accepted batch and the passed ones are not
        assert r["is_held"] == (key in rejected and key != ACCEPTED), r
        assert (r["days_held"] is not None) == r["is_held"]
    assert any(r["is_held"] for r in got) and any(r["verdict"] == "rejected" and not r["is_held"] for r in got)
    names = {r["verdict"]: r["verdict_name"] for r in got}
    assert names == {"passed": "通过 Passed", "rejected": "驳回 Rejected", "accepted": "人工接受 Accepted"}


def test_publications_and_the_run_ledger_are_the_audit_rows(planted) -> None:
    url, rows, payloads = planted
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.execute("select run_id, relation, row_count from audit.publications")
        publications = set(cur.fetchall())
        cur.execute("select seq, status, row_hash from audit.run_ledger")
        ledger = set(cur.fetchall())
    assert publications == {(_run_id(NIGHTS[-1]), "marts.planted_publication", PUBLISHED_ROWS)}
    assert {(r["run_id"], r["relation"], r["row_count"]) for r in rows["rpt_audit_publications"]} == publications
    assert not any(r["is_forced"] for r in rows["rpt_audit_publications"])
    # the build ran after both ledger rows were appended, so both are in
    assert {(r["seq"], r["status"], r["row_hash"]) for r in rows["rpt_audit_run_ledger"]} == ledger
    assert sorted(status for _, status, _ in ledger) == sorted(p["status"] for p in payloads)
    closing_row = next(r for r in rows["rpt_audit_run_ledger"] if r["status"] == "published")
    assert closing_row["status_name"] == "已发布 Published"
    assert closing_row["gate_failures"] == payloads[-1]["quality_gate"]["failed"]
    assert closing_row["input_files"] == len(payloads[-1]["inputs"])
    assert closing_row["rows_read"] == sum(i["rows_read"] for i in payloads[-1]["inputs"])
    # typed as the auditors' view audit.runs gives the same rows (it exists once a night has closed)
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.execute("select seq, run_id, business_date, status, code_version, gate_failures, input_files, rows_read, "
                    "row_hash from audit.runs")
        runs = set(cur.fetchall())
    assert {(r["seq"], r["run_id"], r["business_date"], r["status"], r["code_version"], r["gate_failures"],
             r["input_files"], r["rows_read"], r["row_hash"]) for r in rows["rpt_audit_run_ledger"]} == runs


def test_source_freshness_shows_every_check_and_the_stale_ones(planted) -> None:
    _, rows, _ = planted
    expected = {(night, source, table): (status, Decimal(str(age)) / 3600)
                for night, checks in FRESHNESS.items() for source, table, status, age in checks}
    got = {(r["business_date"], r["source"], r["table_name"]): (r["status"], r["age_hours"])
           for r in rows["rpt_source_freshness"]}
    assert got == expected
    stale = {key for key, (status, _) in expected.items() if status != "pass"}
    assert stale and stale != set(expected)  # a check that fires and one that does not
    assert {(r["business_date"], r["source"], r["table_name"]) for r in rows["rpt_source_freshness"]
            if r["is_stale"]} == stale
    names = {r["status"]: r["freshness_status"] for r in rows["rpt_source_freshness"]}
    assert names == {"pass": "正常 Fresh", "warn": "偏旧（警告） Stale, warning",
                     "error": "过期（未重建下游） Stale, dependants not rebuilt"}
    assert {r["source"]: r["source_system_name"] for r in rows["rpt_source_freshness"]}["vendor"] == "第三方服务商 Vendors"


def test_a_warehouse_the_pipeline_has_not_filled_yet_builds_them_empty(fresh_database, tmp_path: Path) -> None:
    url = fresh_database("bi_operations_new")
    tables = ("dq.validation_results", "raw._quarantine", "raw._batch_verdicts", "raw._held_batches",
              "audit.publications", "audit.run_ledger", "dq.source_freshness")
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        # the migrations made every table the views read, before any night; audit.runs comes with a night
        cur.execute("select " + ", ".join(f"to_regclass('{t}')::text" for t in tables) + ", to_regclass('audit.runs')")
        assert cur.fetchone() == (*tables, None)
        cur.execute(" union all ".join(f"select count(*) from {t}" for t in tables))
        assert {row[0] for row in cur.fetchall()} == {0}
    rows = _build(url, tmp_path)
    assert {model: len(found) for model, found in rows.items()} == dict.fromkeys(MODELS, 0)
