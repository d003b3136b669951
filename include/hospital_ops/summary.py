"""The platform's summary 平台摘要: what `hospital-ops summary` and `make demo` print after a night,
for the whole platform, the way the dashboards say it (Chinese with English, names, units, closed
months only): the hospitals' ledger headline, department alerts, DRG/DIP losses, service-quality
alerts, channel grades and vendor supervision; the scenarios every generator planted next to what was
raised for them; the night's dbt test warnings; and where BI and auditors connect (their roles, never
the writer's password).

It reads only what is published (the `rpt_` models in `marts`: one concept, one place — no figure is
recomputed here) and the scenario files the generators wrote beside their sources. Rounding happens
here, at presentation, as in the dashboards. `collect` gathers, `format_platform` prints."""

from __future__ import annotations

import json
import logging
from collections import Counter
from contextlib import closing
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg2

from hospital_ops.db import fetch_one

if TYPE_CHECKING:
    from psycopg2.extensions import cursor as PgCursor

log = logging.getLogger(__name__)

BI = "marts"  # the schema BI reads
TOP = 5  # rows shown per list

# where each generator recorded what it planted (relative to the inbox, except the HIS's and the survey's)
SCENARIO_FILES = {"vendor": "vendor/_scenarios.json", "referral": "referral/_scenarios.json",
                  "insurance": "insurance/_scenarios.json"}
HIS_SCENARIO_FILE = "his_scenarios.json"  # in the var directory (hospital_ops.alert_report writes its name)
SURVEY_SCENARIO_KEY = "_scenarios"  # inside the survey platform's simulated export
DBT_WARNINGS_DIR = Path("dbt") / "test_warnings"  # under the var directory, one file per night (dbt_runner)

SOURCE_NAMES = {"his": "医院信息系统 HIS", "insurance": "医保结算 Insurance", "survey": "满意度调查 Survey",
                "referral": "转诊渠道 Referral channels", "vendor": "第三方服务商 Vendors"}
COLOURS = {"red": "红 red", "yellow": "黄 yellow", "blue": "蓝 blue"}


# ------------------------------------------------------------------------------------------ collect


