"""Survey platform 满意度/客服: the generator on the simulated HIS, the simulated paged API with injected
faults, the incremental API extractor and landing with the file loader.

One small simulated HIS and the survey records generated on it (module scope); each test starts its own
API simulator over a copy of those records and lands into its own throw-away warehouse. Expected values
are computed from the generated records, never typed in.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import re
from collections import Counter, defaultdict
from contextlib import closing
from datetime import date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import psycopg2
import pytest

from hospital_ops.extract.api import (
    ApiExtractError,
    ApiSettings,
    default_retry,
    endpoint_from_connection,
    extract_api_source,
)
from hospital_ops.extract.scrub import NATIONAL_ID_MARK, PHONE_MARK, scrub
from hospital_ops.extract.sql import load_watermarks, night_cutoff, watermark_overlap
from hospital_ops.load.parsing import pseudonymize
from hospital_ops.sources.survey import SOURCE
from hospital_ops_sim.his import generate_his
from hospital_ops_sim.survey import generate_survey
from hospital_ops_sim.survey_api import Fault, SurveyApiServer
from incremental_nights import landing, run_night

KEY = b"test-key"
TOKEN = "test-token-123"
END = date(2026, 3, 15)
FIRST_NIGHT = END - timedelta(days=1)
HIS_ARGS = {"end": END, "months": 2, "hospitals": 2, "seed": 7, "scale": 0.12, "corrections_per_kind": 1}
SURVEY_ARGS = {"end": END, "months": 2, "vendors": 14, "seed": 5}
PAGE = 100
FAST_RETRY = {"total": 4, "backoff_factor": 0.05}
HOSPITAL_OFFSET = "+08:00"
CLEAR_NUMBER = re.compile(r"\d{17}[\dXx]|1[3-9]\d{9}")


# ------------------------------------------------------------------------------------- helpers


def query(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def local(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp).replace(tzinfo=None)  # the API's offset is the hospital's


def in_window(records: list[dict], night: date, after: date | None = None) -> list[dict]:
    upper = night_cutoff(night)
    lower = night_cutoff(after) if after else None
    return [r for r in records if local(r["updated_at"]) < upper and (lower is None or local(r["updated_at"]) >= lower)]


def raw_keys(url: str, entity: str, night: date) -> list[str]:
    key = SOURCE.entity(entity).business_key[0]
    return [row[0] for row in query(url, f"select {key} from raw.survey__{entity} where _batch_date = %s", (night,))]


def raw_rows(url: str, entity: str, night: date) -> set[tuple]:
    columns = ", ".join(c.raw_name for c in SOURCE.entity(entity).columns)
    return set(query(url, f"select {columns} from raw.survey__{entity} where _batch_date = %s", (night,)))


def night(server: SurveyApiServer, warehouse: str, var_dir: Path, business_date: date, *, keep_landing: bool = False,
          **settings):
    api = ApiSettings(**{"page_size": PAGE, "retries": FAST_RETRY["total"],
                         "backoff_factor": FAST_RETRY["backoff_factor"], **settings})
    return run_night(SOURCE, server.base_url, warehouse, var_dir, business_date, run_id=f"run-{business_date}",
                     key=KEY, token=TOKEN, api=api, keep_landing=keep_landing)


def satisfied_share(records: dict, subject: str, month: str) -> float:
    questionnaires = {q["questionnaire_id"]: q for q in records["questionnaires"]}
    answers = [a for a in records["answers"]
               if (q := questionnaires[a["questionnaire_id"]]) and (q["vendor_id"] or q["department_id"]) == subject
               and q["visit_date"][:7] == month]
    return sum(a["satisfied"] for a in answers) / len(answers)


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def survey(fresh_database, tmp_path_factory) -> SimpleNamespace:
    his_url = fresh_database("survey_his")
    generate_his(his_url, **HIS_ARGS)
    folder = tmp_path_factory.mktemp("survey_records")
    result = generate_survey(his_url, folder / "records.json", **SURVEY_ARGS)
    data = json.loads(result.out_file.read_text(encoding="utf-8"))
    return SimpleNamespace(his_url=his_url, result=result, records=data["records"], scenarios=data["_scenarios"],
                           folder=folder)


@pytest.fixture
def server(survey):
    with SurveyApiServer(copy.deepcopy(survey.records), TOKEN) as api:
        yield api


@pytest.fixture
def warehouse(fresh_database) -> str:
    return fresh_database("survey_wh")


# ------------------------------------------------------------------------------------ generator


def test_generation_is_deterministic_and_plants_its_scenarios(survey) -> None:
    again = generate_survey(survey.his_url, survey.folder / "again.json", **SURVEY_ARGS)
    assert again.out_file.read_bytes() == survey.result.out_file.read_bytes()

    records, scenarios = survey.records, survey.scenarios
    latest = scenarios["department_satisfaction_drop"]["latest_month"]
    months = sorted({q["visit_date"][:7] for q in records["questionnaires"]})
    earlier = [m for m in months if m < latest]
    assert earlier, "the history needs a month before the latest one"
    drop = scenarios["department_satisfaction_drop"]["department_id"]
    assert satisfied_share(records, drop, latest) < 0.75
    assert all(satisfied_share(records, drop, m) > 0.85 for m in earlier)
    assert satisfied_share(records, scenarios["vendor_satisfaction_below_80"]["vendor_id"], latest) < 0.80
    below_70 = scenarios["vendor_satisfaction_below_70"]["vendor_id"]
    assert satisfied_share(records, below_70, latest) < 0.70
    assert all(satisfied_share(records, below_70, m) > 0.85 for m in earlier)
    # the questionnaires point at real HIS departments and patients
    departments = {r[0] for r in query(survey.his_url, "select department_id from his.departments")}
    national_ids = {r[0] for r in query(survey.his_url, "select national_id from his.patients")}
    assert {q["department_id"] for q in records["questionnaires"]} <= departments
    assert {q["patient_national_id"] for q in records["questionnaires"]} <= national_ids
    # the complaint spike: the latest month has several times the department's usual complaints
    spike = scenarios["complaint_spike"]["department_id"]
    per_month = Counter(c["received_at"][:7] for c in records["complaints"] if c["department_id"] == spike)
    assert per_month[latest] >= 2 * max(max(per_month[m] for m in earlier), 1)
    # every planted answer's flag follows the platform's rule
    assert all(a["satisfied"] == (a["score"] >= 4) for a in records["answers"])


def test_scrub_replaces_national_ids_and_phones_only() -> None:
    assert scrub("请回电13812345678谢谢") == f"请回电{PHONE_MARK}谢谢"
    assert scrub("电话 +86 138-1234-5678") == f"电话 {PHONE_MARK}"
    assert scrub("身份证号31011519800101123X") == f"身份证号{NATIONAL_ID_MARK}"
    assert scrub("座机(021)12345678") == f"座机{PHONE_MARK}"
    assert scrub("候诊2小时, 3号窗口, 费用120元") == "候诊2小时, 3号窗口, 费用120元"
    assert scrub(None) is None and scrub("") == ""


# ---------------------------------------------------------------------------------- catch-up night


def test_catch_up_night_lands_every_record_in_the_window(survey, server, warehouse, tmp_path) -> None:
    result = night(server, warehouse, tmp_path, FIRST_NIGHT)

    malformed = survey.scenarios["defects"]["malformed_answer"]["answer_id"]
    for entity in SOURCE.entities:
        expected = in_window(survey.records[entity.name], FIRST_NIGHT)
        key = entity.business_key[0]
        expected_keys = sorted(r[key] for r in expected if r[key] != malformed)
        assert sorted(raw_keys(warehouse, entity.name, FIRST_NIGHT)) == expected_keys, entity.name
        # pagination: every page of `PAGE` records was fetched, and nothing after the night
        assert result.counts["pages"][entity.name] == max(1, -(-len(expected) // PAGE)), entity.name
    assert result.counts["pages"]["answers"] > 2
    # reconciliation: every record read is loaded or quarantined, with the reason
    load = result.load
    assert load["rows_read"] == load["rows_loaded"] + load["rows_quarantined"] == sum(result.counts["rows"].values())
    assert load["rows_quarantined"] == 1
    [(answer_id, reason)] = query(warehouse, "select record->>'answer_id', reason from raw._quarantine "
                                             "where source = 'survey' and batch_date = %s", (FIRST_NIGHT,))
    assert answer_id == malformed and reason == "score: 6 outside plausible range [1, 5]"
    # every request carried the token, and asked for the night's window only
    assert server.requests and {r.authorization for r in server.requests} == {f"Bearer {TOKEN}"}
    assert {r.query["updated_before"] for r in server.requests} == {f"{night_cutoff(FIRST_NIGHT).isoformat()}{HOSPITAL_OFFSET}"}
    assert all("updated_since" not in r.query for r in server.requests)


def test_patient_identifiers_land_pseudonymized_and_timestamps_local(survey, server, warehouse, tmp_path) -> None:
    night(server, warehouse, tmp_path, FIRST_NIGHT)

    expected = {(q["questionnaire_id"], pseudonymize(q["patient_national_id"], KEY), local(q["submitted_at"]))
                for q in in_window(survey.records["questionnaires"], FIRST_NIGHT)}
    landed = set(query(warehouse, "select questionnaire_id, patient_national_id_pseudo, submitted_at "
                                  "from raw.survey__questionnaires"))
    assert landed == expected
    his_ids = {pseudonymize(r[0], KEY) for r in query(survey.his_url, "select national_id from his.patients")}
    assert {row[1] for row in landed} <= his_ids


def test_free_text_is_scrubbed_before_it_reaches_disk(survey, server, warehouse, tmp_path) -> None:
    night(server, warehouse, tmp_path, FIRST_NIGHT, keep_landing=True)

    texts = {"questionnaires": "comment", "complaints": "description", "follow_ups": "note"}
    with_numbers = 0
    for entity, column in texts.items():
        sent = [r[column] for r in in_window(survey.records[entity], FIRST_NIGHT) if r[column]]
        with_numbers += sum(bool(CLEAR_NUMBER.search(text)) for text in sent)
        # the landing file (identifier columns are pseudonymised there too, see test_pii_landing)
        with (landing(tmp_path) / "survey" / FIRST_NIGHT.isoformat() / f"survey_{entity}.csv").open(encoding="utf-8") as f:
            landed_texts = [row[column] for row in csv.DictReader(f)]
        assert not any(CLEAR_NUMBER.search(text) for text in landed_texts), entity
        stored = [r[0] for r in query(warehouse, f"select {column} from raw.survey__{entity} where {column} is not null")]
        assert sorted(stored) == sorted(scrub(text) for text in sent)
    assert with_numbers > 0, "the generator plants comments with phone and ID numbers"


# ------------------------------------------------------------------------------------------ faults


def test_faults_are_retried_deduplicated_or_quarantined(survey, server, warehouse, tmp_path) -> None:
    clean_warehouse_rows = {e.name: in_window(survey.records[e.name], FIRST_NIGHT) for e in SOURCE.entities}
    server.inject(
        Fault("error", entity="questionnaires", status=500),
        Fault("rate_limit", entity="complaints", retry_after=1),
        Fault("slow", entity="follow_ups", delay=1.5),
        Fault("repeat_page", entity="answers", later_pages_only=True),
        Fault("corrupt", entity="window_ratings", field_name="score", bad_value="五星", later_pages_only=True),
    )
    result = night(server, warehouse, tmp_path, FIRST_NIGHT, connect_timeout=2.0, read_timeout=0.5)

    assert all(f.times == 0 for f in server.faults), "every injected fault fired"
    # 500: answered again; 429: retried no sooner than Retry-After said
    statuses = [r.status for r in server.requests_for("questionnaires")]
    assert statuses[:2] == [500, 200]
    limited = server.requests_for("complaints")
    assert limited[0].status == 429 and limited[1].status == 200
    assert limited[1].at - limited[0].at >= 1.0
    # timeout: the slow answer was abandoned and the request repeated
    assert len(server.requests_for("follow_ups")) == result.counts["pages"]["follow_ups"] + 1
    # repeated page: skipped by (id, updated_at), no duplicate row landed
    assert result.counts["duplicates_skipped"] == {"answers": PAGE}
    answer_ids = raw_keys(warehouse, "answers", FIRST_NIGHT)
    assert len(answer_ids) == len(set(answer_ids))
    # corrupted record: quarantined with the reason, nothing lost
    reasons = dict(query(warehouse, "select entity, reason from raw._quarantine where entity = 'window_ratings'"))
    assert reasons == {"window_ratings": "score: '五星' is not a number"}
    for entity in SOURCE.entities:
        landed = len(raw_keys(warehouse, entity.name, FIRST_NIGHT))
        quarantined = query(warehouse, "select count(*) from raw._quarantine where entity = %s", (entity.name,))[0][0]
        assert landed + quarantined == len(clean_warehouse_rows[entity.name]), entity.name


def test_a_source_that_keeps_failing_is_a_clear_error_and_keeps_the_last_folder(server, tmp_path) -> None:
    extract_api_source(SOURCE, server.base_url, TOKEN, tmp_path, FIRST_NIGHT, watermarks={}, page_size=1000,
                       retry=default_retry(**FAST_RETRY))
    folder = tmp_path / "survey" / FIRST_NIGHT.isoformat()
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    server.inject(Fault("error", entity="answers", status=503, times=10))
    with pytest.raises(ApiExtractError, match="still failing after retries"):
        extract_api_source(SOURCE, server.base_url, TOKEN, tmp_path, FIRST_NIGHT, watermarks={}, page_size=1000,
                           retry=default_retry(total=2, backoff_factor=0.01))
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before

    with pytest.raises(ApiExtractError, match="401"):
        extract_api_source(SOURCE, server.base_url, "wrong-token", tmp_path, FIRST_NIGHT, watermarks={},
                           retry=default_retry(**FAST_RETRY))
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


# ------------------------------------------------------------------------------ incremental nights


def test_next_night_fetches_only_changed_records_and_a_rerun_is_idempotent(survey, server, warehouse,
                                                                          tmp_path) -> None:
    night(server, warehouse, tmp_path, FIRST_NIGHT)
    # the platform changes a complaint handled earlier: it moves to feedback on END
    open_complaint = next(c for c in in_window(survey.records["complaints"], FIRST_NIGHT) if c["status"] != "feedback")
    closed_at = datetime.combine(END, datetime.min.time()) + timedelta(hours=10)
    changed = {**open_complaint, "status": "feedback", "feedback_result": "satisfied",
               "handled_at": open_complaint["handled_at"] or open_complaint["received_at"],
               "tracked_at": open_complaint["tracked_at"] or open_complaint["received_at"],
               "feedback_at": f"{closed_at.isoformat()}{HOSPITAL_OFFSET}",
               "updated_at": f"{closed_at.isoformat()}{HOSPITAL_OFFSET}"}
    server.upsert("complaints", [changed])
    with closing(psycopg2.connect(warehouse)) as conn:
        watermarks = load_watermarks(conn, "survey", END)
    server.requests.clear()

    second = night(server, warehouse, tmp_path, END, keep_landing=True)

    for entity in SOURCE.entities:
        current = server.records[entity.name]
        expected = sorted(r[entity.business_key[0]] for r in in_window(current, END, after=FIRST_NIGHT))
        assert sorted(raw_keys(warehouse, entity.name, END)) == expected, entity.name
        # asked from the first night's watermark on, less the look-back overlap
        since = {r.query.get("updated_since") for r in server.requests_for(entity.name)}
        lower = watermarks[entity.name] - watermark_overlap()
        assert since == {f"{lower.isoformat()}{HOSPITAL_OFFSET}"}, entity.name
    assert open_complaint["complaint_id"] in raw_keys(warehouse, "complaints", END)
    latest = query(warehouse, "select distinct on (complaint_id) status from raw.survey__complaints "
                              "where complaint_id = %s order by complaint_id, updated_at desc",
                   (open_complaint["complaint_id"],))
    assert latest == [("feedback",)]
    assert second.counts["rows"]["complaints"] < len(server.records["complaints"])

    # rerun of the second night: the same window (earlier nights' watermark), the same raw rows
    before = {e.name: raw_rows(warehouse, e.name, END) for e in SOURCE.entities}
    files = sorted(p.name for p in (landing(tmp_path) / "survey" / END.isoformat()).iterdir())
    night(server, warehouse, tmp_path, END, keep_landing=True)
    assert {e.name: raw_rows(warehouse, e.name, END) for e in SOURCE.entities} == before
    assert sorted(p.name for p in (landing(tmp_path) / "survey" / END.isoformat()).iterdir()) == files
    with closing(psycopg2.connect(warehouse)) as conn:
        assert load_watermarks(conn, "survey", END) == watermarks  # later nights' marks do not leak back


def test_watermark_moves_only_after_the_load(server, warehouse, tmp_path) -> None:
    with closing(psycopg2.connect(warehouse)) as conn:
        extract_api_source(SOURCE, server.base_url, TOKEN, tmp_path, FIRST_NIGHT, watermarks={},
                           retry=default_retry(**FAST_RETRY))
        assert load_watermarks(conn, "survey", END) == {}  # extracted, not loaded: nothing recorded
    night(server, warehouse, tmp_path, FIRST_NIGHT)
    with closing(psycopg2.connect(warehouse)) as conn:
        marks = load_watermarks(conn, "survey", END)
    stamps = defaultdict(list)
    for entity in SOURCE.entities:
        for record in in_window(server.records[entity.name], FIRST_NIGHT):
            stamps[entity.name].append(local(record["updated_at"]))
    assert marks == {name: max(values) for name, values in stamps.items()}


def test_endpoint_from_an_airflow_connection() -> None:
    assert endpoint_from_connection("survey.example.org", 8443, "https") == "https://survey.example.org:8443"
    assert endpoint_from_connection("127.0.0.1", 8080, None) == "http://127.0.0.1:8080"
    assert endpoint_from_connection("https://svc.example.org/platform/", None, None) == "https://svc.example.org/platform"
    assert endpoint_from_connection(None, None, None) is None


def test_api_settings_come_from_the_environment_or_a_connection_extra(monkeypatch) -> None:
    defaults = ApiSettings()
    for name in ("PAGE_SIZE", "CONNECT_TIMEOUT", "READ_TIMEOUT", "RETRIES", "BACKOFF_FACTOR", "RETRY_AFTER_CAP",
                 "DEADLINE"):
        monkeypatch.delenv(f"SURVEY_API_{name}", raising=False)
    assert ApiSettings.from_env("survey_api") == defaults  # nothing set: the module's constants
    monkeypatch.setenv("SURVEY_API_PAGE_SIZE", str(PAGE))
    monkeypatch.setenv("SURVEY_API_READ_TIMEOUT", str(defaults.read_timeout / 2))
    chosen = ApiSettings.from_env("survey_api")
    assert chosen == dataclasses.replace(defaults, page_size=PAGE, read_timeout=defaults.read_timeout / 2)
    options = chosen.extract_options()
    assert options["page_size"] == PAGE and options["timeout"] == (defaults.connect_timeout, defaults.read_timeout / 2)
    assert options["retry"].total == defaults.retries and options["deadline"] == defaults.deadline
    # a connection's extra: its other keys are not settings and are ignored
    assert ApiSettings.from_mapping({"retries": FAST_RETRY["total"], "verify": True}).retries == FAST_RETRY["total"]
    with pytest.raises(ValueError, match=r"SURVEY_API_\* environment: page_size='ten' is not an integer"):
        monkeypatch.setenv("SURVEY_API_PAGE_SIZE", "ten")
        ApiSettings.from_env("survey_api")
    with pytest.raises(ValueError, match=r"deadline=-1 must be positive"):
        ApiSettings.from_mapping({"deadline": -1})


def test_the_pipeline_steps_extract_and_load_an_api_source(survey, server, warehouse, tmp_path, monkeypatch) -> None:
    from hospital_ops import pipeline

    monkeypatch.setenv("HOSPITAL_OPS_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("HOSPITAL_OPS_PSEUDONYM_KEY", KEY.decode())
    monkeypatch.setenv("SURVEY_API_PAGE_SIZE", str(PAGE))  # the API settings from the environment
    with pytest.raises(pipeline.SourceNotConfigured, match="SURVEY_API_URL"):
        pipeline.extract("survey", warehouse_url=warehouse, business_date=FIRST_NIGHT)

    extracted = pipeline.extract("survey", warehouse_url=warehouse, business_date=FIRST_NIGHT,
                                 source_url=server.base_url, source_token=TOKEN)
    assert {f["entity"] for f in extracted["files"]} == {e.name for e in SOURCE.entities}
    for entity in SOURCE.entities:  # read `PAGE` records a page, as SURVEY_API_PAGE_SIZE says
        expected = in_window(survey.records[entity.name], FIRST_NIGHT)
        assert extracted["counts"]["pages"][entity.name] == max(1, -(-len(expected) // PAGE)), entity.name
    with closing(psycopg2.connect(warehouse)) as conn:
        assert load_watermarks(conn, "survey", END) == {}  # not before the load
    loaded = pipeline.load("survey", extracted, warehouse_url=warehouse, business_date=FIRST_NIGHT, run_id="dag-run")
    assert loaded["rows_read"] == loaded["rows_loaded"] + loaded["rows_quarantined"]
    with closing(psycopg2.connect(warehouse)) as conn:
        marks = load_watermarks(conn, "survey", END)
    assert {k: v.isoformat() for k, v in marks.items()} == extracted["watermarks"]


def test_staging_keeps_the_latest_version_and_carries_the_planted_scenarios(survey, server, warehouse,
                                                                           tmp_path) -> None:
    from hospital_ops.dbt_runner import run_dbt
    from hospital_ops.load.loader import ensure_raw_schema
    from hospital_ops.sources import SOURCES

    night(server, warehouse, tmp_path, FIRST_NIGHT)
    night(server, warehouse, tmp_path, END)
    with closing(psycopg2.connect(warehouse)) as conn:
        ensure_raw_schema(conn, SOURCES["his"])  # the HIS and vendor staging the tests refer to: empty here
        ensure_raw_schema(conn, SOURCES["vendor"])
    run_dbt(["build", "--select", "+path:models/staging/survey", "--indirect-selection", "cautious"],
            warehouse_url=warehouse, business_date=END, label="survey staging")

    records = survey.records
    for entity in SOURCE.entities:
        key = entity.business_key[0]
        expected = {r[key] for r in in_window(records[entity.name], END)}
        if entity.name == "answers":
            expected.discard(survey.scenarios["defects"]["malformed_answer"]["answer_id"])
        assert {r[0] for r in query(warehouse, f"select {key} from staging.stg_survey__{entity.name}")} == expected
    # complaints: one row each, at the furthest step reached by the end of END
    statuses = dict(query(warehouse, "select complaint_id, status from staging.stg_survey__complaints"))
    assert statuses == {c["complaint_id"]: c["status"] for c in in_window(records["complaints"], END)}
    # the planted department drop, as a mart would compute it from staging
    drop = survey.scenarios["department_satisfaction_drop"]
    [(share,)] = query(warehouse, """
        select avg(a.is_satisfied::int) from staging.stg_survey__answers a
        join staging.stg_survey__questionnaires q using (questionnaire_id)
        where q.vendor_id is null and q.department_id = %s and to_char(q.visit_month, 'YYYY-MM') = %s""",
                       (drop["department_id"], drop["latest_month"]))
    assert round(float(share), 4) == drop["satisfied_share_by_month"][drop["latest_month"]]
    # no clear identifier in staging: only pseudonym keys
    columns = {r[0] for r in query(warehouse, "select column_name from information_schema.columns "
                                              "where table_schema = 'staging' and table_name like 'stg_survey__%%'")}
    assert not {c for c in columns if ("national_id" in c or "phone" in c) and not c.endswith("_pseudo")}
    assert "complainant_phone_pseudo" not in columns
