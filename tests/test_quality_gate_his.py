"""The quality gate's HIS and insurance suites against a real PostgreSQL (a throwaway database).

As in test_quality_gate.py, tables are created from what the suites touch (types from the source specs
for raw tables), for every validation of the checkpoint — vendor ones included, since one gate run
validates them all — so the tests follow the suites in expectations/ instead of restating them.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from decimal import Decimal

import psycopg2
import pytest

from gate_tables import (
    create_tables,
    expected_result_count,
    insert,
    insert_night,
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
from hospital_ops.sources import SOURCES
from hospital_ops.sources.insurance import DRG_CODE_PATTERN

CHECKPOINT = "nightly_sources"
TONIGHT = date(2026, 11, 22)
HIS_MARTS = {"marts_build.fct_department_month_ledger": "his/fct_department_month_ledger.sql",
             "marts_build.fct_department_month_kpis": "his/fct_department_month_kpis.sql",
             "marts_build.fct_drg_group_month": "insurance/fct_drg_group_month.sql",
             "marts_build.fct_hospital_month_ledger": "his/fct_hospital_month_ledger.sql",
             "marts_build.fct_dip_group_month": "insurance/fct_dip_group_month.sql"}
LEDGER, KPIS, DRG = list(HIS_MARTS)[:3]


# ------------------------------------------------------------------------------------ helpers


def _mart_type(column: str) -> str:
    if column == "month":
        return "date"
    if column.endswith("_id") or column in ("drg_code", "risk_tier", "service_type"):
        return "text"
    if column.startswith("is_"):
        return "boolean"
    return "numeric"


def _insert(conn, table: str, batch_date: date = TONIGHT, source_file: str | None = None, **values) -> None:
    insert(conn, table, batch_date, source_file, **values)


# ----------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def db_url(fresh_database):
    url = fresh_database("gate_his_test")
    _create_tables(url)
    _insert_good_night(url)
    return url


def _create_tables(url: str) -> None:
    create_tables(url, CHECKPOINT, lambda table, columns: {c: _mart_type(c) for c in columns})


def _insert_good_night(url: str) -> None:
    conn = psycopg2.connect(url)
    his = f"his/{TONIGHT}"
    # a catch-up night took two drop folders: a key in two files of one batch is fine
    _insert(conn, "raw.his__hospitals", hospital_id="H1")
    _insert(conn, "raw.his__departments", department_id="H1-CARD")
    _insert(conn, "raw.his__departments", department_id="H1-ORTH")
    _insert(conn, "raw.his__staff", staff_id="S1", hired_on=date(2020, 1, 1), left_on=None)
    _insert(conn, "raw.his__staff", staff_id="S2", hired_on=date(2021, 3, 1), left_on=date(2026, 11, 21))
    _insert(conn, "raw.his__staff", staff_id="S2", hired_on=date(2021, 3, 1), left_on=date(2026, 11, 22),
            source_file=f"his/{TONIGHT - timedelta(days=1)}/his_staff.csv")
    _insert(conn, "raw.his__beds", bed_id="B1", open_from=date(2024, 1, 1), open_to=None)
    _insert(conn, "raw.his__beds", bed_id="B2", open_from=date(2026, 11, 1), open_to=date(2026, 11, 1))
    _insert(conn, "raw.his__outpatient_visits", visit_id="OV1")
    _insert(conn, "raw.his__inpatient_stays", stay_id="ST1", admitted_at=datetime(2026, 11, 10, 9),
            discharged_at=datetime(2026, 11, 18, 10))
    _insert(conn, "raw.his__inpatient_stays", stay_id="ST2", admitted_at=datetime(2026, 11, 21, 22),
            discharged_at=None)  # still in hospital
    _insert(conn, "raw.his__inpatient_stays", stay_id="ST1", admitted_at=datetime(2026, 11, 10, 9),
            discharged_at=datetime(2026, 11, 18, 10), source_file=f"{his}/his_inpatient_stays_fhir.csv")
    _insert(conn, "raw.his__diagnoses", stay_id="ST1", seq_no=1)
    _insert(conn, "raw.his__diagnoses", stay_id="ST1", seq_no=2)
    _insert(conn, "raw.his__surgeries", surgery_id="SU1")
    _insert(conn, "raw.his__charges", charge_id="CH1", visit_id="OV1", stay_id=None)
    _insert(conn, "raw.his__charges", charge_id="CH2", visit_id=None, stay_id="ST1")
    # equipment, patients: nothing changed tonight, an empty batch passes
    _insert(conn, "raw.insurance__drg_catalogue", catalogue_version="CHS-DRG-1.1-2026", drg_code="FM19")
    _insert(conn, "raw.insurance__drg_catalogue", catalogue_version="CHS-DRG-1.1-2026", drg_code="IC23")
    _insert(conn, "raw.insurance__drg_catalogue", catalogue_version="CHS-DRG-1.1-2025", drg_code="IC23",
            source_file=f"insurance/{TONIGHT}/drg_catalogue_CHS-DRG-1.1-2025.csv")
    _insert(conn, "raw.insurance__settlements", case_id="H1JS202611220001", drg_code="FM19",
            discharge_date=date(2026, 11, 12), settled_on=TONIGHT)
    _insert(conn, "raw.insurance__settlements", case_id="H1JS202611220002", drg_code="IC23",
            discharge_date=TONIGHT, settled_on=TONIGHT)
    # yesterday's batch held a bad stay: tonight's gate does not look at it
    _insert(conn, "raw.his__inpatient_stays", batch_date=TONIGHT - timedelta(days=1), stay_id="ST0",
            admitted_at=datetime(2026, 11, 20, 9), discharged_at=datetime(2026, 11, 19, 9))
    # vendor raw tables: no rows tonight (an empty batch passes); vendor mart: empty
    month = date(2026, 11, 1)
    _insert(conn, LEDGER, department_month_id="H1-CARD|2026-11", department_id="H1-CARD", month=month,
            bed_occupancy=Decimal("1.18"),  # extra beds 加床: over 100% is real
            drug_ratio=Decimal("0.31"), consumables_ratio=Decimal("0.22"), medical_service_share=Decimal("0.27"),
            average_length_of_stay=Decimal("8.5"))
    _insert(conn, LEDGER, department_month_id="H1-ORTH|2026-11", department_id="H1-ORTH", month=month,
            bed_occupancy=None, drug_ratio=None, consumables_ratio=None, medical_service_share=None,
            average_length_of_stay=None)  # nothing to measure
    _insert(conn, KPIS, department_month_id="H1-CARD|2026-11", department_id="H1-CARD", month=month,
            complication_rate=Decimal("0.04"), unplanned_readmission_rate_31d=Decimal("0.02"),
            mortality_rate=Decimal(0), senior_title_share=Decimal("0.35"), satisfaction_rate=None,
            level4_surgery_share=Decimal("0.4"), minimally_invasive_share=Decimal(1),
            surgical_discharge_share=Decimal("0.5"), case_mix_index=Decimal("1.2345"))
    _insert(conn, KPIS, department_month_id="H1-ORTH|2026-11", department_id="H1-ORTH", month=month)
    _insert(conn, DRG, drg_group_month_id="H1-CARD|FM19|2026-11", department_id="H1-CARD", drg_code="FM19",
            month=month, cases=3)
    _insert(conn, DRG, drg_group_month_id="H1-CARD|IC23|2026-11", department_id="H1-CARD", drg_code="IC23",
            month=month, cases=1)
    conn.close()


# -------------------------------------------------------------------------------------- tests


def test_his_and_insurance_suites_are_valid_and_touch_only_real_columns():
    spec = load_checkpoint(CHECKPOINT)
    tables = {v.table for v in spec.validations}
    for source in ("his", "insurance"):  # every raw table of both sources is gated
        assert {f"raw.{e.raw_table}" for e in SOURCES[source].entities} <= tables
    assert set(HIS_MARTS) <= tables
    for v in spec.validations:
        if not v.table.startswith(("raw.his__", "raw.insurance__")) and v.table not in HIS_MARTS:
            continue
        document = load_suite(v.suite)
        suite = _build_suite(document)  # raises if GX rejected any expectation
        assert len(suite.expectations) == len(document["expectations"])
        assert all(e.get("notes") for e in document["expectations"]), v.suite
        columns = set(suite_columns(document))
        if v.table.startswith("raw."):
            assert v.row_filter == "_batch_date = :business_date"
            assert not columns - set(raw_types(v.table)), f"{v.suite}: columns {v.table} does not have"
        else:
            dbt_dir = settings().project_root / "dbt_project"
            # the model, and the macros it may take a column from (ledger_ratios)
            sql = "\n".join([(dbt_dir / "models" / "marts" / HIS_MARTS[v.table]).read_text(),
                             *(m.read_text() for m in sorted((dbt_dir / "macros").glob("*.sql")))])
            assert not {c for c in columns if not re.search(rf"\b{c}\b", sql)}, f"{v.suite}: columns not in model"
        for e in document["expectations"]:  # the DRG shape is the one the insurance spec documents
            if e["type"] == "expect_column_values_to_match_regex":
                assert e["kwargs"]["regex"] == DRG_CODE_PATTERN


def test_good_night_passes_with_one_result_per_expectation(db_url, tmp_path):
    result = run_quality_gate(db_url, run_id="his_good_night", business_date=TONIGHT, data_docs_dir=tmp_path)

    assert result.success, result.failure_report()
    assert len(result.results) == expected_result_count(CHECKPOINT)
    by_check = {(r["suite"], r["column_name"]): r for r in result.results}
    # the rules really looked at tonight's rows (yesterday's bad stay ST0 is outside the filter)
    stays = by_check[("raw.his__inpatient_stays", "discharged_at, admitted_at")]
    assert stays["element_count"] == 3 and stays["unexpected_count"] == 0
    assert by_check[("raw.insurance__settlements", "drg_code")]["element_count"] == 2
    # an empty batch passes
    assert by_check[("raw.his__equipment", "retired_on, acquired_on")]["element_count"] == 0


def test_bad_stay_in_tonights_batch_fails_naming_the_suite(db_url, tmp_path):
    night = TONIGHT + timedelta(days=1)
    bad_stay = {"stay_id": "ST9", "admitted_at": datetime(2026, 11, 22, 14), "discharged_at": datetime(2026, 11, 22, 9)}
    insert_night(db_url, [("raw.his__inpatient_stays", bad_stay)], night)

    with pytest.raises(QualityGateFailed) as failed:
        run_quality_gate(db_url, run_id="his_bad_stay", business_date=night, data_docs_dir=tmp_path)

    message = str(failed.value)
    assert "suite=raw.his__inpatient_stays" in message
    assert "expectation=expect_column_pair_values_a_to_be_greater_than_b" in message
    assert "column=discharged_at, admitted_at" in message
    assert [(r["suite"], r["unexpected_count"]) for r in failed.value.result.failures] == [
        ("raw.his__inpatient_stays", 1)]


def test_bad_settlement_drg_code_fails_the_regex_expectation(db_url, tmp_path):
    night = TONIGHT + timedelta(days=2)
    insert_night(db_url, [
        ("raw.insurance__settlements", {"case_id": "H1JS202611240001", "drg_code": "FM19",
                                        "discharge_date": date(2026, 11, 20), "settled_on": night}),
        ("raw.insurance__settlements", {"case_id": "H1JS202611240002", "drg_code": "FM14",  # no split digit 4
                                        "discharge_date": date(2026, 11, 20), "settled_on": night}),
    ], night)

    with pytest.raises(QualityGateFailed) as failed:
        run_quality_gate(db_url, run_id="his_bad_drg", business_date=night, data_docs_dir=tmp_path)

    message = str(failed.value)
    assert "suite=raw.insurance__settlements" in message
    assert "expectation=expect_column_values_to_match_regex" in message
    assert "FM14" in message
    assert [(r["suite"], r["expectation_type"], r["column_name"], r["unexpected_count"])
            for r in failed.value.result.failures] == [
        ("raw.insurance__settlements", "expect_column_values_to_match_regex", "drg_code", 1)]


def test_charge_with_both_or_neither_visit_and_stay_fails(db_url, tmp_path):
    night = TONIGHT + timedelta(days=3)
    insert_night(db_url, [
        ("raw.his__charges", {"charge_id": "CH7", "visit_id": "OV7", "stay_id": None}),
        ("raw.his__charges", {"charge_id": "CH8", "visit_id": "OV8", "stay_id": "ST8"}),  # both
        ("raw.his__charges", {"charge_id": "CH9", "visit_id": None, "stay_id": None}),  # neither
    ], night)

    result = run_quality_gate(db_url, run_id="his_bad_charges", business_date=night, data_docs_dir=tmp_path,
                              raise_on_failure=False)

    assert sorted((r["suite"], r["expectation_type"], r["column_name"], r["unexpected_count"])
                  for r in result.failures) == [
        ("raw.his__charges", "expect_column_values_to_be_null", "visit_id", 1),
        ("raw.his__charges", "expect_column_values_to_not_be_null", "stay_id", 1)]
