"""A verdict per batch: a batch the quality gate rejected stays out of staging (and so out of everything
published) while later good nights go through, until it is accepted with who and why; verdicts are
append-only and a change of the held set makes the next marts build a full refresh."""

from __future__ import annotations

import csv
from contextlib import closing
from datetime import date, timedelta
from pathlib import Path

import psycopg2
import pytest

from hospital_ops import batches
from hospital_ops.dbt_runner import run_dbt
from hospital_ops.load.loader import ManifestEntry, load_night
from hospital_ops.pipeline import format_summary, night_summary
from hospital_ops.quality.gate import run_quality_gate
from hospital_ops.sources.vendor import SOURCE

KEY = b"verdict-key"
NIGHT1 = date(2026, 11, 1)
NIGHT2, NIGHT3 = NIGHT1 + timedelta(days=1), NIGHT1 + timedelta(days=2)
REGISTRY = [["V001", "顺达医药物流有限公司", "logistics_delivery", "medium", "91310000MA1FL0XX1A", "张伟",
             "13800138000", "2024-03-01", "N"]]
INSPECTIONS = {
    NIGHT1: [["I1", "V001", "2026-11-01", "patrol", "10", "9"]],
    # the same inspection twice in one file with different figures: the gate's per-file key check fails
    NIGHT2: [["I2", "V001", "2026-11-02", "patrol", "10", "9"], ["I2", "V001", "2026-11-02", "patrol", "10", "3"],
             ["I3", "V001", "2026-11-02", "spot_check", "4", "4"]],
    NIGHT3: [["I4", "V001", "2026-11-03", "patrol", "8", "8"]],
}


