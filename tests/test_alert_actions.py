"""The required action of each service-quality and DRG anomaly rule lives in one place, the seed
alert_required_actions: the real `dbt seed` loads it, and each alert's message carries its rule's
Chinese name and action from the warehouse; a rule missing from the seed says so instead of guessing.
Every alert type the scoring model may raise has its row."""

from __future__ import annotations

import csv
from contextlib import closing
from datetime import date

import psycopg2
import yaml

from hospital_ops import notify
from hospital_ops.config import settings
from hospital_ops.dbt_runner import run_dbt

NIGHT = date(2026, 11, 22)
SEED = settings().dbt_project_dir / "seeds" / "alert_required_actions.csv"


def _seed_rows() -> list[dict]:
    with SEED.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _plant(url: str, service_types: list[str]) -> None:
    """The published alert tables' columns the notifier reads, one holding alert per type tonight."""
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.execute("""
            create schema scoring;
            create table scoring.service_quality_alerts (
                alert_id text, alert_type text, subject_type text, subject_id text, period_label text,
                indicator text, observed_value numeric, baseline_value numeric, threshold numeric,
                evidence jsonb, status text, last_seen_on date);
            create table scoring.drg_anomaly_alerts (
                alert_id text, department_id text, drg_code text, drg_name text, month date, metric text,
                value numeric, robust_z numeric, evidence jsonb, status text, last_seen_on date)""")
        for n, kind in enumerate(service_types):
            cur.execute("insert into scoring.service_quality_alerts values (%s, %s, 'department', %s, '2026-Q3', "
                        "'satisfaction', 0.71, 0.86, 0.10, '{\"sample\": 40}', 'open', %s)",
                        (f"S{n}", kind, f"D{n:02d}", NIGHT))
        cur.execute("insert into scoring.drg_anomaly_alerts values ('G1', 'D07', 'FR21', '心力衰竭', '2026-10-01', "
                    "'cost_per_case_cny', 41000, 5.2, '{\"cases\": 14}', 'open', %s)", (NIGHT,))
        conn.commit()


def test_each_alert_message_carries_its_rules_action_from_the_seed(db_url: str, tmp_path) -> None:
    rows = _seed_rows()
    run_dbt(["seed", "--select", "alert_required_actions"], warehouse_url=db_url, business_date=NIGHT,
            label="seed", target_path=tmp_path / "target")
    service = [r for r in rows if r["alert_kind"] == "service_alert"]
    _plant(db_url, [r["rule_id"] for r in service] + ["queue_overflow"])  # the last has no row in the seed
    with closing(psycopg2.connect(db_url)) as conn, conn.cursor() as cur:
        messages, already = notify.new_alert_messages(cur, NIGHT)
    assert already == 0
    by_id = {alert_id: message for _, alert_id, message in messages}
    assert len(by_id) == len(service) + 2
    for n, rule in enumerate(service):
        body = by_id[f"S{n}"].body
        assert f"{rule['name_zh']} rule {rule['rule_id']}" in body
        assert f"处置要求 action: {rule['required_action']}" in body
    (drg,) = [r for r in rows if r["alert_kind"] == "drg_alert"]
    assert f"处置要求 action: {drg['required_action']}" in by_id["G1"].body and f"rule {drg['rule_id']}" in by_id["G1"].body
    assert "处置要求 action: 未配置 not configured (seed alert_required_actions, rule queue_overflow)" \
        in by_id[f"S{len(service)}"].body
    assert all(len(m.body) <= notify.MAX_BODY for m in by_id.values())  # a phone's screen


def test_every_service_alert_type_has_its_required_action() -> None:
    spec = yaml.safe_load((settings().dbt_project_dir / "models" / "scoring" / "survey" / "_survey__scoring.yml")
                          .read_text(encoding="utf-8"))
    model = next(m for m in spec["models"] if m["name"] == "service_quality_alerts")
    column = next(c for c in model["columns"] if c["name"] == "alert_type")
    types = next(t["accepted_values"]["arguments"]["values"] for t in column["tests"]
                 if isinstance(t, dict) and "accepted_values" in t)
    assert sorted(types) == sorted(r["rule_id"] for r in _seed_rows() if r["alert_kind"] == "service_alert")
