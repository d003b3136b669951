"""The survey and referral models incremental by month: a simulated HIS, the vendor source, the survey
platform (served by its API simulator) and the referral exports, the real DAG for three nights, the
last one with late corrections (HIS corrections, and a questionnaire moved to another month by the
survey platform). Each incremental model then equals a full rebuild, and the last night rewrote only
the months it touched (row versions, xmin: a month rebuilt tonight has new ones)."""

from __future__ import annotations

import csv
import io
import secrets
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest

from hospital_ops.airflow_local import run_night
from hospital_ops.dbt_runner import run_dbt
from hospital_ops_sim.his import apply_late_corrections, create_his_database, generate_his
from hospital_ops_sim.referral import generate_referral
from hospital_ops_sim.survey import generate_survey
from hospital_ops_sim.survey_api import SurveyApiServer
from hospital_ops_sim.vendor import generate_vendor_source
from nightly_runs import query, table_digest

pytestmark = pytest.mark.e2e

END = date(2026, 11, 22)
NIGHTS = [END - timedelta(days=1), END]
LAST_NIGHT = END + timedelta(days=1)
MONTHS, VENDORS, SEED = 4, 13, 17
MAX_C = 8  # dbt var cold_chain_max_c: a corrected reading is planted above it

# each incremental model, its key and the bookkeeping columns a full rebuild sets differently (which night
# built a row, the value a correction replaced)
MODELS = {
    "intermediate.int_referral__visit_matches": ("matched_on", "previous_referred_at"),
    "marts_build.fct_channel_month_referrals": ("built_on",),
    "intermediate.int_survey__answers_enriched": ("enriched_on", "previous_visit_month"),
    "marts_build.fct_satisfaction_month": ("built_on",),
    "marts_build.fct_satisfaction_stage_dimension_month": ("built_on",),
    "marts_build.fct_vendor_month_satisfaction": ("built_on",),
    "staging.stg_vendor__cold_chain_readings": (),
    "marts_build.fct_vendor_month_kpis": ("built_on",),
}


@pytest.fixture(scope="module")
def consortium(tmp_path_factory, fresh_database):
    var_dir = tmp_path_factory.mktemp("var")
    inbox = var_dir / "inbox"
    url, his_url = fresh_database("incr_srv"), fresh_database("incr_srv_his")
    create_his_database(his_url)
    generate_his(his_url, end=END, months=MONTHS, hospitals=2, scale=0.4, seed=SEED)
    generate_vendor_source(inbox, end=END, months=MONTHS, vendors=VENDORS, hospitals=2, seed=SEED)
    survey = generate_survey(his_url, var_dir / "survey_platform.json", end=END, months=MONTHS, vendors=VENDORS,
                             seed=SEED)
    generate_referral(his_url, inbox, end=END, months=MONTHS, seed=SEED)
    token = secrets.token_urlsafe(16)
    with pytest.MonkeyPatch.context() as patch, SurveyApiServer.from_file(survey.out_file, token) as server:
        patch.setenv("HOSPITAL_OPS_VAR_DIR", str(var_dir))
        patch.setenv("HOSPITAL_OPS_INBOX", str(inbox))
        patch.setenv("WAREHOUSE_URL", url)
        patch.setenv("HIS_URL", his_url)
        patch.setenv("SURVEY_API_URL", server.base_url)
        patch.setenv("SURVEY_API_TOKEN", token)
        runs = [run_night(night, url) for night in NIGHTS]
        before = {relation: versions(url, relation) for relation in MODELS}
        vendor_rows = rows_by_month(url, "marts_build.fct_vendor_month_kpis", ("built_on",))

        # the last night's corrections: the HIS's (a patient record among them, so referral matches are
        # checked again), and one questionnaire of the earliest complete month moved to the month after
        his_corrections = apply_late_corrections(his_url, LAST_NIGHT, seed=SEED)
        moved, moved_from, moved_to = move_a_questionnaire(server, url)
        vendor_corrections = correct_vendor_files(inbox, url)
        runs.append(run_night(LAST_NIGHT, url))
        yield {"url": url, "var_dir": var_dir, "runs": runs, "before": before, "his_corrections": his_corrections,
               "moved": moved, "moved_from": moved_from, "moved_to": moved_to,
               "vendor_rows": vendor_rows, "vendor_corrections": vendor_corrections}


