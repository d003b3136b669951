"""The HIS and insurance models a night builds incrementally (int_his__stays_enriched, int_insurance__cases,
the department ledger, the DRG and DIP group months, and the incremental staging under them): a night of
late corrections rewrites only the stays, cases and months it touched, and what it leaves equals a
`--full-refresh` rebuild. Two real nights through the DAG; between them the HIS corrects a stay of an
earlier month (its discharge moved into the month before) and the insurance platform re-sends a
settlement with its discharge date moved into the month before. (tests/test_his_marts.py covers the
HIS's own late corrections of the ledger.)"""

from __future__ import annotations

import csv
from contextlib import closing
from datetime import date, datetime, time, timedelta

import psycopg2
import pytest

from hospital_ops.airflow_local import run_night
from hospital_ops.dbt_runner import run_dbt
from hospital_ops_sim.his import create_his_database, generate_his
from hospital_ops_sim.insurance import generate_insurance
from nightly_runs import query, table_digest

pytestmark = pytest.mark.e2e

# the history crosses a year end, so the DIP months of one year can be left alone while the other's
# point value is re-estimated
END = date(2027, 1, 20)
NIGHT = END + timedelta(days=1)
SEED = 5

# model → (schema, key column, month column or None)
MODELS = {
    "int_his__stays_enriched": ("intermediate", "stay_id", None),
    "int_insurance__cases": ("intermediate", "case_id", "discharge_month"),
    "fct_department_month_ledger": ("marts_build", "department_month_id", "month"),
    "fct_drg_group_month": ("marts_build", "drg_group_month_id", "month"),
    "fct_dip_group_month": ("marts_build", "dip_group_month_id", "month"),
}
STAGING = ["stg_his__inpatient_stays", "stg_his__surgeries", "stg_his__diagnoses", "stg_his__charges",
           "stg_insurance__settlements"]
# columns that say when or from where a row was built, not what it holds
BUILD_COLUMNS = ("source_landed_through", "landed_at", "previous_")


def versions(url: str, model: str) -> dict[str, str]:
    """The physical row version (xmin) of each key: a row rewritten by a night gets a new one."""
    schema, key, _ = MODELS[model]
    return dict(query(url, f"select {key}::text, xmin::text from {schema}.{model}"))


def months_of(url: str, model: str) -> dict[str, date]:
    schema, key, month = MODELS[model]
    return dict(query(url, f"select {key}::text, {month} from {schema}.{model}"))


def month(value: date | datetime) -> date:
    return date(value.year, value.month, 1)


def plant_moves(his_url: str, inbox, night: date) -> dict:
    """Move one discharge into the month before (HIS), and re-send one matched settlement with its
    discharge date moved into the month before (insurance); return what moved."""
    at = datetime.combine(night, time(10))
    last_month = month(END - timedelta(days=END.day))  # the month before the business month
    (stay_id, admitted_at, discharged_at), = query(his_url, """
        select stay_id, admitted_at, discharged_at from his.inpatient_stays
        where date_trunc('month', discharged_at) = %s and admitted_at < %s - interval '1 day'
        order by stay_id limit 1""", (last_month, last_month))
    moved_to = datetime.combine(last_month - timedelta(days=1), time(11))
    with closing(psycopg2.connect(his_url)) as conn, conn, conn.cursor() as cur:
        cur.execute("update his.inpatient_stays set discharged_at = %s, updated_at = %s where stay_id = %s",
                    (moved_to, at, stay_id))
    # a settlement of the month before, of a stay the HIS has, re-sent with the discharge a month earlier
    folders = sorted(p for p in (inbox / "insurance").iterdir() if p.is_dir())
    resent = None
    for folder in reversed(folders):
        for path in folder.glob("settlement_*.csv"):
            raw = path.read_bytes()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:  # the platform sends some files in GBK
                text = raw.decode("gb18030")
            for row in csv.DictReader(text.splitlines()):
                discharged = date.fromisoformat(row["discharge_date"])
                if month(discharged) == last_month and row["stay_id"] != stay_id and query(
                        his_url, "select 1 from his.inpatient_stays where stay_id = %s", (row["stay_id"],)):
                    resent = row
                    break
            if resent:
                break
        if resent:
            break
    assert resent, "no settlement of the month before to re-send"
    old_discharge = date.fromisoformat(resent["discharge_date"])
    resent["discharge_date"] = (last_month - timedelta(days=1)).isoformat()  # the last day of the month before
    resent["settled_on"] = night.isoformat()
    folder = inbox / "insurance" / night.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"settlement_{night.isoformat()}.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(resent), lineterminator="\n")
        writer.writeheader()
        writer.writerow(resent)
    return {"stay_id": stay_id, "stay_months": (month(admitted_at), month(discharged_at), month(moved_to)),
            "case_id": resent["case_id"], "case_months": (month(old_discharge), month(date.fromisoformat(
                resent["discharge_date"])))}


