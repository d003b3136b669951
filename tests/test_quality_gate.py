"""The quality gate against a real PostgreSQL (the embedded warehouse, in a throwaway database).

Tables are created from what the suites touch (types from the source spec for raw tables), so the
tests follow the suites in expectations/ instead of restating them.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import psycopg2
import pytest

from gate_tables import (
    create_tables,
    expected_result_count,
    insert,
    raw_types,
    suite_columns,
)
from hospital_ops.config import settings
from hospital_ops.quality import (
    QualityGateFailed,
    load_checkpoint,
    load_suite,
    run_quality_gate,
)
from hospital_ops.quality.gate import _build_suite

CHECKPOINT = "nightly_sources"
TONIGHT = date(2024, 5, 2)
MART = "marts_build.fct_vendor_month_kpis"

RATES = ("lab_accuracy", "report_timeliness", "report_delay_rate", "delivery_delay_rate", "cold_chain_compliance",
         "staff_turnover_rate", "staff_certified_share", "staff_trained_share", "spot_check_pass_rate",
         "satisfaction_rate")
COUNTS = ("lab_qc_runs", "reports_received", "deliveries", "cold_chain_readings", "cold_chain_excursions",
          "complaints", "service_volume")
MART_TYPES = {"vendor_month_id": "text", "vendor_id": "text", "month": "date", "service_type": "text",
              "risk_tier": "text", "is_closed_month": "boolean", "price_deviation_max": "numeric",
              **dict.fromkeys(RATES, "numeric"), **dict.fromkeys(COUNTS, "bigint")}


# ------------------------------------------------------------------------------------ helpers


def _column_types(table: str) -> dict[str, str]:
    if table == MART:
        return MART_TYPES
    if table.startswith("raw."):
        return raw_types(table)
    # the HIS and insurance marts are checked column by column in test_quality_gate_his.py: here they
    # only need to exist (empty, so their suites pass) because one gate run validates every table
    suite = next(load_suite(v.suite) for v in load_checkpoint(CHECKPOINT).validations if v.table == table)
    return {c: "date" if c == "month" else "text" if c.endswith("_id") or c == "drg_code" else "numeric"
            for c in suite_columns(suite)}


def _insert(conn, table: str, batch_date: date = TONIGHT, source_file: str | None = None, **values) -> None:
    insert(conn, table, batch_date, source_file, **values)


def _execute(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            rows = cur.fetchall() if cur.description else []
        conn.commit()
        return rows
    finally:
        conn.close()


def _dq_rows(url: str, run_id: str) -> list[tuple]:
    return _execute(url, "select suite, target_table, expectation_type, column_name, success, observed_value, "
                         "unexpected_count from dq.validation_results where run_id = %s", (run_id,))


# ----------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def db_url(fresh_database):
    url = fresh_database("gate_test")
    _create_tables(url)
    _insert_good_night(url)
    return url


def _create_tables(url: str) -> None:
    create_tables(url, CHECKPOINT, lambda table, columns: _column_types(table))


def _insert_good_night(url: str) -> None:
    conn = psycopg2.connect(url)
    # the registry export arrived twice tonight (re-sent with a change): a vendor in two files is fine
    _insert(conn, "raw.vendor__registry", vendor_id="V001", source_file="vendor/2024-05-01/vendor_registry.csv")
    _insert(conn, "raw.vendor__registry", vendor_id="V002", source_file="vendor/2024-05-01/vendor_registry.csv")
    _insert(conn, "raw.vendor__registry", vendor_id="V001", source_file="vendor/2024-05-02/vendor_registry.csv")
    _insert(conn, "raw.vendor__contracts", contract_id="C1", start_date=date(2024, 1, 1), end_date=date(2026, 12, 31))
    _insert(conn, "raw.vendor__qualifications", certificate_no="Q1", issued_on=date(2023, 1, 1),
            expires_on=date(2028, 1, 1))
    _insert(conn, "raw.vendor__service_reports", vendor_id="V001", period=date(2024, 4, 1), revision=1,
            submitted_on=date(2024, 5, 2), patients_surveyed=50, patients_satisfied=45)
    _insert(conn, "raw.vendor__service_reports", vendor_id="V002", period=date(2024, 4, 1), revision=1,
            submitted_on=date(2024, 5, 1), patients_surveyed=None, patients_satisfied=None)
    _insert(conn, "raw.vendor__inspections", inspection_id="I1", items_checked=10, items_passed=10)
    _insert(conn, "raw.vendor__inspections", inspection_id="I2", items_checked=8, items_passed=5)
    _insert(conn, "raw.vendor__report_turnaround", report_id="R1", received_at="2024-05-01 08:00",
            issued_at="2024-05-01 20:00")
    _insert(conn, "raw.vendor__report_turnaround", report_id="R2", received_at="2024-05-02 08:00", issued_at=None)
    _insert(conn, "raw.vendor__cold_chain_readings", device_id="D1", reading_at="2024-05-02 10:00")
    _insert(conn, "raw.vendor__cold_chain_readings", device_id="D1", reading_at="2024-05-02 10:20")
    _insert(conn, "raw.vendor__staff_roster", staff_id="S1", joined_on=date(2022, 3, 1), left_on=None)
    _insert(conn, "raw.vendor__staff_roster", staff_id="S2", joined_on=date(2022, 3, 1), left_on=date(2024, 4, 30))
    # the other raw tables have no rows tonight: an empty batch passes
    base = dict.fromkeys(RATES, 0.9) | dict.fromkeys(COUNTS, 10)
    _insert(conn, MART, vendor_month_id="V001-2024-04", vendor_id="V001", month=date(2024, 4, 1),
            service_type="lab_testing", risk_tier="high", price_deviation_max=-0.2,
            **base | {"cold_chain_excursions": 2, "report_delay_rate": 0, "satisfaction_rate": 1})
    _insert(conn, MART, vendor_month_id="V002-2024-04", vendor_id="V002", month=date(2024, 4, 1),
            service_type="cleaning", risk_tier="low", price_deviation_max=None,
            **dict.fromkeys(RATES) | dict.fromkeys(COUNTS, 0))
    conn.close()


# -------------------------------------------------------------------------------------- tests


def test_suites_are_valid_and_touch_only_real_columns():
    spec = load_checkpoint(CHECKPOINT)
    suite_files = sorted(p.stem for p in (settings().expectations_dir / "suites").glob("*.json"))
    assert sorted({v.suite for v in spec.validations}) == suite_files  # no orphan suite, none missing
    for v in spec.validations:
        document = load_suite(v.suite)
        suite = _build_suite(document)  # raises if GX rejected any expectation
        assert len(suite.expectations) == len(document["expectations"])
        unknown = set(suite_columns(document)) - set(_column_types(v.table))
        assert not unknown, f"{v.suite} refers to columns {v.table} does not have: {unknown}"
        if v.table.startswith("raw."):
            assert v.row_filter == "_batch_date = :business_date"


@pytest.mark.parametrize("former_names", ["vendor_nightly", ["x", ""], ["checkpoint_x"]])
def test_former_names_must_be_a_list_of_other_names(tmp_path, former_names):
    import json

    from hospital_ops.quality.gate import QualityGateError

    (tmp_path / "checkpoints").mkdir()
    definition = {"name": "checkpoint_x", "validations": [{"suite": "s", "table": "raw.t"}]}
    path = tmp_path / "checkpoints" / "checkpoint_x.json"
    path.write_text(json.dumps(definition), encoding="utf-8")
    assert load_checkpoint("checkpoint_x", tmp_path).former_names == ()
    path.write_text(json.dumps(definition | {"former_names": ["checkpoint_w"]}), encoding="utf-8")
    assert load_checkpoint("checkpoint_x", tmp_path).former_names == ("checkpoint_w",)
    path.write_text(json.dumps(definition | {"former_names": former_names}), encoding="utf-8")
    with pytest.raises(QualityGateError, match="former_names"):
        load_checkpoint("checkpoint_x", tmp_path)


def test_good_night_passes_and_records_every_expectation(db_url, tmp_path):
    result = run_quality_gate(db_url, run_id="good_night", business_date=TONIGHT, data_docs_dir=tmp_path)

    assert result.success, result.failure_report()
    expected = expected_result_count(CHECKPOINT)
    assert len(result.results) == expected
    rows = _dq_rows(db_url, "good_night")
    assert len(rows) == expected
    assert all(row[4] for row in rows)
    # the pair check really looked at tonight's rows (two service reports, one without a survey)
    pair = next(r for r in result.results if r["suite"] == "raw.vendor__service_reports"
                and r["column_name"] == "patients_surveyed, patients_satisfied")
    assert pair["element_count"] == 2 and pair["unexpected_count"] == 0
    assert (tmp_path / "index.html").is_file()
    assert result.data_docs_index == tmp_path / "index.html"
    # one page per validated table and one per suite, all linked from the index
    validated = {r["suite"] for r in result.results}
    index = (tmp_path / "index.html").read_text()
    for kind in ("validations", "expectations"):
        pages = [p.relative_to(tmp_path / kind).as_posix() for p in (tmp_path / kind).rglob("*.html")]
        for suite in validated:
            assert any(page.startswith(suite.replace(".", "/", 1)) for page in pages), (kind, suite)
    assert all(suite in index for suite in validated)


def test_bad_row_in_tonights_batch_fails_naming_suite_and_expectation(db_url, tmp_path):
    night = date(2024, 6, 1)
    conn = psycopg2.connect(db_url)
    _insert(conn, "raw.vendor__service_reports", batch_date=night, vendor_id="V001", period=date(2024, 5, 1),
            revision=1, submitted_on=night, patients_surveyed=40, patients_satisfied=41)
    conn.close()

    with pytest.raises(QualityGateFailed) as failed:
        run_quality_gate(db_url, run_id="bad_night", business_date=night, data_docs_dir=tmp_path)

    message = str(failed.value)
    assert "raw.vendor__service_reports" in message
    assert "expect_column_pair_values_a_to_be_greater_than_b" in message
    assert "patients_surveyed, patients_satisfied" in message
    assert "[40, 41]" in message  # the observed offending pair
    assert failed.value.result.success is False
    assert len(failed.value.result.failures) == 1
    failing = [row for row in _dq_rows(db_url, "bad_night") if not row[4]]
    assert [(r[0], r[2], r[3], r[6]) for r in failing] == [
        ("raw.vendor__service_reports", "expect_column_pair_values_a_to_be_greater_than_b",
         "patients_surveyed, patients_satisfied", 1)]

    # the next night validates only its own batch: yesterday's bad row does not fail it
    result = run_quality_gate(db_url, run_id="night_after", business_date=night + timedelta(days=1),
                              data_docs_dir=tmp_path)
    assert result.success, result.failure_report()


def test_rerun_of_a_run_id_replaces_its_rows(db_url, tmp_path):
    night = date(2024, 7, 1)
    conn = psycopg2.connect(db_url)
    _insert(conn, "raw.vendor__inspections", batch_date=night, inspection_id="I9", items_checked=3, items_passed=4)
    conn.close()

    first = run_quality_gate(db_url, run_id="rerun", business_date=night, data_docs_dir=tmp_path,
                             raise_on_failure=False)
    assert not first.success
    assert [r["suite"] for r in first.failures] == ["raw.vendor__inspections"]
    assert sum(not row[4] for row in _dq_rows(db_url, "rerun")) == 1

    _execute(db_url, "delete from raw.vendor__inspections where _batch_date = %s", (night,))  # the night reloaded
    second = run_quality_gate(db_url, run_id="rerun", business_date=night, data_docs_dir=tmp_path)
    assert second.success
    rows = _dq_rows(db_url, "rerun")
    assert len(rows) == expected_result_count(CHECKPOINT)
    assert all(row[4] for row in rows)


def test_a_rerun_replaces_the_rows_a_run_recorded_under_the_checkpoint_s_former_name(db_url, tmp_path):
    """A night gated before the checkpoint was renamed, rerun after: its rows under the former name
    are the same checkpoint's and are replaced; another checkpoint's rows of that run stay."""
    spec = load_checkpoint(CHECKPOINT)
    assert spec.former_names, "the checkpoint names none: nothing to carry over"
    former = spec.former_names[0]
    night = date(2024, 7, 2)
    first = run_quality_gate(db_url, run_id="renamed", business_date=night, data_docs_dir=tmp_path)
    assert first.success
    recorded = len(_dq_rows(db_url, "renamed"))
    assert recorded == expected_result_count(CHECKPOINT)
    _execute(db_url, "update dq.validation_results set checkpoint = %s where run_id = 'renamed'", (former,))
    _execute(db_url, "insert into dq.validation_results (run_id, business_date, checkpoint, suite, target_table, "
                     "expectation_type, kwargs, success) values ('renamed', %s, 'another_checkpoint', 's', 'raw.t', "
                     "'e', '{}', true)", (night,))

    second = run_quality_gate(db_url, run_id="renamed", business_date=night, data_docs_dir=tmp_path)
    assert second.success
    by_checkpoint = dict(_execute(db_url, "select checkpoint, count(*) from dq.validation_results "
                                          "where run_id = 'renamed' group by checkpoint"))
    assert by_checkpoint == {CHECKPOINT: recorded, "another_checkpoint": 1}


def test_duplicate_business_key_within_a_file_fails(db_url, tmp_path):
    night = date(2024, 8, 1)
    conn = psycopg2.connect(db_url)
    for _ in range(2):  # same delivery twice in one file, different content (else the loader quarantines it)
        _insert(conn, "raw.vendor__deliveries", batch_date=night, delivery_id="DL1")
    conn.close()

    result = run_quality_gate(db_url, run_id="dup_key", business_date=night, data_docs_dir=tmp_path,
                              raise_on_failure=False)
    assert [(r["suite"], r["expectation_type"], r["column_name"]) for r in result.failures] == [
        ("raw.vendor__deliveries", "expect_compound_columns_to_be_unique", "_source_file, delivery_id")]


def test_mart_out_of_range_rate_fails(db_url, tmp_path):
    conn = psycopg2.connect(db_url)
    _insert(conn, MART, vendor_month_id="V003-2024-04", vendor_id="V003", month=date(2024, 4, 1),
            risk_tier="critical", lab_accuracy=1.5)
    conn.close()
    try:
        with pytest.raises(QualityGateFailed) as failed:
            run_quality_gate(db_url, run_id="bad_mart", business_date=TONIGHT, data_docs_dir=tmp_path)
    finally:
        _execute(db_url, f"delete from {MART} where vendor_month_id = 'V003-2024-04'")
    failures = {(r["suite"], r["column_name"]) for r in failed.value.result.failures}
    assert failures == {("marts.fct_vendor_month_kpis", "lab_accuracy"), ("marts.fct_vendor_month_kpis", "risk_tier")}
    assert "column=lab_accuracy" in str(failed.value)


def test_missing_mart_table_fails_clearly(db_url, tmp_path):
    _execute(db_url, f"alter table {MART} rename to fct_vendor_month_kpis_away")
    try:
        with pytest.raises(QualityGateFailed) as failed:
            run_quality_gate(db_url, run_id="no_mart", business_date=TONIGHT, data_docs_dir=tmp_path)
    finally:
        _execute(db_url, "alter table marts_build.fct_vendor_month_kpis_away rename to fct_vendor_month_kpis")
    message = str(failed.value)
    assert f"target table {MART} does not exist" in message
    result = failed.value.result
    assert [(r["suite"], r["expectation_type"]) for r in result.failures] == [
        ("marts.fct_vendor_month_kpis", "table_exists")]
    # the raw suites still ran and passed
    assert sum(r["success"] for r in result.results) == expected_result_count(CHECKPOINT) - len(
        load_suite("marts.fct_vendor_month_kpis")["expectations"])
    assert ("marts.fct_vendor_month_kpis", "table_exists", False) in {
        (r[0], r[2], r[4]) for r in _dq_rows(db_url, "no_mart")}


def test_nothing_is_written_into_the_repository(db_url, tmp_path):
    before = sorted(p.relative_to(settings().expectations_dir) for p in settings().expectations_dir.rglob("*"))
    run_quality_gate(db_url, run_id="clean_repo", business_date=TONIGHT, data_docs_dir=tmp_path)
    after = sorted(p.relative_to(settings().expectations_dir) for p in settings().expectations_dir.rglob("*"))
    assert before == after
    assert not Path(settings().project_root, "gx").exists()
