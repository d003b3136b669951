"""Alert rules and edge definitions on generated data: six months of a simulated HIS with its planted
DRG cost jump, its insurance settlements, one real night of the DAG; then the DRG anomaly alerts, the
31-day readmissions, the open month's occupancy and the complete-month flags checked against values
recomputed here, in Python, from the sources and the documented rules (docs/definitions.md) — not by
running the dbt models again."""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import date, datetime, time, timedelta
from decimal import Decimal

import pytest
import yaml

from hospital_ops.airflow_local import run_night
from hospital_ops.config import settings
from hospital_ops_sim.his import create_his_database, generate_his
from hospital_ops_sim.insurance import generate_insurance
from nightly_runs import query

pytestmark = pytest.mark.e2e

END = date(2026, 11, 22)
CUTOFF = datetime.combine(END + timedelta(days=1), time())


@pytest.fixture(scope="module")
def history(tmp_path_factory, fresh_database):
    var_dir = tmp_path_factory.mktemp("var")
    url, his_url = fresh_database("alerts_e2e"), fresh_database("alerts_his")
    create_his_database(his_url)
    his = generate_his(his_url, end=END, months=6, hospitals=2, scale=0.3, seed=11)
    generate_insurance(his_url, var_dir / "inbox", end=END, seed=11)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOSPITAL_OPS_VAR_DIR", str(var_dir))
        patch.setenv("HOSPITAL_OPS_INBOX", str(var_dir / "inbox"))
        patch.setenv("WAREHOUSE_URL", url)
        patch.setenv("HIS_URL", his_url)
        run = run_night(END, url)
    assert run.succeeded, f"night {END} failed: {run.failed_tasks}, see {run.log_file}"
    project = yaml.safe_load((settings().dbt_project_dir / "dbt_project.yml").read_text(encoding="utf-8"))
    return {"url": url, "his_url": his_url, "his": his, "vars": project["vars"]}


def _drg_expected(history) -> tuple[dict, set]:
    """Every judged (department, group, month, metric) → z, by the documented rule, from the settlements."""
    v = history["vars"]
    stays = dict(query(history["his_url"], "select stay_id, department_id from his.inpatient_stays "
                                           "where updated_at < %s", (CUTOFF,)))
    cells: dict[tuple, list] = defaultdict(lambda: [0, Decimal(0), 0])
    for stay_id, drg, discharged, cost, los in query(
            history["url"], "select stay_id, drg_code, discharge_date, case_cost_cny, los_days "
                            "from staging.stg_insurance__settlements"):
        if stay_id in stays:
            cell = cells[(stays[stay_id], drg, discharged.replace(day=1))]
            cell[0] += 1
            cell[1] += cost
            cell[2] += los
    first_month = min(month for _, _, month in cells)
    open_month = END.replace(day=1)
    eligible = {k: c for k, c in cells.items()
                if c[0] >= v["drg_anomaly_min_cases"] and first_month < k[2] < open_month}
    series: dict[tuple, list] = defaultdict(list)
    for (dept, drg, month), (cases, cost, los) in sorted(eligible.items(), key=lambda kv: kv[0][2]):
        series[(dept, drg, "cost_per_case_cny")].append((month, cost / cases))
        series[(dept, drg, "average_length_of_stay")].append((month, Decimal(los) / cases))
    judged, alerts = {}, set()
    for (dept, drg, metric), points in series.items():
        for index, (month, value) in enumerate(points):
            earlier = [x for _, x in points[:index]]
            if len(earlier) < v["drg_anomaly_min_history_months"]:
                continue
            median = statistics.median(earlier)
            mad = statistics.median(abs(x - median) for x in earlier)
            dispersion = max(mad, Decimal(str(v["drg_anomaly_min_relative_mad"])) * abs(median))
            z = Decimal("0.6745") * (value - median) / dispersion
            judged[(dept, drg, month, metric)] = z
            if abs(z) > Decimal(str(v["drg_anomaly_z_limit"])):
                alerts.add((dept, drg, month, metric))
    assert v["drg_anomaly_persistence_months"] == 1, "this recomputation covers the default (no persistence)"
    return judged, alerts


