"""Source freshness per source table: dbt's own `source freshness`, recorded in dq.source_freshness and
shown in the night's summary. A table past warn_after warns and still builds; one past error_after
leaves out of the marts build only what depends on it, and the freshness step never fails the task.

A throw-away warehouse with two real feeds landed by the loader (referral exports on a small simulated
HIS, and the vendor source), then their load times moved back by the thresholds read from the
sources' yml: referral's referrals just past warn_after, vendor's inspections just past error_after,
every other vendor table fresh."""

from __future__ import annotations

import json
from contextlib import closing
from datetime import date, timedelta

import psycopg2
import pytest
import yaml

from hospital_ops.config import settings
from hospital_ops.dbt_runner import FRESHNESS_TABLE, run_stage
from hospital_ops.load.loader import ensure_raw_schema, load_night, plan_extract
from hospital_ops.pipeline import format_summary, night_summary
from hospital_ops.sources import SOURCES
from hospital_ops.sources.his_fhir import SOURCE as HIS_FHIR
from hospital_ops_sim.his import generate_his
from hospital_ops_sim.referral import generate_referral
from hospital_ops_sim.vendor import generate_vendor_source

KEY = b"freshness-test"
NIGHT = date(2026, 3, 15)
WARNED = ("referral", "referrals")   # just past warn_after, before error_after
STALE = ("vendor", "inspections")   # just past error_after
FRESH = ("vendor", "lab_qc_results")  # loaded tonight


def query(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def threshold(source: str, key: str) -> timedelta:
    """warn_after / error_after of a source, as its yml declares it."""
    path = settings().dbt_project_dir / "models" / "staging" / source / f"_{source}__sources.yml"
    (spec,) = yaml.safe_load(path.read_text(encoding="utf-8"))["sources"]
    rule = spec["config"]["freshness"][key]
    return timedelta(**{f"{rule['period']}s": rule["count"]})


def identifier(source: str, table: str) -> str:
    return f"raw.{source}__{table}"


@pytest.fixture(scope="module")
def night(fresh_database, tmp_path_factory) -> dict:
    his_url, url = fresh_database("fresh_his"), fresh_database("fresh_wh")
    generate_his(his_url, end=NIGHT, months=3, hospitals=1, seed=5, scale=0.05, corrections_per_kind=0)
    inbox = tmp_path_factory.mktemp("inbox")
    generate_referral(his_url, inbox, end=NIGHT, months=3, seed=5)
    generate_vendor_source(inbox, end=NIGHT, months=3, vendors=12, hospitals=1, seed=5)
    with closing(psycopg2.connect(url)) as conn:
        for source in (*SOURCES.values(), HIS_FHIR):  # every raw table, as the nights' extracts create them
            ensure_raw_schema(conn, source)
        conn.commit()
        for name in ("referral", "vendor"):
            load_night(conn, SOURCES[name], plan_extract(inbox, SOURCES[name], NIGHT, None), run_id="fresh-night",
                       batch_date=NIGHT, key=KEY)
        with conn.cursor() as cur:
            for (source, table), key in ((WARNED, "warn_after"), (STALE, "error_after")):
                cur.execute(f"update {identifier(source, table)} set _loaded_at = now() - %s",
                            (threshold(source, key) + timedelta(hours=1),))
        conn.commit()
    assert query(url, f"select count(*) from {identifier(*FRESH)}")[0][0] > 0
    assert query(url, f"select count(*) from {identifier(*STALE)}")[0][0] > 0
    run_stage("freshness", warehouse_url=url, business_date=NIGHT)  # never raises for a stale source
    run_stage("marts", warehouse_url=url, business_date=NIGHT)
    return {"url": url}


def recorded(url: str) -> dict[tuple[str, str], str]:
    return {(s, t): status for s, t, status in query(
        url, f"select source, table_name, status from {FRESHNESS_TABLE} where business_date = %s", (NIGHT,))}


def test_dbt_result_is_recorded_per_source_table(night) -> None:
    statuses = recorded(night["url"])
    assert statuses[WARNED] == "warn"
    assert statuses[STALE] == "error"
    assert statuses[FRESH] == "pass"
    assert ("referral", "channels") not in statuses  # freshness: null in its yml: never checked
    assert not any(source not in ("referral", "vendor") for source, _ in statuses)  # only delivered feeds
    (max_loaded_at, age, error_after), = query(
        night["url"], f"select max_loaded_at, age_seconds, error_after from {FRESHNESS_TABLE} "
                      "where source = %s and table_name = %s", STALE)
    assert age > threshold(STALE[0], "error_after").total_seconds()
    count, period = error_after.split()  # as dbt gave its criteria: '<count> <period>'
    assert timedelta(**{f"{period}s": int(count)}) == threshold(STALE[0], "error_after")
    assert max_loaded_at == query(night["url"], f"select max(_loaded_at) from {identifier(*STALE)}")[0][0]


def downstream(source: str, table: str) -> set[str]:
    """Every model of the marts stage dbt's graph (tonight's manifest) puts downstream of a source table."""
    manifest = json.loads((settings().var_dir / "dbt" / "target" / "manifest.json").read_text())
    found, todo = set(), [f"source.hospital_ops.{source}.{table}"]
    while todo:
        for child in manifest["child_map"].get(todo.pop(), []):
            if child.startswith("model.") and child not in found:
                found.add(child)
                todo.append(child)
    # the marts stage's models (dbt_runner.STAGES["marts"]): the scoring stage builds the rest later
    marts_stage = [node["name"] for unique_id, node in manifest["nodes"].items() if unique_id in found
                   and {"reference", "staging", "marts"} & set(node["tags"]) and "reporting" not in node["tags"]]
    return set(marts_stage)


def test_past_error_after_leaves_out_only_what_depends_on_it(night) -> None:
    built = {name for (name,) in query(
        night["url"], "select table_name from information_schema.tables "
                      "where table_schema in ('staging', 'intermediate', 'marts_build')")}
    left_out = downstream(*STALE)
    assert "stg_vendor__inspections" in left_out and any(name.startswith(("fct_", "dim_")) for name in left_out)
    assert not built & left_out  # nothing downstream of the stale table was built
    assert "stg_vendor__lab_qc_results" in built  # the same feed's fresh table
    assert downstream(*WARNED) <= built  # past warn_after only: everything built
    assert {"stg_referral__referrals", "fct_channel_month_referrals"} <= downstream(*WARNED)


def test_the_summary_shows_each_stale_table(night) -> None:
    summary = night_summary(warehouse_url=night["url"], business_date=NIGHT)
    text = format_summary(summary)
    statuses = recorded(night["url"])
    passed = sum(s == "pass" for s in statuses.values())
    assert f"source freshness 数据源时效: 1 error, 1 warn, {passed} pass" in text
    lines = text.splitlines()
    assert any(f"{'.'.join(WARNED)}:" in line and "past warn_after" in line for line in lines)
    assert any(f"{'.'.join(STALE)}:" in line and "not rebuilt tonight" in line for line in lines)
    assert not any(f"{'.'.join(FRESH)}:" in line for line in lines)


def test_a_rerun_replaces_the_nights_check(night) -> None:
    before = recorded(night["url"])
    run_stage("freshness", warehouse_url=night["url"], business_date=NIGHT)
    assert recorded(night["url"]) == before
    assert query(night["url"], f"select count(*) from {FRESHNESS_TABLE}")[0][0] == len(before)