def move_a_questionnaire(server: SurveyApiServer, url: str) -> tuple[str, date, date]:
    """The platform corrects one outpatient questionnaire's visit date into the next month during the
    last night; returns its id and both months."""
    (questionnaire_id, visit_month), = query(
        url, "select questionnaire_id, visit_month from staging.stg_survey__questionnaires "
             "where questionnaire_type = 'outpatient' and visit_month = (select min(visit_month) + interval '1 month' "
             "from staging.stg_survey__questionnaires) order by questionnaire_id limit 1")
    record = next(r for r in server.records["questionnaires"] if r["questionnaire_id"] == questionnaire_id)
    moved_to = (visit_month + timedelta(days=40)).replace(day=5)
    # during the last business day, in the platform's own time zone
    stamp = datetime.combine(LAST_NIGHT, time(10), datetime.fromisoformat(record["updated_at"]).tzinfo).isoformat()
    # resubmitted after the corrected visit (the gate holds a questionnaire submitted before its visit)
    server.upsert("questionnaires", [record | {"visit_date": moved_to.isoformat(), "submitted_at": stamp,
                                               "updated_at": stamp}])
    return questionnaire_id, visit_month, moved_to.replace(day=1)


def read_csv(path: Path) -> list[list[str]]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("gb18030")
    return list(csv.reader(io.StringIO(text)))


def correct_vendor_files(inbox: Path, url: str) -> dict[str, date]:
    """The vendor re-sends, in the last night's folder, one lab QC run of the second month moved to the
    month after, and one cold-chain reading of the second month corrected out of range; returns the
    months: `lab_from`, `lab_to`, `reading`."""
    (second,), = query(url, "select min(month) + interval '1 month' from marts_build.fct_vendor_month_kpis "
                            "where lab_qc_runs > 0")
    folder = inbox / "vendor" / LAST_NIGHT.isoformat()
    folder.mkdir(parents=True)
    day = (second + timedelta(days=9)).date().isoformat()
    header, run, *_ = read_csv(inbox / "vendor" / day / "lab_qc_results.csv")
    at = header.index("run_at")
    moved = datetime.fromisoformat(run[at]) + timedelta(days=31)
    run[at] = moved.isoformat(sep=" ")
    header_r, reading, *_ = read_csv(inbox / "vendor" / day / "cold_chain_readings.csv")
    reading[header_r.index("temperature_c")] = str(float(MAX_C) + 4.5)
    for name, head, row in (("lab_qc_results.csv", header, run), ("cold_chain_readings.csv", header_r, reading)):
        with (folder / name).open("w", encoding="utf-8", newline="") as out:
            csv.writer(out).writerows([head, row])
    return {"lab_from": second.date(), "lab_to": moved.date().replace(day=1), "reading": second.date()}


def rows_by_month(url: str, relation: str, leave_out: tuple[str, ...]) -> dict[date, list[str]]:
    """Each month's rows as text, without the bookkeeping columns."""
    schema, name = relation.split(".")
    (columns,), = query(url, "select string_agg(column_name, ', ' order by ordinal_position) "
                             "from information_schema.columns where table_schema = %s and table_name = %s "
                             "and column_name <> all(%s)", (schema, name, list(leave_out)))
    by_month: dict[date, list[str]] = {}
    for month, text in query(url, f"select month, t::text from (select {columns} from {relation}) t order by 2"):
        by_month.setdefault(month, []).append(text)
    return by_month


def versions(url: str, relation: str) -> dict[str, str]:
    """Each row's physical version (xmin) by its month and key columns."""
    return dict(query(url, f"select t::text, xmin::text from {relation} t"))


def month_versions(url: str, relation: str, month_column: str) -> dict[date, set[str]]:
    by_month: dict[date, set[str]] = {}
    for month, version in query(url, f"select {month_column}, xmin::text from {relation}"):
        by_month.setdefault(month, set()).add(version)
    return by_month


def test_every_night_succeeds(consortium) -> None:
    assert [run.succeeded for run in consortium["runs"]] == [True] * 3


def test_the_moved_questionnaire_counts_in_its_new_month_only(consortium) -> None:
    url, moved = consortium["url"], consortium["moved"]
    (month,), = query(url, "select distinct visit_month from intermediate.int_survey__answers_enriched "
                           "where questionnaire_id = %s", (moved,))
    assert month == consortium["moved_to"]
    for month in (consortium["moved_from"], consortium["moved_to"]):
        expected = query(url, "select a.department_id, count(distinct a.questionnaire_id) "
                              "from staging.stg_survey__answers s join staging.stg_survey__questionnaires a "
                              "using (questionnaire_id) where a.visit_month = %s "
                              "and a.questionnaire_type in ('outpatient', 'inpatient') group by 1 order by 1", (month,))
        assert query(url, "select department_id, questionnaires from marts_build.fct_satisfaction_month "
                          "where month = %s order by 1", (month,)) == expected