def collect(warehouse_url: str, *, business_date: date, var_dir: Path, inbox_dir: Path,
            survey_file: Path | None = None) -> dict[str, Any]:
    """Everything the platform summary prints, as plain data (a JSON-able dict)."""
    with closing(psycopg2.connect(warehouse_url)) as conn, conn.cursor() as cur:
        def rows(sql: str, params: tuple = ()) -> list[dict]:
            if not _exists(cur, sql):
                return []
            cur.execute(sql, params)
            names = [d[0] for d in cur.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

        out: dict[str, Any] = {"business_date": business_date.isoformat()}
        out["ledger"] = rows(
            f"select hospital_name, month, revenue_total_cny, revenue_mom_growth, revenue_yoy_growth, discharges, "
            f"discharges_mom_growth, outpatient_visits, average_length_of_stay, bed_occupancy, drug_ratio "
            f"from {BI}.rpt_hospital_ledger_trend "
            f"where month = (select max(month) from {BI}.rpt_hospital_ledger_trend) order by hospital_name")
        out["drg_alerts"] = rows(
            f"select hospital_name, department_id, department_name, drg_code, drg_name, month, metric, value, robust_z "
            f"from {BI}.rpt_drg_anomaly_alerts order by month desc, abs(robust_z) desc nulls last, department_name")
        out["insurance"] = rows(
            f"select month, drg_cases, drg_profit_cny, drg_loss_making_groups, dip_cases, dip_profit_cny, "
            f"dip_loss_making_groups from {BI}.rpt_insurance_month order by month desc limit 1")
        out["drg_losses"] = rows(
            f"select hospital_name, department_name, drg_name, month, cases, profit_cny "
            f"from {BI}.rpt_drg_group_economics where is_loss_making order by profit_cny, department_name limit %s",
            (TOP,))
        out["dip_losses"] = rows(
            f"select hospital_name, department_name, dip_group, month, cases, profit_cny "
            f"from {BI}.rpt_dip_group_economics where is_loss_making order by profit_cny, department_name limit %s",
            (TOP,))
        out["service_alerts"] = rows(
            f"select alert_type, subject_type, subject_id, subject_name, hospital_name, period_label, indicator, "
            f"observed_value, threshold, status from {BI}.rpt_service_quality_alerts "
            f"order by first_seen_on desc, subject_name")
        out["channel_grades"] = rows(
            f"select channel_id, channel_name, quarter_label, grade, previous_grade, is_downgrade, conversion_rate "
            f"from {BI}.rpt_channel_quarter_grades "
            f"where quarter = (select max(quarter) from {BI}.rpt_channel_quarter_grades) order by grade, channel_name")
        out["vendors"] = rows(
            f"select vendor_id, vendor_name, credit_rating, consequence, open_red_warnings, open_yellow_warnings, "
            f"open_blue_warnings from {BI}.rpt_vendor_supervision order by vendor_name")
        out["vendor_warnings"] = rows(
            f"select colour, status, vendor_id, vendor_name, rule_id, period_month, observed_value, first_seen_on "
            f"from {BI}.rpt_vendor_open_warnings order by colour_order, vendor_name, rule_id, period_month")
        out["vendor_decisions"] = rows(
            f"select vendor_id, vendor_name, decision, rule_id, period_month from {BI}.rpt_vendor_decisions "
            f"order by vendor_name, rule_id")
        out["insurance_join"] = rows(
            f"select coalesce(sum(unmatched_cases), 0) as unmatched_cases, coalesce(sum(settled_cases), 0) "
            f"as settled_cases from {BI}.rpt_insurance_his_join")
    out["scenarios"] = planted_scenarios(var_dir, inbox_dir, survey_file)
    out["dbt_warnings"] = dbt_warnings(var_dir, business_date)
    return _plain(out)


def _exists(cur: PgCursor, sql: str) -> bool:
    """Whether the rpt_ model a query reads is published yet (a new warehouse has none)."""
    relation = sql.split(f" from {BI}.", 1)[1].split()[0]
    cur.execute("select to_regclass(%s) is not null", (f"{BI}.{relation}",))
    return bool(fetch_one(cur)[0])


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):  # a count stays a count (sums of integers come back as numeric)
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError) as exc:
        log.warning("scenario file %s not readable: %s", path, exc)
        return {}


def planted_scenarios(var_dir: Path, inbox_dir: Path, survey_file: Path | None) -> dict[str, dict[str, dict]]:
    """source → scenario name → its facts, as each generator recorded them (empty without a demo)."""
    planted: dict[str, dict[str, dict]] = {}
    his = _json(var_dir / HIS_SCENARIO_FILE)
    if his.get("cost_jump"):
        planted["his"] = {"cost_jump": his["cost_jump"]}
    survey = _json(survey_file).get(SURVEY_SCENARIO_KEY, {}) if survey_file else {}
    if survey:
        planted["survey"] = {k: v for k, v in survey.items() if isinstance(v, dict) and k != "defects"}
    insurance = _json(inbox_dir / SCENARIO_FILES["insurance"])
    if insurance:
        planted["insurance"] = {name: {"cases": len(insurance[name])}
                                for name in ("unmatched", "self_pay", "pending", "ungroupable", "zero_payment")
                                if isinstance(insurance.get(name), list) and insurance[name]}
    referral = _json(inbox_dir / SCENARIO_FILES["referral"])
    if referral:
        planted["referral"] = {k: v for k, v in referral.items() if isinstance(v, dict) and "channel_id" in v}
    vendor = _json(inbox_dir / SCENARIO_FILES["vendor"])
    if vendor:
        planted["vendor"] = {k: v for k, v in vendor.items() if k != "defects" and isinstance(v, dict)}
    return planted


def dbt_warnings(var_dir: Path, business_date: date) -> list[dict]:
    """The dbt tests that warned during the night (hospital_ops.dbt_runner records them per night)."""
    found = _json(var_dir / DBT_WARNINGS_DIR / f"{business_date.isoformat()}.json")
    return [w | {"stage": stage} for stage, warned in found.items() for w in warned]


