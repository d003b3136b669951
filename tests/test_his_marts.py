"""HIS and insurance end to end: a simulated HIS and its insurance settlements, the real DAG for two
nights, and the department ledger, KPIs, CMI and DRG profit/loss checked against values computed
straight from the source database — then a late correction, and a scan of every published column
for personal identifiers."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest

from hospital_ops.airflow_local import run_night
from hospital_ops.dbt_runner import run_dbt
from hospital_ops_sim.his import apply_late_corrections, create_his_database, generate_his
from hospital_ops_sim.insurance import generate_insurance
from nightly_runs import query, table_digest

pytestmark = pytest.mark.e2e

END = date(2026, 11, 22)
NIGHTS = [END - timedelta(days=1), END]
CUTOFF = datetime.combine(END + timedelta(days=1), time())  # what the nightly extract has seen


@pytest.fixture(scope="module")
def consortium(tmp_path_factory, fresh_database):
    var_dir = tmp_path_factory.mktemp("var")
    url, his_url = fresh_database("his_e2e"), fresh_database("his_src")
    create_his_database(his_url)
    his = generate_his(his_url, end=END, months=3, hospitals=2, scale=0.2, seed=11)
    insurance = generate_insurance(his_url, var_dir / "inbox", end=END, seed=11)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOSPITAL_OPS_VAR_DIR", str(var_dir))
        patch.setenv("HOSPITAL_OPS_INBOX", str(var_dir / "inbox"))
        patch.setenv("WAREHOUSE_URL", url)
        patch.setenv("HIS_URL", his_url)
        runs = [run_night(night, url) for night in NIGHTS]
        yield {"url": url, "var_dir": var_dir, "his_url": his_url, "his": his, "insurance": insurance, "runs": runs}


def unrounded(stored: Decimal | None, numerator, denominator) -> bool:
    """A mart keeps a ratio at full precision (rounding is for presentation only): the stored value is
    the quotient to PostgreSQL's numeric division precision (at least 16 significant digits), far inside
    what a round to 4 places (up to 0.00005 off) would move it."""
    exact = Decimal(numerator) / Decimal(denominator)
    return stored is not None and abs(stored - exact) <= Decimal("1e-12") * max(1, abs(exact))


def source(consortium, sql: str, params: tuple = ()) -> list[tuple]:
    """Ask the simulated HIS itself (schema his), limited to what the nightly extract could see."""
    return query(consortium["his_url"], sql, params)


def ledger(consortium, columns: str) -> dict[tuple[str, date], tuple]:
    rows = query(consortium["url"], f"select department_id, month, {columns} from marts.fct_department_month_ledger")
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


def test_both_nights_succeed(consortium) -> None:
    for run in consortium["runs"]:
        assert run.succeeded, f"night {run.business_date} failed: {run.failed_tasks}, see {run.log_file}"


def test_ledger_visits_and_revenue_equal_the_his(consortium) -> None:
    expected: dict[tuple[str, date], list] = defaultdict(lambda: [0, Decimal(0), Decimal(0)])
    for dept, month, visits in source(consortium, "select department_id, date_trunc('month', visit_at)::date, count(*) "
                                                  "from his.outpatient_visits where updated_at < %s group by 1, 2",
                                      (CUTOFF,)):
        expected[(dept, month)][0] = visits
    for dept, month, total, drug in source(
            consortium, "select department_id, date_trunc('month', charged_at)::date, sum(amount_cny), "
                        "coalesce(sum(amount_cny) filter (where category = 'drug'), 0) "
                        "from his.charges where updated_at < %s group by 1, 2", (CUTOFF,)):
        expected[(dept, month)][1:] = [total, drug]
    actual = ledger(consortium, "outpatient_visits, revenue_total_cny, revenue_drug_cny")
    assert expected, "the simulated HIS produced no activity"
    for key, (visits, total, drug) in expected.items():
        assert actual[key] == (visits, total, drug), key
    assert sum(v[1] for v in actual.values()) == sum(v[1] for v in expected.values())


def test_alos_and_mortality_equal_the_his(consortium) -> None:
    rows = source(consortium, "select department_id, date_trunc('month', discharged_at)::date, count(*), "
                              "sum(greatest(discharged_at::date - admitted_at::date, 1)), "
                              "count(*) filter (where discharge_disposition = 'death') from his.inpatient_stays "
                              "where discharged_at is not null and updated_at < %s group by 1, 2", (CUTOFF,))
    alos = ledger(consortium, "discharges, average_length_of_stay")
    mortality = {(r[0], r[1]): r[2] for r in query(consortium["url"], "select department_id, month, mortality_rate "
                                                                     "from marts.fct_department_month_kpis")}
    for dept, month, discharges, days, deaths in rows:
        assert alos[(dept, month)][0] == discharges
        assert unrounded(alos[(dept, month)][1], days, discharges), (dept, month)
        assert unrounded(mortality[(dept, month)], deaths, discharges), (dept, month)


def test_the_hospital_ledger_sums_its_departments_and_recomputes_ratios(consortium) -> None:
    rows = source(consortium, "select d.hospital_id, date_trunc('month', s.discharged_at)::date, count(*), "
                              "sum(greatest(s.discharged_at::date - s.admitted_at::date, 1)) "
                              "from his.inpatient_stays s join his.departments d using (department_id) "
                              "where s.discharged_at is not null and s.updated_at < %s group by 1, 2", (CUTOFF,))
    revenue = {(h, m): total for h, m, total in source(
        consortium, "select d.hospital_id, date_trunc('month', c.charged_at)::date, sum(c.amount_cny) "
                    "from his.charges c join his.departments d using (department_id) where c.updated_at < %s "
                    "group by 1, 2", (CUTOFF,))}
    hospital = {(r[0], r[1]): r[2:] for r in query(
        consortium["url"], "select hospital_id, month, discharges, average_length_of_stay, revenue_total_cny "
                           "from marts.fct_hospital_month_ledger")}
    assert rows and len({h for h, _ in hospital}) == len({r[0] for r in rows})
    for hospital_id, month, discharges, days in rows:
        # ALOS from the hospital's own discharges, not an average of its departments' ALOS
        assert hospital[(hospital_id, month)][0] == discharges
        assert unrounded(hospital[(hospital_id, month)][1], days, discharges)
    for key, total in revenue.items():
        assert hospital[key][2] == total


def test_cmi_and_drg_profit_follow_the_settlements(consortium) -> None:
    stays = dict(source(consortium, "select stay_id, department_id from his.inpatient_stays where updated_at < %s",
                        (CUTOFF,)))
    settlements = query(consortium["url"], "select stay_id, drg_code, discharge_date, relative_weight, "
                                           "insurer_payment_cny + patient_copay_cny - case_cost_cny "
                                           "from staging.stg_insurance__settlements")
    rw: dict[tuple, list] = defaultdict(list)
    profit: dict[tuple, Decimal] = defaultdict(Decimal)
    for stay_id, drg, discharged, weight, gain in settlements:
        if stay_id in stays:
            month = discharged.replace(day=1)
            rw[(stays[stay_id], month)].append(weight)
            profit[(stays[stay_id], drg, month)] += gain
    assert rw, "no settlement joined the HIS"
    cmi = {(r[0], r[1]): r[2] for r in query(consortium["url"], "select department_id, month, case_mix_index "
                                                               "from marts.fct_department_month_kpis")}
    for key, weights in rw.items():
        assert unrounded(cmi[key], sum(weights), len(weights)), key
    marts = {(r[0], r[1], r[2]): r[3] for r in query(consortium["url"], "select department_id, drg_code, month, "
                                                                        "profit_cny from marts.fct_drg_group_month")}
    assert marts == dict(profit)


def test_dip_payment_is_points_times_the_year_point_value(consortium) -> None:
    stays = dict(source(consortium, "select stay_id, department_id from his.inpatient_stays where updated_at < %s",
                        (CUTOFF,)))
    settlements = query(consortium["url"], "select stay_id, dip_group, discharge_date, dip_points, "
                                           "insurer_payment_cny + patient_copay_cny, case_cost_cny "
                                           "from staging.stg_insurance__settlements where dip_points is not null")
    paid: dict[int, Decimal] = defaultdict(Decimal)
    points: dict[int, Decimal] = defaultdict(Decimal)
    for _, _, discharged, dip_points, payment, _ in settlements:
        paid[discharged.year] += payment
        points[discharged.year] += dip_points
    # no published point value configured: the year's estimate, Σ payments / Σ points
    point_value = {year: paid[year] / points[year] for year in points}  # kept unrounded, like the mart
    groups: dict[tuple, list] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for stay_id, dip_group, discharged, dip_points, _, cost in settlements:
        if stay_id in stays and dip_group is not None:  # a case the platform sent without its group has no row
            key = (stays[stay_id], dip_group, discharged.replace(day=1))
            groups[key][0] += dip_points
            groups[key][1] += cost
    assert groups, "no DIP case joined the HIS"
    marts = {(r[0], r[1], r[2]): (r[3], r[4]) for r in query(
        consortium["url"], "select department_id, dip_group, month, dip_payment_cny, profit_cny "
                           "from marts.fct_dip_group_month")}
    expected = {}
    for (dept, group, month), (group_points, cost) in groups.items():
        payment = (group_points * point_value[month.year]).quantize(Decimal("0.01"), ROUND_HALF_UP)  # as SQL rounds
        expected[(dept, group, month)] = (payment, payment - cost)
    assert marts == expected


def test_settlements_that_do_not_join_are_reported_not_dropped(consortium) -> None:
    stays = {r[0] for r in source(consortium, "select stay_id from his.inpatient_stays")}
    landed = query(consortium["url"], "select stay_id from staging.stg_insurance__settlements")
    unmatched = sum(stay_id not in stays for (stay_id,) in landed)
    assert unmatched > 0
    (reported, settled), = query(consortium["url"], "select sum(unmatched_cases), sum(settled_cases) "
                                                    "from marts.rpt_insurance_his_join")
    assert (reported, settled) == (unmatched, len(landed))


def test_no_published_column_carries_a_personal_identifier(consortium) -> None:
    names = {r[0] for r in source(consortium, "select patient_name from his.patients union select staff_name "
                                              "from his.staff")}
    id_or_phone = re.compile(r"^(\d{17}[\dXx]|1[3-9]\d{9})$")
    columns = query(consortium["url"], "select table_schema, table_name, column_name from information_schema.columns "
                                       "where table_schema in ('marts', 'scoring', 'snapshots') "
                                       "and data_type in ('text', 'character varying')")
    assert columns
    for schema, table, column in columns:
        values = {r[0] for r in query(consortium["url"], f'select distinct "{column}" from {schema}.{table}') if r[0]}
        assert not {v for v in values if id_or_phone.match(v)}, f"{schema}.{table}.{column} holds ID/phone numbers"
        assert not values & names, f"{schema}.{table}.{column} holds personal names"


def test_department_scores_are_weighted_percentiles_with_their_evidence(consortium) -> None:
    rows = query(consortium["url"], "select month, computed_score, evidence from scoring.department_performance_score")
    assert rows
    weights = dict(query(consortium["url"], "select indicator, weight from reference.department_score_weights"))
    for _, score, evidence in rows:
        used = {k: v for k, v in evidence.items() if k in weights}
        recomputed = sum(Decimal(str(v["score"])) * weights[k] for k, v in used.items()) / sum(weights[k] for k in used)
        assert abs(Decimal(score) - recomputed) <= Decimal("0.05")


def test_an_appeal_is_recorded_for_the_next_night(consortium) -> None:
    from hospital_ops.appeals import AppealError, record_adjustment

    (department, month, computed), = query(consortium["url"], "select department_id, month, computed_score "
                                                              "from scoring.department_performance_score "
                                                              "order by computed_score, department_id limit 1")
    record_adjustment(consortium["url"], department, month, 75, reason="complications miscoded 并发症编码错误",
                      requested_by="科主任", decided_by="运营管理部")
    with pytest.raises(AppealError, match=r"0\.\.100"):
        record_adjustment(consortium["url"], department, month, 120, reason="x", requested_by="a", decided_by="b")
    consortium["appeal"] = (department, month, computed)


def test_a_late_correction_changes_exactly_the_months_it_touches(consortium) -> None:
    before = ledger(consortium, "revenue_total_cny, surgeries_grade_4")
    # the physical row versions of the ledger dbt builds: a month rebuilt tonight gets new ones
    versions_before = dict(query(consortium["url"], "select department_month_id, xmin::text "
                                                    "from marts_build.fct_department_month_ledger"))
    night = END + timedelta(days=1)
    corrections = apply_late_corrections(consortium["his_url"], night, seed=11)
    charge_keys = [c.key[0] for c in corrections if c.table == "charges"]
    assert charge_keys, "no charge was corrected"
    touched = set(source(consortium, "select department_id, date_trunc('month', charged_at)::date from his.charges "
                                     "where charge_id = any(%s)", (charge_keys,)))
    surgery_keys = [c.key[0] for c in corrections if c.table == "surgeries"]
    touched |= set(source(consortium, "select s.department_id, date_trunc('month', o.performed_at)::date "
                                      "from his.surgeries o join his.inpatient_stays s using (stay_id) "
                                      "where o.surgery_id = any(%s)", (surgery_keys,)))

    assert run_night(night, consortium["url"]).succeeded
    after = ledger(consortium, "revenue_total_cny, surgeries_grade_4")
    changed = {key for key in before if before[key] != after.get(key)}
    assert changed and changed <= touched
    for dept, month in touched:
        (total,), = source(consortium, "select coalesce(sum(amount_cny), 0) from his.charges where department_id = %s "
                                       "and date_trunc('month', charged_at) = %s", (dept, month))
        assert after[(dept, month)][0] == total

    # incremental: only the corrected months were rebuilt (every department of them), and the night's
    # own month (its patient-days run to the business date); the rest of the ledger is the same
    # physical rows as before the night
    versions_after = dict(query(consortium["url"], "select department_month_id, xmin::text "
                                                   "from marts_build.fct_department_month_ledger"))
    rebuilt = {date.fromisoformat(key.split("|")[1] + "-01") for key, version in versions_after.items()
               if versions_before.get(key) != version}
    corrected_months = {month for _, month in touched}
    assert corrected_months <= rebuilt <= corrected_months | {night.replace(day=1)}


def test_the_incremental_ledger_equals_a_full_rebuild(consortium) -> None:
    """After the nights and the correction, rebuilding every month from scratch changes nothing."""
    # every column but source_landed_through, which says when each row was built
    (columns,), = query(consortium["url"], "select string_agg(column_name, ', ' order by ordinal_position) "
                                           "from information_schema.columns where table_schema = 'marts_build' "
                                           "and table_name = 'fct_department_month_ledger' "
                                           "and column_name <> 'source_landed_through'")
    relation = f"(select {columns} from marts_build.fct_department_month_ledger)"
    incremental = table_digest(consortium["url"], relation)
    night = END + timedelta(days=1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOSPITAL_OPS_VAR_DIR", str(consortium["var_dir"]))
        run_dbt(["run", "--full-refresh", "--select", "fct_department_month_ledger"],
                warehouse_url=consortium["url"], business_date=night, label="full rebuild")
    assert table_digest(consortium["url"], relation) == incremental


def test_the_appeal_shows_beside_the_computed_score(consortium, role_url) -> None:
    department, month, _computed = consortium["appeal"]
    (final, computed_now, adjusted, decided_by), = query(
        consortium["url"], "select final_score, computed_score, is_adjusted, adjustment_decided_by "
                           "from scoring.department_performance_score where department_id = %s and month = %s",
        (department, month))
    assert (final, adjusted, decided_by) == (75, True, "运营管理部")
    (old, new), = query(role_url(consortium["url"], "auditor"),
                        "select old_score, new_score from audit.score_adjustments where department_id = %s", (department,))
    assert (old, new) == (computed_now, 75)


def test_reporting_marts_show_the_latest_closed_month_as_the_marts_have_it(consortium) -> None:
    url = consortium["url"]
    (closed,), = query(url, "select max(month) from marts.fct_department_month_ledger where is_closed_month")
    assert closed is not None and closed < END.replace(day=1)
    columns = "department_month_id, department_id, discharges, revenue_total_cny, bed_occupancy, cost_per_discharge_cny"
    ledger_rows = query(url, f"select {columns} from marts.fct_department_month_ledger where month = %s order by 1",
                        (closed,))
    assert ledger_rows and query(url, f"select {columns} from marts.rpt_department_ledger_latest order by 1") == ledger_rows
    names = dict(source(consortium, "select department_id, department_name from his.departments"))
    for department, name in query(url, "select department_id, department_name from marts.rpt_department_ledger_latest"):
        assert name == names[department]

    kpis = {r[0]: r[1:] for r in query(url, "select department_month_id, bed_occupancy_rank, drug_ratio_yoy_change, "
                                            "case_mix_index from marts.fct_department_month_kpis where month = %s",
                                       (closed,))}
    scores = {r[0]: r[1:] for r in query(url, "select department_month_id, final_score, score_rank "
                                              "from scoring.department_performance_score where month = %s", (closed,))}
    scorecard = query(url, "select department_month_id, bed_occupancy_rank, drug_ratio_yoy_change, case_mix_index, "
                           "final_score, score_rank from marts.rpt_department_scorecard")
    assert {r[0] for r in scorecard} == set(kpis)
    for key, *values in scorecard:
        assert tuple(values) == kpis[key] + scores.get(key, (None, None)), key

    groups = {r[0]: r[1:] for r in query(url, "select drg_group_month_id, cases, profit_cny from marts.fct_drg_group_month "
                                              "where month = %s", (closed,))}
    report = {r[0]: r[1:] for r in query(url, "select drg_group_month_id, cases, profit_cny, is_loss_making, "
                                              "anomaly_alerts from marts.rpt_drg_group_economics")}
    assert report and set(report) == set(groups)
    for key, (cases, profit, loss_making, _) in report.items():
        assert (cases, profit) == groups[key] and loss_making == (profit < 0)
    holding = query(url, "select count(*) from scoring.drg_anomaly_alerts where month = %s and last_seen_on = "
                         "(select max(last_seen_on) from scoring.drg_anomaly_alerts)", (closed,))[0][0]
    assert sum(alerts for *_, alerts in report.values()) == holding


def test_dbt_docs_are_generated_from_the_warehouse(consortium) -> None:
    import json
    import os

    from hospital_ops import metabase
    from hospital_ops.dbt_runner import DOCS_FILES, docs_dir, generate_docs

    site = generate_docs(warehouse_url=consortium["url"], business_date=END)
    assert site == docs_dir() and site.is_relative_to(os.environ["HOSPITAL_OPS_VAR_DIR"])
    assert all((site / name).stat().st_size > 0 for name in DOCS_FILES)
    catalog = json.loads((site / "catalog.json").read_text(encoding="utf-8"))
    scorecard = catalog["nodes"]["model.hospital_ops.rpt_department_scorecard"]
    # the relation BI reads, with the comment publish copied onto it, not the build schema's
    assert scorecard["metadata"]["schema"] == "marts"
    assert scorecard["columns"]["final_score"]["type"] == "numeric"
    manifest = json.loads((site / "manifest.json").read_text(encoding="utf-8"))
    relations = {node["relation_name"] for node in manifest["nodes"].values()
                 if node["resource_type"] == "model" and node.get("relation_name")}
    assert '"marts"."rpt_department_scorecard"' in {r.split(".", 1)[1] for r in relations}
    assert not any('"marts_build"' in r or '"scoring_build"' in r for r in relations)
    described = manifest["nodes"]["model.hospital_ops.rpt_department_scorecard"]["columns"]["final_score"]
    assert scorecard["columns"]["final_score"]["comment"] == described["description"]
    labels = {exposure["label"] for exposure in manifest["exposures"].values()}
    assert {"院领导驾驶舱 Leadership", "医保办看板 Insurance office"} <= labels <= {d.name for d in metabase.DASHBOARDS}
    assert "rpt_department_scorecard" in (site / "static_index.html").read_text(encoding="utf-8")


def test_closed_month_snapshot_versions_only_when_a_published_figure_changes(consortium) -> None:
    """Two consecutive versions of a closed month differ in at least one published figure (a build-time
    column such as how far the staging had landed never makes a version by itself)."""
    rows = query(consortium["url"], "select * from snapshots.snp_department_month_ledger_closed "
                                    "order by department_month_id, dbt_valid_from")
    columns = [c[0] for c in query(consortium["url"], "select column_name from information_schema.columns "
                                                      "where table_schema = 'snapshots' "
                                                      "and table_name = 'snp_department_month_ledger_closed' "
                                                      "order by ordinal_position")]
    assert rows, "no closed month was snapshotted"
    figures = [i for i, c in enumerate(columns) if not c.startswith("dbt_") and c != "source_landed_through"]
    previous: dict[str, tuple] = {}
    for row in rows:
        key, values = row[columns.index("department_month_id")], tuple(row[i] for i in figures)
        assert previous.get(key) != values, f"{key}: a new version with the same published figures"
        previous[key] = values