def _write(path: Path, entity: str, rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([c.name for c in SOURCE.entity(entity).columns])
        writer.writerows(rows)


def _night(url: str, tmp_path: Path, night: date, *, first: bool = False) -> None:
    folder = tmp_path / "vendor" / night.isoformat()
    entries = []
    if night == NIGHT1 or first:  # the vendor register comes with the first night
        _write(folder / "vendor_registry.csv", "registry", REGISTRY)
        entries.append(ManifestEntry("registry", folder / "vendor_registry.csv", f"vendor/{night}/vendor_registry.csv",
                                     night))
    _write(folder / "inspections.csv", "inspections", INSPECTIONS[night])
    entries.append(ManifestEntry("inspections", folder / "inspections.csv", f"vendor/{night}/inspections.csv", night))
    with closing(psycopg2.connect(url)) as conn:
        load_night(conn, SOURCE, entries, run_id=f"run-{night}", batch_date=night, key=KEY)
    run_quality_gate(url, run_id=f"run-{night}", business_date=night, data_docs_dir=tmp_path / "docs",
                     raise_on_failure=False)


def _staged(url: str, tmp_path: Path, night: date) -> set[str]:
    run_dbt(["run", "--select", "stg_vendor__inspections"], warehouse_url=url, business_date=night, label="staging",
            target_path=tmp_path / "target")
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.execute("select table_schema from information_schema.views where table_name = 'stg_vendor__inspections'")
        schema = cur.fetchone()[0]
        cur.execute(f"select inspection_id from {schema}.stg_vendor__inspections")
        return {row[0] for row in cur.fetchall()}


def _ids(night: date) -> set[str]:
    return {row[0] for row in INSPECTIONS[night]}


def test_a_rejected_batch_is_held_until_accepted_while_later_nights_go_through(db_url: str, tmp_path: Path) -> None:
    _night(db_url, tmp_path, NIGHT1)
    with closing(psycopg2.connect(db_url)) as conn:
        assert batches.marts_full_refresh_needed(conn) is None  # nothing held, nothing to rebuild
    _night(db_url, tmp_path, NIGHT2)

    with closing(psycopg2.connect(db_url)) as conn, conn.cursor() as cur:
        held = batches.held_batches(cur)
        cur.execute("select entity, verdict from raw._batch_verdicts where batch_date = %s order by entity", (NIGHT2,))
        verdicts = dict(cur.fetchall())
    assert [(h["source"], h["entity"], h["batch_date"]) for h in held] == [("vendor", "inspections", NIGHT2.isoformat())]
    assert "expect_compound_columns_to_be_unique" in held[0]["reasons"]
    assert verdicts["inspections"] == "rejected" and verdicts["registry"] == "passed"
    summary = format_summary(night_summary(warehouse_url=db_url, business_date=NIGHT2))
    assert f"vendor.inspections batch {NIGHT2}" in summary and "night FAILED before publishing" in summary

    _night(db_url, tmp_path, NIGHT3)  # a later good night
    assert _staged(db_url, tmp_path, NIGHT3) == _ids(NIGHT1) | _ids(NIGHT3)
    with closing(psycopg2.connect(db_url)) as conn:
        changed = batches.marts_full_refresh_needed(conn)
        assert changed is not None  # incremental staging merged the batch before the gate held it
        batches.record_held_set_applied(conn, changed)
        assert batches.marts_full_refresh_needed(conn) is None

        with pytest.raises(batches.BatchError, match="--by"):
            batches.accept(conn, "vendor", NIGHT2, by="", note="checked")
        released = batches.accept(conn, "vendor", NIGHT2, by="王主任", note="two inspections of the same ward, confirmed")
        assert released == ["inspections"]
        assert batches.marts_full_refresh_needed(conn) is not None  # the released batch must be merged again
        with pytest.raises(batches.BatchError, match="no held batch"):
            batches.accept(conn, "vendor", NIGHT2, by="王主任", note="again")
        with conn.cursor() as cur, pytest.raises(psycopg2.errors.RaiseException, match="append-only"):
            cur.execute("update raw._batch_verdicts set verdict = 'passed'")
        conn.rollback()
        with conn.cursor() as cur:
            cur.execute("select decided_by, note from raw._batch_verdicts where verdict = 'accepted'")
            assert cur.fetchall() == [("王主任", "two inspections of the same ward, confirmed")]
    assert _staged(db_url, tmp_path, NIGHT3) == _ids(NIGHT1) | _ids(NIGHT2) | _ids(NIGHT3)


def test_a_rerun_whose_batch_passes_releases_it(db_url: str, tmp_path: Path) -> None:
    _night(db_url, tmp_path, NIGHT2, first=True)
    original = INSPECTIONS[NIGHT2]
    INSPECTIONS[NIGHT2] = corrected = [row for row in original if row[-1] != "3"]  # the vendor's corrected file
    try:
        _night(db_url, tmp_path, NIGHT2, first=True)  # the night run again
    finally:
        INSPECTIONS[NIGHT2] = original
    with closing(psycopg2.connect(db_url)) as conn, conn.cursor() as cur:
        cur.execute("select count(*) from raw.vendor__inspections where _batch_date = %s", (NIGHT2,))
        assert cur.fetchone()[0] == len(corrected)
    with closing(psycopg2.connect(db_url)) as conn, conn.cursor() as cur:
        assert batches.held_batches(cur) == []
        cur.execute("select verdict from raw._batch_verdicts where entity = 'inspections' and batch_date = %s "
                    "order by decided_at", (NIGHT2,))
        assert [row[0] for row in cur.fetchall()] == ["rejected", "passed"]


def test_a_later_delivery_of_every_row_supersedes_it(db_url: str, tmp_path: Path) -> None:
    _night(db_url, tmp_path, NIGHT2, first=True)
    corrected = [row for row in INSPECTIONS[NIGHT2] if row[-1] != "3"]  # one version of I2, and I3 again
    INSPECTIONS[NIGHT3 + timedelta(days=1)] = corrected
    try:
        _night(db_url, tmp_path, NIGHT3 + timedelta(days=1))
    finally:
        del INSPECTIONS[NIGHT3 + timedelta(days=1)]
    with closing(psycopg2.connect(db_url)) as conn, conn.cursor() as cur:
        assert batches.held_batches(cur) == []
        cur.execute("select verdict from raw._batch_verdicts where entity = 'inspections' and batch_date = %s "
                    "order by decided_at", (NIGHT2,))
        assert [row[0] for row in cur.fetchall()] == ["rejected", "superseded"]
