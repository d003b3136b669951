"""The quality gate's survey and referral suites against a real PostgreSQL (a throwaway database).

As in test_quality_gate_his.py, tables are created from what the suites touch (types from the source
specs), for every validation of the checkpoint, so the tests follow the suites in expectations/.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from gate_tables import create_tables, expected_result_count, insert_night, raw_types, suite_columns
from hospital_ops.extract.scrub import PHONE_MARK
from hospital_ops.load.parsing import pseudonymize
from hospital_ops.quality import QualityGateFailed, load_checkpoint, load_suite, run_quality_gate
from hospital_ops.quality.gate import _build_suite
from hospital_ops.sources import SOURCES

CHECKPOINT = "nightly_sources"
TONIGHT = date(2026, 11, 22)
KEY = b"gate-test-key"
SURVEY_SOURCES = ("survey", "referral")


def _mart_type(column: str) -> str:
    if column == "month":
        return "date"
    if column.endswith("_id") or column in ("drg_code", "risk_tier", "service_type"):
        return "text"
    if column.startswith("is_"):
        return "boolean"
    return "numeric"


@pytest.fixture(scope="module")
def db_url(fresh_database):
    url = fresh_database("gate_survey_test")
    create_tables(url, CHECKPOINT, lambda table, columns: {c: _mart_type(c) for c in columns})
    at = datetime(2026, 11, 22, 9)
    insert_night(url, [
        ("raw.survey__questionnaires", {"questionnaire_id": "Q1", "visit_date": TONIGHT, "submitted_at": at,
                                        "patient_national_id_pseudo": pseudonymize("31011519800101123X", KEY),
                                        "comment": f"请回电{PHONE_MARK}"}),
        ("raw.survey__questionnaires", {"questionnaire_id": "Q2", "visit_date": TONIGHT - timedelta(days=1),
                                        "submitted_at": at, "patient_national_id_pseudo": None, "comment": None}),
        ("raw.survey__answers", {"answer_id": "Q1-01"}),
        ("raw.survey__complaints", {"complaint_id": "C1", "received_at": at, "handled_at": at + timedelta(hours=3),
                                    "tracked_at": None, "feedback_at": None, "feedback_result": None,
                                    "description": "候诊时间超过两小时"}),
        ("raw.survey__follow_ups", {"follow_up_id": "F1", "scheduled_on": TONIGHT, "completed_at": None,
                                    "outcome": None, "note": None}),
        ("raw.survey__window_ratings", {"rating_id": "W1"}),
        ("raw.referral__channels", {"channel_id": "CH01"}),
        ("raw.referral__referrals", {"referral_id": "RF1", "referred_at": at, "first_contact_at": at + timedelta(
            minutes=40), "patient_national_id_pseudo": pseudonymize("31011519800101123X", KEY)}),
    ], TONIGHT)
    return url


def test_survey_and_referral_suites_are_valid_and_touch_only_real_columns():
    tables = {v.table: v for v in load_checkpoint(CHECKPOINT).validations}
    for source in SURVEY_SOURCES:  # every raw table of both sources is gated, tonight's batch only
        for entity in SOURCES[source].entities:
            validation = tables[f"raw.{entity.raw_table}"]
            assert validation.row_filter == "_batch_date = :business_date"
            document = load_suite(validation.suite)
            suite = _build_suite(document)  # raises if GX rejected any expectation
            assert len(suite.expectations) == len(document["expectations"])
            assert all(e.get("notes") for e in document["expectations"]), validation.suite
            assert not set(suite_columns(document)) - set(raw_types(validation.table)), validation.suite


def test_good_night_passes(db_url, tmp_path):
    result = run_quality_gate(db_url, run_id="survey_good_night", business_date=TONIGHT, data_docs_dir=tmp_path)

    assert result.success, result.failure_report()
    assert len(result.results) == expected_result_count(CHECKPOINT)
    by_check = {(r["suite"], r["expectation_type"], r["column_name"]): r for r in result.results}
    scrubbed = by_check[("raw.survey__questionnaires", "expect_column_values_to_not_match_regex", "comment")]
    assert scrubbed["element_count"] == 2 and scrubbed["unexpected_count"] == 0


def test_clear_phone_in_a_comment_and_a_clear_national_id_fail(db_url, tmp_path):
    night = TONIGHT + timedelta(days=1)
    at = datetime(2026, 11, 23, 10)
    insert_night(db_url, [
        ("raw.survey__questionnaires", {"questionnaire_id": "Q9", "visit_date": night, "submitted_at": at,
                                        "patient_national_id_pseudo": "31011519800101123X",  # not hashed
                                        "comment": "请回电13812345678"}),  # not scrubbed
    ], night)

    with pytest.raises(QualityGateFailed) as failed:
        run_quality_gate(db_url, run_id="survey_clear_text", business_date=night, data_docs_dir=tmp_path)

    assert sorted((r["suite"], r["expectation_type"], r["column_name"], r["unexpected_count"])
                  for r in failed.value.result.failures) == [
        ("raw.survey__questionnaires", "expect_column_values_to_match_regex", "patient_national_id_pseudo", 1),
        ("raw.survey__questionnaires", "expect_column_values_to_not_match_regex", "comment", 1)]


def test_complaint_lifecycle_out_of_order_and_early_contact_fail(db_url, tmp_path):
    night = TONIGHT + timedelta(days=2)
    at = datetime(2026, 11, 24, 10)
    insert_night(db_url, [
        ("raw.survey__complaints", {"complaint_id": "C9", "received_at": at, "handled_at": at - timedelta(hours=1),
                                    "tracked_at": None, "feedback_at": None, "feedback_result": None}),
        ("raw.survey__complaints", {"complaint_id": "C8", "received_at": at, "handled_at": at, "tracked_at": at,
                                    "feedback_at": at + timedelta(days=2), "feedback_result": None}),
        ("raw.referral__referrals", {"referral_id": "RF9", "referred_at": at, "first_contact_at": at - timedelta(
            minutes=5), "patient_national_id_pseudo": pseudonymize("x", KEY)}),
    ], night)

    result = run_quality_gate(db_url, run_id="survey_bad_lifecycle", business_date=night, data_docs_dir=tmp_path,
                              raise_on_failure=False)

    assert sorted((r["suite"], r["expectation_type"], r["column_name"], r["unexpected_count"])
                  for r in result.failures) == [
        ("raw.referral__referrals", "expect_column_pair_values_a_to_be_greater_than_b",
         "first_contact_at, referred_at", 1),
        ("raw.survey__complaints", "expect_column_pair_values_a_to_be_greater_than_b", "handled_at, received_at", 1),
        ("raw.survey__complaints", "expect_column_values_to_not_be_null", "feedback_result", 1)]
