"""Survey and referral marts end to end: a simulated HIS, the vendor source, the survey platform (served
by its API simulator) and the referral exports, the real DAG for two nights, then the satisfaction,
complaint and channel marts checked against figures computed from the generated records, the planted
scenarios checked for their alerts and warnings, and a rerun of the last night checked for stable ids."""

from __future__ import annotations

import json
import secrets
from collections import defaultdict
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest

from hospital_ops.airflow_local import run_night
from hospital_ops_sim.his import create_his_database, generate_his
from hospital_ops_sim.referral import _Builder as ReferralBuilder
from hospital_ops_sim.referral import converts, generate_referral, quarter_of, read_his_encounters
from hospital_ops_sim.survey import generate_survey
from hospital_ops_sim.survey_api import SurveyApiServer
from hospital_ops_sim.vendor import generate_vendor_source
from nightly_runs import query

pytestmark = pytest.mark.e2e

END = date(2026, 11, 22)
NIGHTS = [END - timedelta(days=1), END]
MONTHS, VENDORS, SEED = 4, 13, 11
CUTOFF = datetime.combine(END + timedelta(days=1), time())


@pytest.fixture(scope="module")
def consortium(tmp_path_factory, fresh_database):
    var_dir = tmp_path_factory.mktemp("var")
    inbox = var_dir / "inbox"
    url, his_url = fresh_database("survey_e2e"), fresh_database("survey_his")
    create_his_database(his_url)
    generate_his(his_url, end=END, months=MONTHS, hospitals=2, scale=0.6, seed=SEED)
    vendor = generate_vendor_source(inbox, end=END, months=MONTHS, vendors=VENDORS, hospitals=2, seed=SEED)
    survey = generate_survey(his_url, var_dir / "survey_platform.json", end=END, months=MONTHS, vendors=VENDORS,
                             seed=SEED)
    referral = generate_referral(his_url, inbox, end=END, months=MONTHS, seed=SEED)
    token = secrets.token_urlsafe(16)
    with pytest.MonkeyPatch.context() as patch, SurveyApiServer.from_file(survey.out_file, token) as server:
        patch.setenv("HOSPITAL_OPS_VAR_DIR", str(var_dir))
        patch.setenv("HOSPITAL_OPS_INBOX", str(inbox))
        patch.setenv("WAREHOUSE_URL", url)
        patch.setenv("HIS_URL", his_url)
        patch.setenv("SURVEY_API_URL", server.base_url)
        patch.setenv("SURVEY_API_TOKEN", token)
        runs = [run_night(night, url) for night in NIGHTS]
        records = json.loads(survey.out_file.read_text(encoding="utf-8"))
        yield {"url": url, "his_url": his_url, "runs": runs, "vendor": vendor, "survey": survey,
               "records": records["records"], "referral": referral, "patch": patch}


def q(consortium, sql: str, params: tuple = ()) -> list[tuple]:
    return query(consortium["url"], sql, params)


