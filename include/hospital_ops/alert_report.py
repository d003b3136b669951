"""Alert precision report 预警精度报告: for each anomaly rule, over the warehouse's history, how many
cases the rule judged, how many alerts it raised (alert rate), whether each anomaly the generators
planted was caught (catch rate), and how often it alerted where nothing was planted.

The planted truth is read from what the generators wrote beside the sources (the HIS simulation's
cost jump, the survey platform's `_scenarios`, the vendor drop folder's `_scenarios.json`), never from
the tables under test. `hospital-ops alerts report` prints it."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg2

from hospital_ops.db import fetch_one

if TYPE_CHECKING:
    from psycopg2.extensions import cursor as PgCursor

HIS_SCENARIO_FILE = "his_scenarios.json"  # in the var directory, written by `hospital-ops-sim generate`


@dataclass(frozen=True)
class RuleRate:
    rule: str
    judged: int  # cases the rule could judge (group-month-metrics, department-months, vendor-months)
    alerts: int
    planted: int  # planted anomalies among the judged cases
    caught: int  # planted anomalies that alerted

    @property
    def alert_rate(self) -> float | None:
        return self.alerts / self.judged if self.judged else None

    @property
    def catch_rate(self) -> float | None:
        return self.caught / self.planted if self.planted else None

    @property
    def unplanted_alerts(self) -> int:
        return self.alerts - self.caught

    @property
    def unplanted_alert_rate(self) -> float | None:
        unplanted = self.judged - self.planted
        return self.unplanted_alerts / unplanted if unplanted else None


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def planted_truth(var_dir: Path, inbox_dir: Path, survey_file: Path) -> dict:
    """What the generators planted, as they recorded it."""
    survey = _json(survey_file).get("_scenarios", {})
    return {
        "cost_jump": _json(var_dir / HIS_SCENARIO_FILE).get("cost_jump"),
        "satisfaction_drop": survey.get("department_satisfaction_drop"),
        "complaint_spike": survey.get("complaint_spike"),
        "vendors": {k: v for k, v in _json(inbox_dir / "vendor" / "_scenarios.json").items() if k != "defects"},
    }


def alert_rates(warehouse_url: str, planted: dict) -> list[RuleRate]:
    conn = psycopg2.connect(warehouse_url)
    try:
        with conn, conn.cursor() as cur:
            return [*_drg(cur, planted.get("cost_jump")), *_service(cur, planted), _vendor(cur, planted["vendors"])]
    finally:
        conn.close()


def _drg(cur: PgCursor, jump: dict | None) -> Iterable[RuleRate]:
    for metric in ("cost_per_case_cny", "average_length_of_stay"):
        cur.execute(
            "select count(*), count(*) filter (where is_alert), "
            "count(*) filter (where department_id = %(dept)s and to_char(month, 'YYYY-MM') = %(month)s "
            "                  and metric = 'cost_per_case_cny'), "
            "count(*) filter (where is_alert and department_id = %(dept)s and to_char(month, 'YYYY-MM') = %(month)s "
            "                  and metric = 'cost_per_case_cny') "
            "from intermediate.int_insurance__drg_anomaly_judged where metric = %(metric)s",
            {"dept": (jump or {}).get("department_id"), "month": ((jump or {}).get("month") or "")[:7],
             "metric": metric})
        judged, alerts, planted, caught = fetch_one(cur)
        yield RuleRate(f"DRG anomaly: {metric}", judged, alerts, planted, caught)


def _service(cur: PgCursor, planted: dict) -> Iterable[RuleRate]:
    drop, spike = planted.get("satisfaction_drop") or {}, planted.get("complaint_spike") or {}
    cur.execute(
        "select count(*) from marts.fct_satisfaction_month "
        "where meets_min_sample and month < (select max(month) from marts.fct_satisfaction_month)")
    judged_drop = fetch_one(cur)[0]
    cur.execute("select count(*) from marts.fct_complaints_month where is_closed_month")
    judged_spike = fetch_one(cur)[0]
    for rule, judged, facts in (("satisfaction_drop", judged_drop, drop), ("complaint_spike", judged_spike, spike)):
        cur.execute(
            "select count(*), count(*) filter (where subject_id = %s and period_label = %s) "
            "from scoring.service_quality_alerts where alert_type = %s and resolution is distinct from 'condition_cleared'",
            (facts.get("department_id"), facts.get("latest_month"), rule))
        alerts, caught = fetch_one(cur)
        yield RuleRate(f"service: {rule}", judged, alerts, 1 if facts else 0, caught)


def _vendor(cur: PgCursor, scenarios: dict) -> RuleRate:
    """Vendor warnings per vendor-month: a planted vendor is caught when it has a warning at all."""
    planted_vendors = sorted({facts["vendor_id"] for facts in scenarios.values() if "vendor_id" in facts})
    cur.execute(
        "select count(*), count(*) filter (where warned), "
        "count(*) filter (where vendor_id = any(%(planted)s) and warned) "
        "from (select kpis.vendor_id, kpis.month, exists (select 1 from scoring.vendor_risk_warnings w "
        "       where w.vendor_id = kpis.vendor_id and w.period_month = kpis.month "
        "         and w.resolution is distinct from 'condition_cleared') as warned "
        "      from marts.fct_vendor_month_kpis kpis where kpis.is_closed_month) months",
        {"planted": planted_vendors})
    judged, alerts, planted_months_warned = fetch_one(cur)
    cur.execute("select count(distinct vendor_id) from scoring.vendor_risk_warnings "
                "where vendor_id = any(%s) and resolution is distinct from 'condition_cleared'", (planted_vendors,))
    caught = fetch_one(cur)[0]
    cur.execute("select count(*) from marts.fct_vendor_month_kpis where is_closed_month and vendor_id = any(%s)",
                (planted_vendors,))
    planted_months = fetch_one(cur)[0]
    # judged/alerts over vendor-months; planted/caught over planted vendors (any warning for the vendor);
    # unplanted = months of vendors with no planted scenario that were warned
    return _VendorRate("vendor warnings (vendor-months)", judged, alerts, len(planted_vendors), caught,
                       planted_months, planted_months_warned)


@dataclass(frozen=True)
class _VendorRate(RuleRate):
    planted_months: int = 0
    planted_months_warned: int = 0

    @property
    def unplanted_alerts(self) -> int:
        return self.alerts - self.planted_months_warned

    @property
    def unplanted_alert_rate(self) -> float | None:
        unplanted = self.judged - self.planted_months
        return self.unplanted_alerts / unplanted if unplanted else None


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def format_report(rates: list[RuleRate]) -> str:
    lines = [(f"{'rule':<40} {'judged':>7} {'alerts':>7} {'rate':>7} {'planted':>8} {'caught':>7} "
              f"{'unplanted alerts':>17} {'rate':>7}")]
    for r in rates:
        lines.append(f"{r.rule:<40} {r.judged:>7} {r.alerts:>7} {_pct(r.alert_rate):>7} {r.planted:>8} "
                     f"{r.caught:>7} {r.unplanted_alerts:>17} {_pct(r.unplanted_alert_rate):>7}")
    return "\n".join(lines)