def test_the_last_night_rewrote_only_the_survey_months_it_touched(consortium) -> None:
    url = consortium["url"]
    (night,), = query(url, "select max(_batch_date) from raw.survey__questionnaires")
    # the months of the questionnaires and answers the last night landed, and the month one left
    landed = {m for m, in query(url, "select distinct date_trunc('month', visit_date::date)::date "
                                     "from raw.survey__questionnaires where _batch_date = %s", (night,))}
    landed |= {m for m, in query(url, "select distinct q.visit_month from raw.survey__answers a "
                                      "join staging.stg_survey__questionnaires q using (questionnaire_id) "
                                      "where a._batch_date = %s", (night,))}
    touched = landed | {consortium["moved_from"]}
    assert consortium["moved_from"] not in landed  # the planted move is the only reason to rebuild its month
    for relation in ("marts_build.fct_satisfaction_month", "marts_build.fct_satisfaction_stage_dimension_month"):
        after = month_versions(url, relation, "month")
        rebuilt = {month for month, stamps in after.items()
                   if not stamps <= set(consortium["before"][relation].values())}
        assert consortium["moved_from"] in rebuilt and consortium["moved_to"] in rebuilt
        assert rebuilt <= touched
        untouched = set(after) - touched
        assert untouched, "every month was touched: the test would not see a needless rebuild"
        assert not untouched & rebuilt


def test_the_last_night_rewrote_only_the_referral_months_it_matched_again(consortium) -> None:
    url = consortium["url"]
    (night,), = query(url, "select max(matched_on) from intermediate.int_referral__visit_matches")
    matched = {m for m, in query(url, "select distinct date_trunc('month', referred_at)::date "
                                      "from intermediate.int_referral__visit_matches where matched_on = %s", (night,))}
    # every referral whose window is open is matched again, and no referral whose window closed before and
    # whose patient nothing landed for
    (open_windows,), = query(url, "select count(*) from intermediate.int_referral__visit_matches "
                                  "where not is_window_closed and matched_on <> %s", (night,))
    assert open_windows == 0
    relation = "marts_build.fct_channel_month_referrals"
    after = month_versions(url, relation, "month")
    previous = set(consortium["before"][relation].values())
    rebuilt = {month for month, stamps in after.items() if not stamps <= previous}
    assert rebuilt and rebuilt <= matched
    assert set(after) - matched, "every month was matched again: the test would not see a needless rebuild"


def test_the_last_night_rewrote_only_the_vendor_months_whose_figures_changed(consortium) -> None:
    url, planted = consortium["url"], consortium["vendor_corrections"]
    relation = "marts_build.fct_vendor_month_kpis"
    before, after = consortium["vendor_rows"], rows_by_month(url, relation, ("built_on",))
    changed = {month for month in after if before.get(month) != after[month]}
    # the planted corrections fire: the run left one month for the next, the reading went out of range
    assert {planted["lab_from"], planted["lab_to"], planted["reading"]} <= changed
    (excursions,), = query(url, "select count(*) from intermediate.int_vendor__cold_chain_excursions "
                                "where date_trunc('month', started_at) = %s and max_temperature_c > %s",
                           (planted["reading"], MAX_C + 4))
    assert excursions >= 1
    # the months of the readings landed on these nights bound what the cold chain may rebuild
    readings = {m for m, in query(url, "select distinct date_trunc('month', reading_at)::date "
                                       "from raw.vendor__cold_chain_readings where _batch_date >= %s", (NIGHTS[-1],))}
    assert planted["lab_from"] in readings and planted["lab_to"] not in readings
    month_stamps = month_versions(url, relation, "month")
    previous = set(consortium["before"][relation].values())
    rebuilt = {month for month, stamps in month_stamps.items() if not stamps <= previous}
    assert changed <= rebuilt <= changed | readings
    assert set(after) - rebuilt, "every month was rebuilt: the test would not see a needless rebuild"


def test_every_incremental_model_equals_a_full_rebuild(consortium) -> None:
    """After the three nights and the corrections, rebuilding every model from scratch (in one run, with
    the views between them, which a table's rebuild drops) changes no row but the bookkeeping columns."""
    url = consortium["url"]
    projections = {}
    for relation, leave_out in MODELS.items():
        schema, name = relation.split(".")
        (columns,), = query(url, "select string_agg(column_name, ', ' order by ordinal_position) "
                                 "from information_schema.columns where table_schema = %s and table_name = %s "
                                 "and column_name <> all(%s)", (schema, name, list(leave_out)))
        projections[relation] = f"(select {columns} from {relation})"
    incremental = {relation: table_digest(url, projection) for relation, projection in projections.items()}
    assert all(query(url, f"select count(*) > 0 from {relation}")[0][0] for relation in MODELS)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOSPITAL_OPS_VAR_DIR", str(consortium["var_dir"]))
        run_dbt(["run", "--full-refresh", "--select", *(relation.split(".")[1] for relation in MODELS),
                 "stg_referral__his_patient_keys", "int_vendor__month_spine", "int_vendor__cold_chain_excursions"],
                warehouse_url=url, business_date=LAST_NIGHT, label="full rebuild")
    rebuilt = {relation: table_digest(url, projection) for relation, projection in projections.items()}
    assert rebuilt == incremental
