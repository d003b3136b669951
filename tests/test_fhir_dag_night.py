"""The nightly DAG itself (`airflow dags test`) on a fresh warehouse with only the HIS configured, over
FHIR (the public Synthea patients as a drop folder of Bundles): it builds, gates and publishes, and the
published figures equal the ones computed from the files. A business date before the DAG's start date is
refused with a clear message, never "succeeded" with nothing done.

One of the 30 patients has a 15-year inpatient stay (5,539 bed-days): its department-month's ALOS is far
beyond the gate's bound for a general hospital (`average_length_of_stay` in
expectations/suites/marts.fct_department_month_ledger.json), and the gate rightly refuses that night.
The publishing night here leaves out the patients with a stay longer than that bound (read from the suite)."""

from __future__ import annotations

import json
from datetime import date

import pytest

from hospital_ops.airflow_local import run_night
from hospital_ops.config import PROJECT_ROOT
from nightly_runs import query
from test_fhir_his import NIGHT, REFERENCE, expected_figures, local, write_bundles


def alos_bound() -> float:
    suite = json.loads((PROJECT_ROOT / "expectations" / "suites" / "marts.fct_department_month_ledger.json")
                       .read_text(encoding="utf-8"))
    return next(e["kwargs"]["max_value"] for e in suite["expectations"]
                if e["kwargs"].get("column") == "average_length_of_stay")


def longest_stay(bundle) -> int:  # type: ignore[no-untyped-def]
    days = [(local(r["period"]["end"]).date() - local(r["period"]["start"]).date()).days
            for r in (e["resource"] for e in json.loads(bundle.read_text(encoding="utf-8"))["entry"])
            if r["resourceType"] == "Encounter" and r["class"]["code"] == "IMP" and r["period"].get("end")]
    return max(days, default=0)

pytestmark = pytest.mark.skipif(not REFERENCE.is_dir(), reason=f"public reference data not found at {REFERENCE}")


@pytest.fixture(scope="module")
def dag_night(tmp_path_factory, fresh_database):
    root = tmp_path_factory.mktemp("fhir_dag")
    bundles = []
    for bundle in write_bundles(root / "bundles"):
        if longest_stay(bundle) > alos_bound():
            bundle.unlink()
        else:
            bundles.append(bundle)
    assert 0 < len(bundles) < 30
    url = fresh_database("fhirdag")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOSPITAL_OPS_VAR_DIR", str(root / "var"))
        patch.setenv("HOSPITAL_OPS_INBOX", str(root / "inbox"))  # no file source has ever delivered
        patch.setenv("WAREHOUSE_URL", url)
        patch.setenv("HOSPITAL_OPS_PSEUDONYM_KEY", "dag-night-key")
        patch.setenv("HIS_KIND", "fhir")
        # a Synthea export is each patient's whole life: the history the hospital loads starts in 1900
        patch.setenv("HOSPITAL_OPS_HISTORY_START_DATE", "1900-01-01")
        patch.setenv("HIS_FHIR_DIR", str(root / "bundles"))
        for name in ("HIS_URL", "HIS_FHIR_URL", "SURVEY_API_URL", "SURVEY_API_TOKEN"):
            patch.delenv(name, raising=False)
        early = run_night(date(2025, 6, 1), url)
        night = run_night(NIGHT, url)
    return url, night, early, expected_figures(bundles)


def test_a_night_with_only_the_fhir_his_builds_gates_and_publishes(dag_night) -> None:
    url, night, _, expected = dag_night
    assert night.succeeded, (night.failed_tasks, night.log_file.read_text()[-4000:])
    published = dict(query(url, "select relation, row_count from audit.publications"))
    assert published["marts.fct_his_encounter_class_month"] > 0
    by_class = {(c, k): n for c, k, n in query(
        url, "select category, class_code, sum(encounters)::int from marts.fct_his_encounter_class_month group by 1, 2")}
    assert by_class == expected["by_class"]
    assert query(url, "select count(*) from raw._quarantine")[0][0] == 0
    (gate_failures,), = query(url, "select count(*) filter (where not success) from dq.validation_results")
    assert gate_failures == 0
    statuses = [s for s, in query(url, "select status from audit.run_ledger where business_date = %s order by seq",
                                  (NIGHT,))]
    assert statuses[0] == "started" and statuses[1:] == ["published"]  # the first night: started, then closed


def test_a_business_date_before_the_start_date_is_refused_clearly(dag_night) -> None:
    _, _, early, _ = dag_night
    assert not early.succeeded
    assert "2025-06-01 was not run" in early.message and "start_date" in early.message