def test_drg_anomaly_alerts_are_the_recomputed_ones_and_catch_the_planted_jump(history) -> None:
    judged, expected = _drg_expected(history)
    published = {(r[0], r[1], r[2], r[3]): r[4] for r in query(
        history["url"], "select department_id, drg_code, month, metric, status from scoring.drg_anomaly_alerts")}
    assert set(published) == expected
    assert all(status == "open" for status in published.values())
    jump = history["his"].facts["cost_jump"]
    month = date.fromisoformat(jump["month"])
    planted = {k for k in judged if k[0] == jump["department_id"] and k[2] == month and k[3] == "cost_per_case_cny"}
    assert planted, f"the planted cost jump {jump} left no judgeable DRG group"
    assert planted <= expected  # every planted anomaly caught
    # and groups that did not jump do not fire: a few percent at most of the unplanted judged metrics
    unplanted = set(judged) - planted
    assert unplanted and len(expected - planted) <= 0.05 * len(unplanted)
    # the judged population and its z-scores, unrounded, are the recomputed ones
    z = {(r[0], r[1], r[2], r[3]): r[4] for r in query(
        history["url"], "select department_id, drg_code, month, metric, robust_z "
                        "from intermediate.int_insurance__drg_anomaly_judged")}
    assert set(z) == set(judged)
    # (PostgreSQL's percentile_cont works in double precision: agreement to a millionth of a z)
    assert all(abs(z[k] - judged[k]) <= Decimal("1e-6") * max(1, abs(judged[k])) for k in judged)
    # each alert carries its evidence: a z beyond the limit over at least the minimum history (the
    # planted jump guarantees at least one alert to look at)
    evidence = query(history["url"], "select robust_z, evidence from scoring.drg_anomaly_alerts")
    assert len(evidence) == len(expected) >= len(planted)
    for robust_z, facts in evidence:
        assert abs(robust_z) > Decimal(str(facts["z_limit"]))
        assert facts["history_months"] >= history["vars"]["drg_anomaly_min_history_months"]


def test_readmissions_count_calendar_days(history) -> None:
    window = history["vars"]["readmission_window_days"]
    rows = query(history["his_url"], "select patient_id, stay_id, department_id, admitted_at, discharged_at, "
                                     "coalesce(planned_readmission, false) from his.inpatient_stays "
                                     "where updated_at < %s order by patient_id, admitted_at, stay_id", (CUTOFF,))
    expected: dict[tuple, int] = defaultdict(int)
    covered: dict[tuple, list] = defaultdict(lambda: [0, 0])
    for index, (patient, _, dept, _, discharged, planned) in enumerate(rows):
        if discharged is None:
            continue
        key = (dept, discharged.date().replace(day=1))
        nxt = rows[index + 1] if index + 1 < len(rows) and rows[index + 1][0] == patient else None
        if nxt is not None and (nxt[3].date() - discharged.date()).days <= window and not planned:
            expected[key] += 1
        covered[key][0] += 1
        covered[key][1] += discharged.date() + timedelta(days=window) <= END
    kpis = {(r[0], r[1]): r[2:] for r in query(
        history["url"], "select department_id, month, unplanned_readmissions_31d, is_readmission_provisional "
                        "from marts.fct_department_month_kpis")}
    for key, (discharges, final) in covered.items():
        assert kpis[key] == (expected[key], final < discharges), key


def test_open_month_occupancy_stops_at_the_business_date(history) -> None:
    month = END.replace(day=1)
    beds = query(history["his_url"], "select department_id, open_from, open_to from his.beds where updated_at < %s",
                 (CUTOFF,))
    bed_days: dict[str, int] = defaultdict(int)
    for dept, open_from, open_to in beds:
        last = min(open_to or END, END)
        bed_days[dept] += max(0, (last - max(open_from, month)).days + 1)
    ledger = {r[0]: r[1] for r in query(history["url"], "select department_id, open_bed_days "
                                                        "from marts.fct_department_month_ledger where month = %s",
                                        (month,))}
    assert bed_days and all(ledger[d] == n for d, n in bed_days.items())


def test_only_complete_months_are_ranked_and_scored(history) -> None:
    rows = query(history["url"], "select month, is_complete_month, bed_occupancy_rank from marts.fct_department_month_kpis")
    months = sorted({r[0] for r in rows})
    complete = {m for m in months if m != months[0] and m < END.replace(day=1)}
    assert all(flag == (month in complete) for month, flag, _ in rows)
    assert all(rank is None for month, _, rank in rows if month not in complete)
    scored = {r[0] for r in query(history["url"], "select month from scoring.department_performance_score")}
    assert scored and scored <= complete
