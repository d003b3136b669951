"""One simulated hospital, both HIS interfaces: the real DAG run once on its database (HIS_KIND=sql) and
once on its HL7 FHIR R4 Bulk export read from a drop folder (HIS_KIND=fhir, the one FHIR reader), each
into its own warehouse. The published ledger must agree: outpatient visits, admissions, discharges,
bed-days, surgeries by grade and revenue by category, department by department and month by month, and
their totals equal the simulated HIS's own. (Staff, beds and equipment are not read from FHIR, so the
figures built on them are not compared.)"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest

from hospital_ops.airflow_local import run_night
from hospital_ops_sim.his import create_his_database, generate_his, write_fhir_bulk
from nightly_runs import query

pytestmark = pytest.mark.e2e

END = date(2026, 11, 22)
CUTOFF = datetime.combine(END + timedelta(days=1), time())  # what the night's extract sees
FIGURES = ("outpatient_visits", "admissions", "discharges", "patient_days", "discharge_patient_days", "surgeries",
           "surgeries_grade_1", "surgeries_grade_2", "surgeries_grade_3", "surgeries_grade_4", "surgeries_ungraded",
           "minimally_invasive_surgeries", "revenue_total_cny", "revenue_drug_cny", "revenue_consumables_cny",
           "revenue_medical_service_cny", "revenue_exam_lab_cny")


@pytest.fixture(scope="module")
def both(tmp_path_factory, fresh_database):
    his_url = fresh_database("his_both_src")
    create_his_database(his_url)
    generate_his(his_url, end=END, months=2, hospitals=1, scale=0.1, seed=5)
    export = write_fhir_bulk(his_url, tmp_path_factory.mktemp("export"), until=CUTOFF)
    runs, urls = {}, {}
    for kind in ("sql", "fhir"):
        var_dir = tmp_path_factory.mktemp(f"var_{kind}")
        urls[kind] = fresh_database(f"wh_both_{kind}")
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("HOSPITAL_OPS_VAR_DIR", str(var_dir))
            patch.setenv("HOSPITAL_OPS_INBOX", str(var_dir / "inbox"))
            patch.setenv("WAREHOUSE_URL", urls[kind])
            patch.setenv("HIS_KIND", kind)
            if kind == "sql":
                patch.setenv("HIS_URL", his_url)
            else:
                patch.delenv("HIS_URL", raising=False)
                patch.setenv("HIS_FHIR_DIR", str(export.out_dir))
            runs[kind] = run_night(END, urls[kind])
    return {"his_url": his_url, "urls": urls, "runs": runs, "export": export}


def ledger(url: str) -> dict[tuple[str, date], tuple]:
    rows = query(url, f"select department_id, month, {', '.join(FIGURES)} from marts.fct_department_month_ledger "
                      "where outpatient_visits + admissions + discharges + revenue_total_cny > 0")
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


def test_both_nights_publish(both) -> None:
    for kind, run in both["runs"].items():
        assert run.succeeded, (kind, run.message, run.failed_tasks)


def test_the_ledger_is_the_same_on_both_interfaces(both) -> None:
    sql, fhir = ledger(both["urls"]["sql"]), ledger(both["urls"]["fhir"])
    assert sql and sql == fhir


def test_the_totals_equal_the_simulated_his(both) -> None:
    his = both["his_url"]
    visits = query(his, "select count(*) from his.outpatient_visits where visit_at < %s", (CUTOFF,))[0][0]
    stays = query(his, "select count(*) from his.inpatient_stays where admitted_at < %s", (CUTOFF,))[0][0]
    surgeries = query(his, "select count(*) from his.surgeries where performed_at < %s", (CUTOFF,))[0][0]
    money = query(his, "select sum(amount_cny) from his.charges where charged_at < %s", (CUTOFF,))[0][0]
    for kind, url in both["urls"].items():
        totals = query(url, "select sum(outpatient_visits), sum(admissions), sum(surgeries), sum(revenue_total_cny) "
                            "from marts.fct_department_month_ledger")[0]
        assert totals == (visits, stays, surgeries, money), kind
    assert both["export"].counts["Encounter"] == visits + stays
