"""Bounds everywhere: implausible dates and counts and rows that break a rule between two columns are
quarantined at landing with their reason; every date and count column of every source has a range."""

from __future__ import annotations

import csv
from contextlib import closing
from datetime import date, timedelta
from pathlib import Path

import psycopg2
import pytest

from hospital_ops.config import date_bounds
from hospital_ops.load.loader import ManifestEntry, load_night
from hospital_ops.sources import SOURCES
from hospital_ops.sources.vendor import SOURCE

KEY = b"bounds-key"
NIGHT = date(2026, 11, 1)
REGISTRY = [["V001", "顺达医药物流有限公司", "logistics_delivery", "medium", "91310000MA1FL0XX1A", "张伟",
             "13800138000", "2024-03-01", "N"]]


def test_every_date_and_count_column_has_a_plausible_range() -> None:
    for source in SOURCES.values():
        for entity in source.entities:
            for column in entity.columns:
                if column.type in ("int", "decimal"):
                    assert column.min is not None and column.max is not None, (entity.raw_table, column.name)
                if column.type in ("date", "timestamp", "month"):
                    assert column.dates in ("event", "register", "term"), (entity.raw_table, column.name)
            for rule in entity.row_rules:
                assert {rule.left, rule.right} <= {c.name for c in entity.columns}, (entity.raw_table, rule)


def _write(path: Path, entity: str, rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([c.name for c in SOURCE.entity(entity).columns])
        writer.writerows(rows)


def test_implausible_dates_counts_and_broken_row_rules_are_quarantined(db_url: str, tmp_path: Path) -> None:
    bounds = date_bounds()
    latest = NIGHT + timedelta(days=bounds.future_tolerance_days)
    good = [["I1", "V001", bounds.history_start.isoformat(), "patrol", "10", "9"],
            ["I2", "V001", latest.isoformat(), "spot_check", "10", "10"],
            ["I3", "V001", NIGHT.isoformat(), "patrol", "0", "0"]]
    bad = {
        "year 1": ["I4", "V001", "0001-01-01", "patrol", "10", "9"],
        "1800": ["I5", "V001", "1800-05-01", "patrol", "10", "9"],
        "day before the history": ["I6", "V001", (bounds.history_start - timedelta(days=1)).isoformat(), "patrol", "1", "1"],
        "day after the tolerance": ["I7", "V001", (latest + timedelta(days=1)).isoformat(), "patrol", "1", "1"],
        "2999": ["I8", "V001", "2999-01-01", "patrol", "10", "9"],
        "9999": ["I9", "V001", "9999-12-31", "patrol", "10", "9"],
        "bigint items": ["I10", "V001", NIGHT.isoformat(), "patrol", str(2**63 - 1), "1"],
        "passed > checked": ["I11", "V001", NIGHT.isoformat(), "patrol", "5", "6"],
    }
    folder = tmp_path / "vendor" / NIGHT.isoformat()
    _write(folder / "vendor_registry.csv", "registry", REGISTRY)
    _write(folder / "inspections.csv", "inspections", good + list(bad.values()))
    entries = [ManifestEntry("registry", folder / "vendor_registry.csv", f"vendor/{NIGHT}/vendor_registry.csv", NIGHT),
               ManifestEntry("inspections", folder / "inspections.csv", f"vendor/{NIGHT}/inspections.csv", NIGHT)]
    with closing(psycopg2.connect(db_url)) as conn:
        night = load_night(conn, SOURCE, entries, run_id="bounds", batch_date=NIGHT, key=KEY)
        with conn.cursor() as cur:
            cur.execute("select inspection_id from raw.vendor__inspections")
            loaded = {r[0] for r in cur.fetchall()}
            cur.execute("select record->>'inspection_id', reason from raw._quarantine where entity = 'inspections'")
            reasons = dict(cur.fetchall())

    inspections = next(f for f in night.files if f.entity == "inspections")
    assert inspections.rows_read == len(good) + len(bad)
    assert loaded == {row[0] for row in good}
    assert set(reasons) == {row[0] for row in bad.values()}
    for what in ("year 1", "1800", "day before the history"):
        assert reasons[bad[what][0]] == f"inspected_on: before the history start {bounds.history_start} (history_start_date)"
    for what in ("day after the tolerance", "2999", "9999"):
        assert reasons[bad[what][0]].startswith(f"inspected_on: more than {bounds.future_tolerance_days} days after")
    assert reasons[bad["bigint items"][0]].startswith("items_checked: ")
    assert "outside plausible range" in reasons[bad["bigint items"][0]]
    assert reasons[bad["passed > checked"][0]] == "items_passed > items_checked: passed items are among the items checked"


@pytest.mark.parametrize("kind", ["register", "term"])
def test_registers_reach_back_and_terms_reach_forward(db_url: str, tmp_path: Path, kind: str) -> None:
    bounds = date_bounds()
    if kind == "register":  # a certificate issued long before the history, expiring within its term
        rows = [["Q1", "V001", "business_licence", "1995-06-01", "2040-01-01"],
                ["Q2", "V001", "business_licence", (bounds.register_start - timedelta(days=1)).isoformat(),
                 "2040-01-01"]]
    else:
        far = date(NIGHT.year + bounds.term_horizon_years, NIGHT.month, NIGHT.day)
        rows = [["Q1", "V001", "business_licence", "2024-01-01", far.isoformat()],
                ["Q2", "V001", "business_licence", "2024-01-01", (far + timedelta(days=1)).isoformat()]]
    header = [c.name for c in SOURCE.entity("qualifications").columns]
    folder = tmp_path / "vendor" / NIGHT.isoformat()
    _write(folder / "vendor_registry.csv", "registry", REGISTRY)
    folder.joinpath("qualifications.csv").write_text(
        ",".join(header) + "\n" + "".join(",".join(r) + "\n" for r in rows), encoding="utf-8")
    entries = [ManifestEntry("registry", folder / "vendor_registry.csv", f"vendor/{NIGHT}/vendor_registry.csv", NIGHT),
               ManifestEntry("qualifications", folder / "qualifications.csv", f"vendor/{NIGHT}/qualifications.csv",
                             NIGHT)]
    with closing(psycopg2.connect(db_url)) as conn:
        load_night(conn, SOURCE, entries, run_id="bounds", batch_date=NIGHT, key=KEY)
        with conn.cursor() as cur:
            cur.execute("select certificate_no from raw.vendor__qualifications")
            loaded = {r[0] for r in cur.fetchall()}
            cur.execute("select record->>'certificate_no', reason from raw._quarantine")
            reasons = dict(cur.fetchall())
    assert loaded == {"Q1"}
    assert list(reasons) == ["Q2"]
    assert ("issued_on: before" if kind == "register" else "expires_on: more than") in reasons["Q2"]