def ratio(numerator: int, denominator: int) -> Decimal:
    """A ratio rounded half away from zero to 4 places, as the survey generator plants its shares."""
    return (Decimal(numerator) / Decimal(denominator)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def unrounded(numerator: int, denominator: int):  # type: ignore[no-untyped-def]
    """A ratio as the marts keep it (macro safe_ratio): full precision, never rounded (docs/definitions.md
    C6). PostgreSQL's numeric division keeps at least 16 significant digits: compared far below what a
    round to 4 places would move it."""
    return pytest.approx(Decimal(numerator) / Decimal(denominator), rel=Decimal("1e-14"), abs=Decimal("1e-18"))


def month_of(text: str) -> date:
    return date.fromisoformat(text[:7] + "-01")


def min_sample(consortium) -> int:
    (value,), = q(consortium, "select distinct min_sample from marts.fct_satisfaction_month")
    return value


def department_answers(consortium) -> dict[tuple[str, date], dict]:
    """Per department and visit month, from the generated records: questionnaires, answers, satisfied
    answers (score >= 4, the platform's and the default rule), outpatient and inpatient questionnaires
    only; the answer the loader quarantines (score out of range) left out."""
    records = consortium["records"]
    malformed = consortium["survey"].scenarios["defects"]["malformed_answer"]["answer_id"]
    questionnaires = {r["questionnaire_id"]: r for r in records["questionnaires"]
                      if r["questionnaire_type"] in ("outpatient", "inpatient")}
    cells: dict[tuple[str, date], dict] = defaultdict(lambda: {"questionnaires": set(), "answers": 0, "satisfied": 0})
    for answer in records["answers"]:
        questionnaire = questionnaires.get(answer["questionnaire_id"])
        if questionnaire is None or answer["answer_id"] == malformed:
            continue
        cell = cells[(questionnaire["department_id"], month_of(questionnaire["visit_date"]))]
        cell["questionnaires"].add(answer["questionnaire_id"])
        cell["answers"] += 1
        cell["satisfied"] += answer["score"] >= 4
    return cells


# ------------------------------------------------------------------------------------ the nights


def test_both_nights_succeed(consortium) -> None:
    for run in consortium["runs"]:
        assert run.succeeded, f"night {run.business_date} failed: {run.failed_tasks}, see {run.log_file}"


# ---------------------------------------------------------------------------------- satisfaction


def test_satisfaction_rates_and_samples_equal_the_generated_answers(consortium) -> None:
    expected = department_answers(consortium)
    actual = {(r[0], r[1]): r[2:] for r in q(consortium, "select department_id, month, questionnaires, answers, "
                                                         "satisfied_answers, satisfaction_rate "
                                                         "from marts.fct_satisfaction_month")}
    assert expected and actual.keys() == expected.keys()
    for key, cell in expected.items():
        assert actual[key] == (len(cell["questionnaires"]), cell["answers"], cell["satisfied"],
                               unrounded(cell["satisfied"], cell["answers"])), key
    kpis = {(r[0], r[1]): r[2:] for r in q(consortium, "select department_id, month, satisfaction_rate, "
                                                       "satisfaction_questionnaires from marts.fct_department_month_kpis")}
    for key, cell in expected.items():
        assert kpis[key] == (unrounded(cell["satisfied"], cell["answers"]), len(cell["questionnaires"])), key


def test_a_department_month_below_the_minimum_sample_has_no_rank(consortium) -> None:
    minimum = min_sample(consortium)
    expected = department_answers(consortium)
    small = {k for k, cell in expected.items() if len(cell["questionnaires"]) < minimum}
    large = {k for k, cell in expected.items() if len(cell["questionnaires"]) >= minimum}
    assert small and large, "the generated survey should have department-months on both sides of the minimum"
    ranks = {(r[0], r[1]): r[2] for r in q(consortium, "select department_id, month, satisfaction_rank "
                                                       "from marts.fct_department_month_kpis")}
    assert all(ranks[k] is None for k in small)
    assert all(ranks[k] is not None for k in large)
    for month in {m for _, m in large}:  # ranks run over the departments that meet the minimum, best first
        ranked = sorted((k for k in large if k[1] == month), key=lambda k: ranks[k])
        rates = [Decimal(expected[k]["satisfied"]) / expected[k]["answers"] for k in ranked]
        assert rates == sorted(rates, reverse=True) and ranks[ranked[0]] == 1


def test_complaints_per_10k_visits_follow_the_complaints_and_the_his_visits(consortium) -> None:
    complaints: dict[tuple[str, date], int] = defaultdict(int)
    for record in consortium["records"]["complaints"]:
        if record["vendor_id"] is None:
            complaints[(record["department_id"], month_of(record["received_at"]))] += 1
    visits: dict[tuple[str, date], int] = defaultdict(int)
    for department, month, n in query(consortium["his_url"], """
            select department_id, date_trunc('month', at)::date, count(*) from (
                select department_id, visit_at as at from his.outpatient_visits where updated_at < %(cutoff)s
                union all
                select department_id, admitted_at from his.inpatient_stays where updated_at < %(cutoff)s) e
            group by 1, 2""", {"cutoff": CUTOFF}):
        visits[(department, month)] = n
    rows = q(consortium, "select department_id, month, complaints, visits, complaints_per_10k_visits "
                         "from marts.fct_complaints_month")
    assert sum(r[2] for r in rows) == sum(complaints.values()) > 0
    for department, month, count, visit_count, per_10k in rows:
        assert (count, visit_count) == (complaints[(department, month)], visits[(department, month)])
        expected = None if not visit_count else unrounded(10000 * count, visit_count)
        assert per_10k == expected, (department, month)
    kpis = {(r[0], r[1]): r[2] for r in q(consortium, "select department_id, month, complaints_per_10k_visits "
                                                            "from marts.fct_department_month_kpis")}
    assert all(kpis[(r[0], r[1])] == r[4] for r in rows)


# --------------------------------------------------------------------------------------- channels


def expected_channel_quarters(consortium) -> dict[tuple[str, str], dict[str, int]]:
    """The generator's own classification per channel and quarter (its `converts` rule on its own
    referrals), less the referrals the loader quarantines (unknown channel, unreadable referred_at).
    A national ID that several HIS patient records share is matched, as in stg_referral__referral_visits,
    to the lowest patient id; the generator classified by the record it picked, so only referrals of
    such shared IDs may differ from its counts (checked here)."""
    referral = consortium["referral"]
    his = read_his_encounters(consortium["his_url"])
    builder = ReferralBuilder(SEED, his, referral.start, END, referral.scenarios["window_days"])
    builder.plan_referrals()
    planted = {f"{c}|{quarter}": dict(counts) for (c, quarter), counts in builder.outcomes.items()}
    assert planted == referral.scenarios["outcomes"]  # the same generator run, replayed
    defects = referral.scenarios["defects"]
    dropped = set(defects["unknown_channel"]) | set(defects["bad_referred_at"])
    patients = {national_id: patient_id for patient_id, (national_id, _) in sorted(his.patients.items(), reverse=True)}
    records_per_id: dict[str, int] = defaultdict(int)
    for national_id, _ in his.patients.values():
        records_per_id[national_id] += 1
    window = timedelta(days=referral.scenarios["window_days"])
    expected: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    closed_by = datetime.combine(END + timedelta(days=1), time())
    for rows in builder.referrals.values():
        for row in rows:
            referred_at = datetime.fromisoformat(row["referred_at"])
            times = his.times_by_patient.get(patients.get(row["patient_national_id"]), [])
            converted = converts(times, referred_at, window.days)
            key = (row["channel_id"], quarter_of(referred_at.date()))
            expected[key]["planted_converted"] += converted
            expected[key]["shared_id"] += records_per_id[row["patient_national_id"]] > 1
            if row["referral_id"] in dropped:
                continue
            expected[key]["referrals"] += 1
            expected[key]["converted"] += converted
            expected[key]["evaluable"] += converted or referred_at + window <= closed_by
    for (channel, quarter), counts in expected.items():  # the replayed rule is the generator's
        planted_converted = referral.scenarios["outcomes"][f"{channel}|{quarter}"].get("converted", 0)
        assert abs(counts["planted_converted"] - planted_converted) <= counts["shared_id"], (channel, quarter)
    return expected


def test_channel_conversion_per_quarter_is_the_generators_classification(consortium) -> None:
    expected = expected_channel_quarters(consortium)
    actual = {(r[0], r[1]): r[2:] for r in q(consortium, "select channel_id, quarter_label, referrals, "
                                                         "referrals_converted, referrals_evaluable, conversion_rate "
                                                         "from marts.fct_channel_quarter_kpis")}
    assert actual.keys() == expected.keys()
    for key, counts in expected.items():
        assert actual[key] == (counts["referrals"], counts["converted"], counts["evaluable"],
                               unrounded(counts["converted"], counts["evaluable"])), key
    monthly = q(consortium, "select channel_id, sum(referrals), sum(referrals_converted) "
                            "from marts.fct_channel_month_referrals group by 1")
    for channel, referrals, converted in monthly:
        assert (referrals, converted) == (sum(c["referrals"] for (ch, _), c in expected.items() if ch == channel),
                                          sum(c["converted"] for (ch, _), c in expected.items() if ch == channel))


def test_the_low_converting_channel_grades_below_the_others(consortium) -> None:
    low = consortium["referral"].scenarios["low_conversion"]["channel_id"]
    rows = q(consortium, "select channel_id, annual_score from scoring.channel_annual_ratings")
    scores = dict(rows)
    assert scores[low] == min(scores.values())


# ----------------------------------------------------------------------------------------- alerts


def alerts(consortium, alert_type: str) -> dict[tuple[str, str], dict]:
    rows = q(consortium, "select subject_id, period_label, alert_id, status, observed_value, evidence "
                         "from scoring.service_quality_alerts where alert_type = %s", (alert_type,))
    return {(r[0], r[1]): {"id": r[2], "status": r[3], "observed": r[4], "evidence": r[5]} for r in rows}


def test_the_planted_satisfaction_drop_raises_its_alert(consortium) -> None:
    s = consortium["survey"].scenarios["department_satisfaction_drop"]
    cell = department_answers(consortium)[(s["department_id"], month_of(s["latest_month"]))]
    alert = alerts(consortium, "satisfaction_drop")[(s["department_id"], s["latest_month"])]
    assert alert["status"] == "open"
    assert alert["observed"] == unrounded(cell["satisfied"], cell["answers"])
    assert Decimal(str(alert["evidence"]["drop_points"])) > Decimal(str(alert["evidence"]["drop_points_threshold"]))
    assert alert["evidence"]["questionnaires"] >= alert["evidence"]["min_sample"]


def test_the_planted_complaint_spike_raises_its_alert(consortium) -> None:
    s = consortium["survey"].scenarios["complaint_spike"]
    alert = alerts(consortium, "complaint_spike")[(s["department_id"], s["latest_month"])]
    assert alert["observed"] == s["complaints_by_month"][s["latest_month"]]
    evidence = alert["evidence"]
    assert alert["observed"] > Decimal(str(evidence["factor"])) * Decimal(str(evidence["trailing_mean"]))


def test_the_planted_conversion_drop_downgrades_its_channel(consortium) -> None:
    scenarios = consortium["referral"].scenarios
    channel, latest = scenarios["conversion_drop"]["channel_id"], scenarios["latest_quarter"]
    alert = alerts(consortium, "channel_downgrade")[(channel, latest)]
    assert alert["status"] == "open"
    (grade, previous), = q(consortium, "select grade_rank, previous_grade_rank from scoring.channel_quarter_grades "
                                       "where channel_id = %s and quarter_label = %s", (channel, latest))
    assert grade > previous
    assert alert["evidence"]["previous_grade"] != alert["evidence"]["grade"]


def vendor_warnings(consortium, vendor_id: str) -> dict[tuple[str, str], dict]:
    rows = q(consortium, "select rule_id, to_char(period_month, 'YYYY-MM'), observed_value, evidence "
                         "from scoring.vendor_risk_warnings where vendor_id = %s and status <> 'resolved'", (vendor_id,))
    return {(r[0], r[1]): {"observed": r[2], "evidence": r[3]} for r in rows}


@pytest.mark.parametrize(("scenario", "rule"), [("vendor_satisfaction_below_80", "SATISFACTION-LOW"),
                                                 ("vendor_satisfaction_below_70", "SATISFACTION-VERY-LOW")])
def test_vendor_survey_satisfaction_raises_the_satisfaction_rules(consortium, scenario, rule) -> None:
    s = consortium["survey"].scenarios[scenario]
    records = consortium["records"]
    vendor_questionnaires = {r["questionnaire_id"] for r in records["questionnaires"]
                             if r["vendor_id"] == s["vendor_id"] and r["visit_date"][:7] == s["latest_month"]}
    scores = [a["score"] for a in records["answers"] if a["questionnaire_id"] in vendor_questionnaires]
    measured = ratio(sum(score >= 4 for score in scores), len(scores))
    assert measured == Decimal(str(s["satisfied_share_by_month"][s["latest_month"]]))
    warning = vendor_warnings(consortium, s["vendor_id"])[(rule, s["latest_month"])]
    assert warning["observed"] == unrounded(sum(score >= 4 for score in scores), len(scores))
    assert warning["evidence"]["basis"] == "hospital_survey"
    assert warning["evidence"]["denominator"] == len(scores)
    (declared,), = q(consortium, "select self_reported_satisfaction_rate from marts.fct_vendor_month_kpis "
                                 "where vendor_id = %s and to_char(month, 'YYYY-MM') = %s",
                     (s["vendor_id"], s["latest_month"]))
    assert warning["evidence"]["self_reported_satisfaction_rate"] == float(declared)


def test_published_survey_marts_hold_no_patient_key(consortium) -> None:
    columns = q(consortium, "select table_name, column_name from information_schema.columns "
                            "where table_schema in ('marts', 'scoring') and column_name like '%%pseudo%%'")
    assert columns == []


def test_alert_ids_are_stable_across_a_rerun_of_the_night(consortium) -> None:
    before = {r[0]: r[1:] for r in q(consortium, "select alert_id, first_seen_on, status "
                                                 "from scoring.service_quality_alerts")}
    assert before
    assert run_night(END, consortium["url"]).succeeded
    after = {r[0]: r[1:] for r in q(consortium, "select alert_id, first_seen_on, status "
                                                "from scoring.service_quality_alerts")}
    assert after == before