@pytest.fixture(scope="module")
def nights(tmp_path_factory, fresh_database):
    var_dir = tmp_path_factory.mktemp("var")
    url, his_url = fresh_database("inc_his"), fresh_database("inc_his_src")
    create_his_database(his_url)
    generate_his(his_url, end=END, months=5, hospitals=2, scale=0.15, seed=SEED, corrections_per_kind=1)
    generate_insurance(his_url, var_dir / "inbox", end=END, seed=SEED)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOSPITAL_OPS_VAR_DIR", str(var_dir))
        patch.setenv("HOSPITAL_OPS_INBOX", str(var_dir / "inbox"))
        patch.setenv("WAREHOUSE_URL", url)
        patch.setenv("HIS_URL", his_url)
        first = run_night(END, url)
        before = {model: versions(url, model) for model in MODELS}
        months_before = {model: months_of(url, model) for model in MODELS if MODELS[model][2]}
        planted = plant_moves(his_url, var_dir / "inbox", NIGHT)
        # the HIS's own late corrections (apply_late_corrections) are left out here: they touch rows of every
        # month, and a month no correction touches is what shows that the others are left alone
        corrections: list = []
        second = run_night(NIGHT, url)
        yield {"url": url, "his_url": his_url, "var_dir": var_dir, "runs": [first, second], "before": before,
               "months_before": months_before, "after": {model: versions(url, model) for model in MODELS},
               "months_after": {model: months_of(url, model) for model in MODELS if MODELS[model][2]},
               "planted": planted, "corrections": corrections}


def rewritten(nights: dict, model: str) -> set[str]:
    before, after = nights["before"][model], nights["after"][model]
    return {key for key, version in after.items() if before.get(key) != version} | (before.keys() - after.keys())


def rewritten_months(nights: dict, model: str) -> set[date]:
    keys = rewritten(nights, model)
    months = nights["months_after"][model] | nights["months_before"][model]
    return {months[key] for key in keys}


def touched_stays(nights: dict) -> set[str]:
    """The stays the night's delta touched, from the HIS itself: the corrected stays, the stays of the
    corrected diagnoses, surgeries and charges, the planted stay; and every stay of their patients
    (readmission reads the patient's next admission)."""
    his_url = nights["his_url"]
    stays = {nights["planted"]["stay_id"]}
    for c in nights["corrections"]:
        if c.table == "inpatient_stays" or c.table == "diagnoses":
            stays.add(c.key[0])
        elif c.table == "surgeries":
            stays |= {r[0] for r in query(his_url, "select stay_id from his.surgeries where surgery_id = %s", c.key)}
        elif c.table == "charges":
            stays |= {r[0] for r in query(his_url, "select stay_id from his.charges where charge_id = %s "
                                                   "and stay_id is not null", c.key)}
    return {r[0] for r in query(his_url, "select stay_id from his.inpatient_stays where patient_id in "
                                         "(select patient_id from his.inpatient_stays where stay_id = any(%s))",
                                (sorted(stays),))}


def touched_case_months(nights: dict) -> set[date]:
    """Discharge months (before and after the night) of the cases of touched stays, and the re-sent case's."""
    url = nights["url"]
    cases = {r[0] for r in query(url, "select case_id from intermediate.int_insurance__cases "
                                      "where stay_id = any(%s)", (sorted(touched_stays(nights)),))}
    cases.add(nights["planted"]["case_id"])
    months = nights["months_before"]["int_insurance__cases"], nights["months_after"]["int_insurance__cases"]
    return {m[case] for m in months for case in cases if case in m}


def test_both_nights_succeed(nights) -> None:
    for run in nights["runs"]:
        assert run.succeeded, f"night {run.business_date} failed: {run.failed_tasks}, see {run.log_file}"


def test_stays_enriched_rewrites_only_the_touched_stays(nights) -> None:
    rewritten_stays = rewritten(nights, "int_his__stays_enriched")
    assert nights["planted"]["stay_id"] in rewritten_stays  # fires
    assert rewritten_stays <= touched_stays(nights)
    assert len(rewritten_stays) < len(nights["after"]["int_his__stays_enriched"])  # the rest keep their rows