# -------------------------------------------------------------------------------------- presentation


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _growth(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:+.1f}%"


def _yuan(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f} 元"


def _number(value: float | None, places: int = 2) -> str:
    return "—" if value is None else f"{value:,.{places}f}"


def raised_for(summary: dict, source: str, facts: dict) -> str:
    """What the platform raised for one planted scenario, read from the summary's published rows."""
    if source == "vendor" and facts.get("vendor_id"):
        vendor = facts["vendor_id"]
        warned = sorted({f"{COLOURS.get(w['colour'], w['colour'])} {w['rule_id']}"
                         for w in summary["vendor_warnings"] if w["vendor_id"] == vendor})
        decided = [f"{d['decision']} ({d['rule_id']})" for d in summary["vendor_decisions"] if d["vendor_id"] == vendor]
        listed = next((v for v in summary["vendors"] if v["vendor_id"] == vendor), None)
        rating = f"信用 rating {listed['credit_rating']}" if listed else ""
        found = "; ".join(filter(None, [", ".join(warned), ", ".join(decided), rating]))
        return f"{listed['vendor_name'] if listed else vendor}: {found}" if found else ""
    if source == "his" and facts.get("department_id"):
        hits = [a for a in summary["drg_alerts"]
                if a["department_id"] == facts["department_id"] and a["month"][:7] == str(facts.get("month", ""))[:7]]
        return ", ".join(sorted({f"DRG异常 {a['drg_code']} {a['metric']} {a['month'][:7]}" for a in hits}))
    if source == "survey":
        subject = facts.get("department_id") or facts.get("vendor_id")
        hits = [a for a in summary["service_alerts"] if a["subject_id"] == subject]
        if hits:
            return ", ".join(sorted({f"服务质量预警 {a['alert_type']} {a['period_label']}" for a in hits}))
        if facts.get("vendor_id"):  # a vendor's survey satisfaction acts through the vendor rules
            return raised_for(summary, "vendor", {"vendor_id": facts["vendor_id"]})
        return ""
    if source == "referral" and facts.get("channel_id"):
        grades = [g for g in summary["channel_grades"] if g["channel_id"] == facts["channel_id"]]
        return ", ".join(f"{g['quarter_label']} 评级 grade {g['grade']}"
                         + (f" (降级 from {g['previous_grade']})" if g["is_downgrade"] else "")
                         + f", 转化率 conversion {_pct(g['conversion_rate'])}" for g in grades)
    if source == "insurance":
        joined = (summary["insurance_join"] or [{}])[0]
        if facts.get("cases") and joined:
            return f"未匹配HIS结算 unmatched settlements reported: {int(joined.get('unmatched_cases') or 0)}"
    return ""


