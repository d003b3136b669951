"""End to end: generate a consortium's vendor sources, run the real Airflow DAG for several nights
against a real PostgreSQL, and check every planted scenario yields the right warning, decision or
rating, with expected values recomputed from the generated files. Then plant a gate-breaking defect
and check BI kept exactly what the last good night published."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import Workbook

from hospital_ops.airflow_local import run_night
from hospital_ops.sources.vendor import SOURCE
from nightly_runs import END, NIGHTS, consortium_runs, query, table_digest
from vendor_files import Tables, lab_accuracy, parse_timestamp, read_workbook, report_counts, service_reports

pytestmark = pytest.mark.e2e

HEALTHY_RATINGS = {"AAA", "AA"}


# ----------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def consortium(tmp_path_factory, fresh_database):
    with consortium_runs(tmp_path_factory, fresh_database) as result:
        yield result


@pytest.fixture(scope="module")
def env(consortium):
    return {"url": consortium.url, "var_dir": consortium.var_dir}


@pytest.fixture(scope="module")
def generated(consortium):
    return consortium.generated


@pytest.fixture(scope="module")
def nights(consortium):
    return consortium.runs


@pytest.fixture(scope="module")
def tables(generated) -> Tables:
    return Tables(generated)


@pytest.fixture(scope="module")
def scenarios(generated) -> dict:
    return generated.scenarios


def q(env, sql: str, params: tuple = ()) -> list[tuple]:
    return query(env["url"], sql, params)


def warnings_of(env, vendor_id: str) -> dict[tuple[str, str], dict]:
    rows = q(env, "select rule_id, to_char(period_month, 'YYYY-MM'), colour, observed_value, subject, evidence, status "
                  "from scoring.vendor_risk_warnings where vendor_id = %s and status <> 'resolved'", (vendor_id,))
    return {(r[0], r[1]): {"colour": r[2], "observed": r[3], "subject": r[4], "evidence": r[5]} for r in rows}


def latest_rating(env, vendor_id: str) -> str:
    return q(env, "select credit_rating from scoring.vendor_credit_rating where vendor_id = %s "
                  "order by rating_month desc limit 1", (vendor_id,))[0][0]


def decisions_of(env, vendor_id: str) -> dict[str, str]:
    return dict(q(env, "select rule_id, decision from scoring.vendor_supervision_decisions where vendor_id = %s",
                  (vendor_id,)))


def kpi(env, vendor_id: str, month: str, column: str):
    return q(env, f"select {column} from marts.fct_vendor_month_kpis where vendor_id = %s "
                  "and to_char(month, 'YYYY-MM') = %s", (vendor_id, month))[0][0]


def unrounded(value: float):  # type: ignore[no-untyped-def]
    """A ratio as the marts keep it: full precision, never rounded (docs/definitions.md C6); compared as a
    float, to far below what a round to 4 places would move it."""
    return pytest.approx(value, rel=1e-12, abs=1e-15)




# ------------------------------------------------------------------------------------- the nights


def test_every_night_succeeds(nights) -> None:
    for run in nights:
        assert run.succeeded, f"night {run.business_date} failed: {run.failed_tasks}, see {run.log_file}"


def test_every_table_the_night_builds_or_publishes_has_planner_statistics(env, nights) -> None:
    # reltuples is -1 until a table is first analyzed: dbt's post-hook and the publish step analyze
    # what they write, so the next query is not planned blind while autovacuum has yet to come round
    never_analyzed = q(env, "select n.nspname || '.' || c.relname from pg_class c "
                            "join pg_namespace n on n.oid = c.relnamespace "
                            "where c.relkind = 'r' and c.reltuples < 0 "
                            "and n.nspname in ('staging', 'marts_build', 'scoring_build', 'marts', 'scoring')")
    built = q(env, "select count(*) from information_schema.tables where table_type = 'BASE TABLE' "
                   "and table_schema in ('marts_build', 'scoring_build', 'marts', 'scoring')")[0][0]
    assert built and never_analyzed == []


def test_first_night_catches_up_and_later_nights_are_incremental(env, nights, generated) -> None:
    folders = sorted(p.name for p in (generated.inbox_dir / "vendor").iterdir() if p.is_dir())
    log = {r[0]: r[1:] for r in q(env, "select batch_date, taken_from, watermark::date from raw._watermarks "
                                       "where source = 'vendor' and entity = 'drop_folders'")}
    assert log[NIGHTS[0]] == (date.fromisoformat(folders[0]), NIGHTS[0])
    for night in NIGHTS[1:]:
        assert log[night] == (night, night)


def test_every_source_row_is_loaded_or_quarantined(env, nights, tables) -> None:
    source_rows = sum(len(rows) for rows in tables.rows.values())
    read, loaded, quarantined = q(env, "select sum(rows_read), sum(rows_loaded), sum(rows_quarantined) "
                                       "from raw._load_files")[0]
    assert read == source_rows
    assert read == loaded + quarantined
    in_raw = sum(q(env, f"select count(*) from raw.{e.raw_table}")[0][0] for e in SOURCE.entities)
    assert in_raw == loaded
    assert q(env, "select count(*) from raw._quarantine")[0][0] == quarantined


def test_quarantine_holds_exactly_the_planted_defects(env, nights, scenarios) -> None:
    defects = scenarios["defects"]
    planted = (len(defects["duplicate_rows"]) + len(defects["malformed_rows"]) + len(defects["unknown_vendor_rows"])
               + 1)  # the sensor fault
    rows = q(env, "select source_file, reason from raw._quarantine")
    assert len(rows) == planted
    reasons = {(f, r.split(":")[0]) for f, r in rows}
    sensor = defects["sensor_fault"]
    assert (sensor["file"], "temperature_c") in reasons
    for bad in defects["malformed_rows"]:
        assert (bad["file"], bad["column"]) in reasons
    assert sum(r.startswith("duplicate") for _, r in rows) == len(defects["duplicate_rows"])
    assert sum("unknown vendor_id" in r for _, r in rows) == len(defects["unknown_vendor_rows"])


def test_gbk_registry_lands_with_its_chinese_names(env, nights, tables, scenarios) -> None:
    gbk_file = scenarios["defects"]["gbk_file"]["file"]
    expected = {r["vendor_id"]: r["vendor_name"] for r in tables.rows["registry"] if r["_file"] == gbk_file}
    landed = dict(q(env, "select vendor_id, vendor_name from raw.vendor__registry where _source_file = %s", (gbk_file,)))
    assert landed == expected and any(ord(ch) > 0x4E00 for name in landed.values() for ch in name)


def test_quality_gate_ran_and_passed_every_night(env, nights) -> None:
    results = q(env, "select business_date, bool_and(success), count(*) from dq.validation_results group by 1")
    assert {r[0] for r in results} == set(NIGHTS)
    assert all(r[1] and r[2] > 0 for r in results)


# ------------------------------------------------------------------------------- planted scenarios


def test_delivery_delay_climb_is_flagged_as_rising(env, nights, tables, scenarios) -> None:
    s = scenarios["delivery_delay_climb"]
    for month in s["months"]:
        rows = [r for r in tables.unique("deliveries", s["vendor_id"]) if r["promised_at"].strip()
                and f"{parse_timestamp(r['promised_at']):%Y-%m}" == month]
        late = sum(not r["delivered_at"].strip() or parse_timestamp(r["delivered_at"]) > parse_timestamp(r["promised_at"])
                   for r in rows)
        assert float(kpi(env, s["vendor_id"], month, "delivery_delay_rate")) == unrounded(late / len(rows))
    first, last = (kpi(env, s["vendor_id"], m, "delivery_delay_rate") for m in (s["first_month"], s["last_month"]))
    assert first < Decimal("0.10") and last >= Decimal("0.15")
    assert ("DELIVERY-DELAY-RISING", s["last_month"]) in warnings_of(env, s["vendor_id"])


def test_lab_at_95_to_97_percent_is_yellow_twice_and_in_rectification(env, nights, tables, scenarios) -> None:
    s = scenarios["lab_accuracy_yellow"]
    accuracy = lab_accuracy(tables, s["vendor_id"])
    warned = warnings_of(env, s["vendor_id"])
    for month in s["months"]:
        assert Decimal("0.95") <= Decimal(accuracy[month]) < Decimal("0.97")
        assert float(warned[("LAB-ACCURACY-YELLOW", month)]["observed"]) == unrounded(accuracy[month])
    assert decisions_of(env, s["vendor_id"]) == {"TWO-YELLOWS": "rectification"}


def test_report_delay_of_10_to_20_percent_is_blue(env, nights, tables, scenarios) -> None:
    s = scenarios["report_delay_blue"]
    received, on_time = report_counts(tables, s["vendor_id"])
    delay = 1 - on_time[s["month"]] / received[s["month"]]
    warning = warnings_of(env, s["vendor_id"])[("REPORT-DELAY-BLUE", s["month"])]
    assert warning["colour"] == "blue" and float(warning["observed"]) == unrounded(delay)
    assert Decimal("0.10") <= warning["observed"] < Decimal("0.20")


def test_privacy_leak_is_red_exit_and_rated_c(env, nights, scenarios) -> None:
    s = scenarios["privacy_leak"]
    assert warnings_of(env, s["vendor_id"])[("PRIVACY-LEAK", s["month"])]["colour"] == "red"
    assert decisions_of(env, s["vendor_id"])["EXIT-ON-RED"] == "exit"
    assert latest_rating(env, s["vendor_id"]) == "C"


def test_three_months_below_standard_suspend(env, nights, tables, scenarios) -> None:
    s = scenarios["three_months_below_standard"]
    received, on_time = report_counts(tables, s["vendor_id"])
    for month in s["months"]:
        assert float(kpi(env, s["vendor_id"], month, "report_timeliness")) == unrounded(on_time[month] / received[month])
        assert on_time[month] / received[month] < 0.95
    assert decisions_of(env, s["vendor_id"]).get("SUSPEND-BELOW-STANDARD") == "suspend"


def test_cold_chain_excursion_is_one_event_with_its_evidence(env, nights, tables, scenarios) -> None:
    s = scenarios["cold_chain_excursion"]
    out_of_range = [r for r in tables.unique("cold_chain_readings", s["vendor_id"])
                    if r["device_id"] == s["device_id"] and r["reading_at"].startswith(s["date"])
                    and not 2 <= float(r["temperature_c"]) <= 8]
    events = q(env, "select started_at, readings, max_temperature_c from intermediate.int_vendor__cold_chain_excursions "
                    "where device_id = %s", (s["device_id"],))
    assert len(events) == 1
    started_at, readings, max_temperature = events[0]
    assert readings == len(out_of_range)
    assert max_temperature == max(Decimal(r["temperature_c"]) for r in out_of_range)
    assert started_at == min(parse_timestamp(r["reading_at"]) for r in out_of_range)
    assert ("COLD-CHAIN-EXCURSION", s["month"]) in warnings_of(env, s["vendor_id"])


def test_certificate_expiring_within_30_days(env, nights, scenarios) -> None:
    s = scenarios["certificate_expiring"]
    expires_on = date.fromisoformat(s["expires_on"])
    warning = warnings_of(env, s["vendor_id"])[("CERTIFICATE-EXPIRING", f"{expires_on:%Y-%m}")]
    assert warning["subject"] == s["certificate_no"]
    assert warning["observed"] == (expires_on - END).days <= 30


def test_price_30_percent_above_reference(env, nights, tables, scenarios) -> None:
    s = scenarios["price_above_reference"]
    in_force = max((r for r in tables.rows["price_list"] if r["vendor_id"] == s["vendor_id"]
                    and r["item_code"] == s["item_code"]), key=lambda r: (r["effective_from"], r["_day"]))
    unit, reference = Decimal(in_force["unit_price_cny"]), Decimal(in_force["reference_price_cny"])
    warnings = {k: v for k, v in warnings_of(env, s["vendor_id"]).items() if k[0] == "PRICE-ABOVE-REFERENCE"}
    assert len(warnings) == 1
    (warning,) = warnings.values()
    assert warning["subject"] == s["item_code"]
    assert float(warning["observed"]) == unrounded(float((unit - reference) / reference))
    assert warning["observed"] >= Decimal("0.2")


def test_volume_surge_while_timeliness_falls(env, nights, tables, scenarios) -> None:
    s = scenarios["volume_surge_timeliness_drop"]
    reports = service_reports(tables, s["vendor_id"])
    now, before = int(reports[s["month"]]["service_volume"]), int(reports[s["previous_month"]]["service_volume"])
    warning = warnings_of(env, s["vendor_id"])[("VOLUME-SURGE-TIMELINESS-DROP", s["month"])]
    assert float(warning["observed"]) == unrounded((now - before) / before)


def test_monthly_satisfaction_below_80_percent_asks_for_rectification(env, nights, tables, scenarios) -> None:
    s = scenarios["satisfaction_low"]
    report = service_reports(tables, s["vendor_id"])[s["month"]]
    satisfaction = int(report["patients_satisfied"]) / int(report["patients_surveyed"])
    warning = warnings_of(env, s["vendor_id"])[("SATISFACTION-LOW", s["month"])]
    assert float(warning["observed"]) == unrounded(satisfaction) and 0.70 <= satisfaction < 0.80


def test_related_party_is_flagged_from_its_declaration(env, nights, scenarios) -> None:
    s = scenarios["related_party"]
    assert ("RELATED-PARTY", s["declared_from"][:7]) in warnings_of(env, s["vendor_id"])


def test_corrected_report_resent_next_night_replaces_the_first(env, nights, tables, scenarios) -> None:
    s = scenarios["corrected_report"]
    header, rows, _ = read_workbook(Path(tables.result.inbox_dir) / s["revision_2"]["file"])
    corrected = dict(zip(header, rows[0], strict=True))
    assert kpi(env, s["vendor_id"], s["month"], "complaints") == int(corrected["complaints_received"])
    assert kpi(env, s["vendor_id"], s["month"], "service_report_revision") == int(corrected["revision"]) == 2


def test_healthy_vendors_stay_healthy(env, nights, scenarios) -> None:
    planted = {s["vendor_id"] for name, s in scenarios.items() if name != "defects"}
    healthy = [v for (v,) in q(env, "select vendor_id from marts.dim_vendors") if v not in planted]
    assert healthy, "the generator made no healthy vendor"
    for vendor_id in healthy:
        assert not [k for k, w in warnings_of(env, vendor_id).items() if w["colour"] != "blue"], vendor_id
        assert latest_rating(env, vendor_id) in HEALTHY_RATINGS


def test_every_warning_carries_its_evidence(env, nights) -> None:
    # the evidence as text, its numbers read exactly (jsonb keeps numeric's every digit; a float would not)
    for rule_id, evidence_text, observed, lower, upper in q(
            env, "select rule_id, evidence::text, observed_value, lower_bound, upper_bound "
                 "from scoring.vendor_risk_warnings"):
        evidence = json.loads(evidence_text, parse_float=Decimal)
        assert evidence["rule_id"] == rule_id
        assert Decimal(str(evidence["observed_value"])) == observed
        assert (lower is None or observed >= lower) and (upper is None or observed < upper)


def test_vendor_supervision_report_shows_each_vendors_rating_open_warnings_and_decisions(env, nights,
                                                                                          scenarios) -> None:
    from collections import Counter

    report = {r[0]: r[1:] for r in q(env, "select vendor_id, credit_rating, rating_month, open_red_warnings, "
                                          "open_yellow_warnings, open_blue_warnings, decisions "
                                          "from marts.rpt_vendor_supervision")}
    assert set(report) == {v for v, in q(env, "select vendor_id from marts.dim_vendors")}
    open_warnings = Counter(q(env, "select vendor_id, colour from scoring.vendor_risk_warnings where status <> 'resolved'"))
    ratings: dict[str, tuple] = {}
    for vendor, month, rating in q(env, "select vendor_id, rating_month, credit_rating from scoring.vendor_credit_rating "
                                        "order by rating_month"):
        ratings[vendor] = (rating, month)
    for vendor, (rating, month, red, yellow, blue, _decisions) in report.items():
        assert (rating, month) == ratings.get(vendor, (None, None)), vendor
        assert (red, yellow, blue) == tuple(open_warnings[(vendor, colour)] for colour in ("red", "yellow", "blue"))
    assert sum(r[3] for r in report.values()) > 0, "the planted privacy leak is a red warning"
    privacy_leak = report[scenarios["privacy_leak"]["vendor_id"]]
    assert privacy_leak[0] == "C" and "exit (EXIT-ON-RED" in privacy_leak[5]


# -------------------------------------------------------------------------- identity, reruns, gate


def test_warnings_keep_their_identity_across_nights(env, nights) -> None:
    (total, distinct, first_seen, last_seen), = q(
        env, "select count(*), count(distinct warning_id), min(first_seen_on), max(last_seen_on) "
             "from scoring.vendor_risk_warnings")
    assert total == distinct
    assert first_seen == NIGHTS[0] and last_seen == NIGHTS[-1]


def test_rerunning_a_night_changes_nothing(env, nights) -> None:
    relations = ["scoring.vendor_risk_warnings", "scoring.vendor_credit_rating", "marts.fct_vendor_month_kpis"]
    before = {r: table_digest(env['url'], r) for r in relations}
    raw_before = q(env, "select count(*) from raw.vendor__deliveries")
    assert run_night(END, env["url"]).succeeded
    assert {r: table_digest(env['url'], r) for r in relations} == before
    assert q(env, "select count(*) from raw.vendor__deliveries") == raw_before


def test_supervisors_acknowledge_and_resolve_warnings_without_editing_history(env, nights) -> None:
    from hospital_ops.vendor_warnings import WarningActionError, list_warnings, record_action

    first, second = [w["warning_id"] for w in list_warnings(env["url"]) if w["colour"] == "blue"][:2]
    record_action(env["url"], first, "acknowledge", actor="运营管理部 王主任", note="rectification report requested")
    record_action(env["url"], second, "resolve", actor="运营管理部 王主任", note="on-site inspection passed")
    with pytest.raises(WarningActionError, match="no published warning"):
        record_action(env["url"], "no-such-warning", "acknowledge", actor="x", note="y")

    assert run_night(END, env["url"]).succeeded
    status = dict(q(env, "select warning_id, status || '/' || coalesce(resolution, '-') "
                         "from scoring.vendor_risk_warnings where warning_id in (%s, %s)", (first, second)))
    assert status == {first: "acknowledged/-", second: "resolved/closed_by_supervisor"}
    assert q(env, "select count(*) from ops.warning_actions")[0][0] == 2


def test_a_gate_breaking_night_leaves_bi_as_it_was(env, nights, generated) -> None:
    published = [f"{s}.{t}" for s, t in q(env, "select table_schema, table_name from information_schema.tables "
                                              "where table_schema in ('marts', 'scoring')")]
    before = {r: table_digest(env['url'], r) for r in published}
    night = END + timedelta(days=1)
    bad = generated.inbox_dir / "vendor" / night.isoformat() / "service_report_V001_2026-11.xlsx"
    bad.parent.mkdir(parents=True)
    columns = [c.name for c in SOURCE.entity("service_reports").columns]
    # the same report (vendor, period, revision) twice in one workbook with different figures: each row is
    # fine on its own (the loader takes both), the batch is not (the gate's key check)
    values = {"vendor_id": "V001", "period": "2026-11", "revision": 1, "submitted_on": night.isoformat(),
              "service_volume": 100, "complaints_received": 0, "patients_surveyed": 10, "patients_satisfied": 9}
    book = Workbook()
    sheet = book.active
    sheet.title = SOURCE.entity("service_reports").sheet
    sheet.append(columns)
    sheet.append([values[c] for c in columns])
    sheet.append([{**values, "service_volume": 180}[c] for c in columns])
    book.save(bad)

    run = run_night(night, env["url"])
    assert not run.succeeded
    assert run.failed_tasks == ["quality_gate"]
    assert {r: table_digest(env['url'], r) for r in published} == before
    failed = q(env, "select suite, expectation_type from dq.validation_results "
                    "where business_date = %s and not success", (night,))
    assert ("raw.vendor__service_reports", "expect_compound_columns_to_be_unique") in failed
    assert q(env, "select source, entity from raw._held_batches where batch_date = %s", (night,)) == [
        ("vendor", "service_reports")]

    bad.unlink()  # the vendor re-sends a correct report: the rerun of the night goes through
    assert run_night(night, env["url"]).succeeded
    assert q(env, "select count(*) from raw._held_batches") == [(0,)]