def test_insurance_cases_rewrite_only_the_cases_of_touched_stays(nights) -> None:
    rewritten_cases = rewritten(nights, "int_insurance__cases")
    assert nights["planted"]["case_id"] in rewritten_cases
    (moved_to,), = query(nights["url"], "select discharge_month from intermediate.int_insurance__cases "
                                        "where case_id = %s", (nights["planted"]["case_id"],))
    assert moved_to == nights["planted"]["case_months"][1]
    stays = touched_stays(nights)
    cases_of_touched = {r[0] for r in query(nights["url"], "select case_id from intermediate.int_insurance__cases "
                                                           "where stay_id = any(%s)", (sorted(stays),))}
    assert rewritten_cases <= cases_of_touched | {nights["planted"]["case_id"]}
    assert len(rewritten_cases) < len(nights["after"]["int_insurance__cases"])


def test_the_ledger_rewrites_only_the_touched_months(nights) -> None:
    planted = nights["planted"]
    admitted, discharged, moved_to = planted["stay_months"]
    rebuilt = rewritten_months(nights, "fct_department_month_ledger")
    # fires: both months the moved discharge counts in, and the business month
    assert {discharged, moved_to, month(NIGHT)} <= rebuilt
    expected = {month(NIGHT)}
    for stay in touched_stays(nights) | {planted["stay_id"]}:
        expected |= {month(m) for (m,) in query(nights["his_url"], """
            select generate_series(date_trunc('month', admitted_at), date_trunc('month', coalesce(discharged_at, %s)),
                                   interval '1 month')
            from his.inpatient_stays where stay_id = %s""", (NIGHT, stay))}
    expected |= {admitted, discharged}
    for c in nights["corrections"]:
        if c.table == "charges":
            expected |= {month(m) for (m,) in query(nights["his_url"], "select charged_at from his.charges "
                                                                         "where charge_id = %s", c.key)}
        if c.table == "surgeries":
            expected |= {month(m) for (m,) in query(nights["his_url"], "select performed_at from his.surgeries "
                                                                         "where surgery_id = %s", c.key)}
    assert rebuilt <= expected
    # does not fire: a month outside the night's delta keeps its physical rows
    untouched = set(nights["months_after"]["fct_department_month_ledger"].values()) - expected
    assert untouched and not untouched & rebuilt


def test_the_drg_months_rewrite_only_the_months_of_touched_cases(nights) -> None:
    old_month, new_month = nights["planted"]["case_months"]
    rebuilt = rewritten_months(nights, "fct_drg_group_month")
    assert {old_month, new_month} <= rebuilt  # fires: the month the case left, and the month it joined
    expected = touched_case_months(nights)
    assert rebuilt <= expected
    untouched = set(nights["months_after"]["fct_drg_group_month"].values()) - expected
    assert untouched and not untouched & rebuilt


def test_the_dip_months_rewrite_the_years_of_touched_cases(nights) -> None:
    """A year's estimated point value reads all its cases: a touched month rewrites its whole year."""
    old_month, new_month = nights["planted"]["case_months"]
    rebuilt = rewritten_months(nights, "fct_dip_group_month")
    years = {m.year for m in touched_case_months(nights)}
    all_months = set(nights["months_after"]["fct_dip_group_month"].values())
    assert {old_month, new_month} <= rebuilt
    assert rebuilt == {m for m in all_months if m.year in years}
    untouched = all_months - rebuilt
    assert untouched, "every DIP year was touched: the planted case must leave one year alone"


def digest(url: str, schema: str, model: str) -> str:
    (columns,), = query(url, "select string_agg(column_name, ', ' order by ordinal_position) "
                             "from information_schema.columns where table_schema = %s and table_name = %s "
                             "and not (column_name = any(%s) or column_name like 'previous\\_%%')",
                        (schema, model, list(BUILD_COLUMNS[:2])))
    return table_digest(url, f"(select {columns} from {schema}.{model})")


def test_every_incremental_model_equals_a_full_refresh(nights) -> None:
    url = nights["url"]
    models = {m: MODELS[m][0] for m in MODELS} | dict.fromkeys(STAGING, "staging")
    incremental = {m: digest(url, schema, m) for m, schema in models.items()}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOSPITAL_OPS_VAR_DIR", str(nights["var_dir"]))
        # the DIP point values are a view over the cases: rebuilding the cases' table drops it, so it is rebuilt too
        run_dbt(["run", "--full-refresh", "--select", *models, "int_insurance__dip_point_values"],
                warehouse_url=url, business_date=NIGHT,
                label="full rebuild")
    rebuilt = {m: digest(url, schema, m) for m, schema in models.items()}
    assert {m for m in models if rebuilt[m] != incremental[m]} == set()
