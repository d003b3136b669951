"""dbt's own unit tests of the scoring rules (dbt_project/models/scoring/vendor/*unit_tests.yml).

They run here, in development and CI, not in the nightly pipeline: dbt needs the relations to exist
(an incremental model's unit test reads `this`), so an empty build comes first."""

from __future__ import annotations

from contextlib import closing
from datetime import date

import psycopg2

from hospital_ops.dbt_runner import run_dbt
from hospital_ops.load.loader import ensure_raw_schema
from hospital_ops.sources import SOURCES
from hospital_ops.sources.his_fhir import SOURCE as HIS_FHIR_SOURCE


def test_scoring_rule_unit_tests_pass(db_url: str) -> None:
    with closing(psycopg2.connect(db_url)) as conn:
        for source in [*SOURCES.values(), HIS_FHIR_SOURCE]:  # the FHIR detail tables exist, empty, beside the HIS
            ensure_raw_schema(conn, source)
    night = date(2026, 11, 22)
    run_dbt(["build", "--empty", "--exclude-resource-type", "unit_test", "--exclude-resource-type", "snapshot"],
            warehouse_url=db_url, business_date=night, label="empty build")
    results = run_dbt(["test", "--select", "test_type:unit"], warehouse_url=db_url, business_date=night,
                      label="unit tests")
    unit_tests = [r for r in results if r.resource_type == "unit_test"]
    assert unit_tests, "no dbt unit test was selected"
    assert all(r.status == "pass" for r in unit_tests), [(r.name, r.status, r.message) for r in unit_tests]