def format_platform(summary: dict, *, bi_reader_url: str | None = None, auditor_url: str | None = None) -> str:
    """The platform part of the night's summary, in the dashboards' words."""
    lines = [f"平台摘要 Platform summary — 业务日期 business date {summary['business_date']} (已结月份 closed months only)"]
    if summary["ledger"]:
        month = summary["ledger"][0]["month"][:7]
        lines.append(f"  全院工作台账 Hospital ledger, {month}:")
        lines += [f"    {r['hospital_name']}: 医疗收入 revenue {_yuan(r['revenue_total_cny'])} "
                  f"(环比 MoM {_growth(r['revenue_mom_growth'])}, 同比 YoY {_growth(r['revenue_yoy_growth'])}); "
                  f"出院 discharges {r['discharges']} 例 (环比 {_growth(r['discharges_mom_growth'])}); "
                  f"门急诊 visits {r['outpatient_visits']} 人次; 平均住院日 ALOS {_number(r['average_length_of_stay'])} 天; "
                  f"病床使用率 occupancy {_pct(r['bed_occupancy'])}; 药占比 drug ratio {_pct(r['drug_ratio'])}"
                  for r in summary["ledger"]]
    else:
        lines.append("  全院工作台账 Hospital ledger: 暂无已结完整月份 no closed complete month yet")
    alerts = summary["drg_alerts"]
    lines.append(f"  科室病种异常预警 Department DRG anomaly alerts: {len(alerts)} 条")
    lines += [f"    {a['hospital_name']} {a['department_name']} {a['drg_name'] or a['drg_code']} {a['month'][:7]}: "
              f"{a['metric']} {_number(a['value'])} (z {_number(a['robust_z'], 1)})" for a in alerts[:TOP]]
    for month in summary["insurance"]:
        lines.append(f"  医保病种 DRG/DIP, {month['month'][:7]}: DRG {month['drg_cases']} 例, 盈亏 profit or loss "
                     f"{_yuan(month['drg_profit_cny'])}, 亏损病组 {month['drg_loss_making_groups']} 组; "
                     f"DIP 盈亏 {_yuan(month['dip_profit_cny'])}, 亏损病种 {month['dip_loss_making_groups']} 组")
    lines += [f"    亏损 DRG loss: {r['hospital_name']} {r['department_name']} {r['drg_name']} {r['cases']} 例 "
              f"{_yuan(r['profit_cny'])}" for r in summary["drg_losses"]]
    lines += [f"    亏损 DIP loss: {r['hospital_name']} {r['department_name']} {r['dip_group']} {r['cases']} 例 "
              f"{_yuan(r['profit_cny'])}" for r in summary["dip_losses"]]
    service = summary["service_alerts"]
    by_type = Counter(a["alert_type"] for a in service)
    lines.append(f"  服务质量预警 Service-quality alerts (未解除 not resolved): {len(service)} 条"
                 + (" (" + ", ".join(f"{t} {n}" for t, n in sorted(by_type.items())) + ")" if by_type else ""))
    lines += [f"    {a['alert_type']} {a['subject_name']} {a['period_label']}: {a['indicator']} "
              f"{_number(a['observed_value'], 4)} (阈值 threshold {_number(a['threshold'], 4)}, {a['status']})"
              for a in service[:TOP]]
    grades = summary["channel_grades"]
    if grades:
        counted = Counter(g["grade"] for g in grades)
        lines.append(f"  渠道季度评级 Channel grades, {grades[0]['quarter_label']}: "
                     + ", ".join(f"{grade} {n}" for grade, n in sorted(counted.items())))
        lines += [f"    降级 downgraded: {g['channel_name']} {g['previous_grade']} → {g['grade']} "
                  f"(转化率 conversion {_pct(g['conversion_rate'])})" for g in grades if g["is_downgrade"]]
    vendors = summary["vendors"]
    if vendors:
        colours = Counter(w["colour"] for w in summary["vendor_warnings"])
        ratings = Counter(v["credit_rating"] for v in vendors)
        lines.append("  第三方服务商 Vendors: 未解除预警 open warnings "
                     + ", ".join(f"{COLOURS[c]} {colours.get(c, 0)}" for c in COLOURS)
                     + "; 信用等级 ratings " + ", ".join(f"{r} {ratings[r]}" for r in ("AAA", "AA", "A", "B", "C")
                                                        if r in ratings))
        lines += [f"    决定 decision: {d['vendor_name']} {d['decision']} ({d['rule_id']}, {str(d['period_month'])[:7]})"
                  for d in summary["vendor_decisions"]]
    if summary["scenarios"]:
        lines.append("  预置场景 → 平台发现 Planted scenarios → what the platform raised:")
        for source, scenarios in summary["scenarios"].items():
            for name, facts in scenarios.items():
                raised = raised_for(summary, source, facts)
                lines.append(f"    {SOURCE_NAMES.get(source, source)}: {name:<32} {raised or '(未发现 nothing raised)'}")
    warned = summary["dbt_warnings"]
    lines.append(f"  dbt 测试警告 dbt test warnings tonight: {len(warned)}")
    lines += [f"    {w['stage']}: {w['name']}: {w['message']}" for w in warned]
    lines.append("  看板与审计连接 Where to look:")
    lines.append(f"    BI 只读 (marts, scoring): psql \"{bi_reader_url or '$(hospital-ops warehouse url --role bi_reader)'}\"")
    lines.append(f"    审计 auditor (snapshots, run ledger): psql \"{auditor_url or '$(hospital-ops warehouse url --role auditor)'}\"")
    return "\n".join(lines)
