"""A bad row is quarantined once: the SQL extractor's look-back reads a quarantined row again every night,
and a re-read with the same content is counted (raw._load_files.rows_already_quarantined) without a new
quarantine row, while a changed row is quarantined again; every file still reconciles (read = loaded +
quarantined) and a rerun of a night is exact."""

from __future__ import annotations

from contextlib import closing
from datetime import date, datetime, timedelta
from pathlib import Path

import psycopg2

from hospital_ops.extract.sql import watermark_overlap
from hospital_ops.sources.spec import Column, Entity, Source
from incremental_nights import run_night

KEY = b"quarantine-once-key"
NIGHT1, NIGHT2, NIGHT3 = date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)
QTY_MAX = 100
ITEMS = Entity(source="qo", name="items", file_pattern="qo_items.csv", business_key=("item_id",),
               description="quarantine once", columns=(Column("item_id", required=True),
                                                       Column("qty", "int", required=True, min=0, max=QTY_MAX),
                                                       Column("updated_at", "timestamp", required=True,
                                                              dates="register")))
QO = Source(name="qo", description="quarantine once", entities=(ITEMS,), extract="sql", sql_schema="src")


def _rows(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def _source(url: str, rows: list[tuple]) -> None:
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.executemany("insert into src.items values (%s, %s, %s)", rows)
        conn.commit()


def _night(source_url: str, warehouse: str, var_dir: Path, night: date):  # type: ignore[no-untyped-def]
    return run_night(QO, source_url, warehouse, var_dir, night, run_id=f"run-{night}", key=KEY)


def _quarantined(warehouse: str) -> list[tuple]:
    return _rows(warehouse, "select batch_date, record->>'item_id', record->>'qty' from raw._quarantine "
                            "order by batch_date, 2, 3")


def test_a_quarantined_row_read_again_is_not_quarantined_again(fresh_database, tmp_path: Path) -> None:
    source_url, warehouse = fresh_database("qo_src"), fresh_database("qo_wh")
    with closing(psycopg2.connect(source_url)) as conn, conn.cursor() as cur:
        cur.execute("create schema src; create table src.items (item_id text, qty int, updated_at timestamp)")
        conn.commit()
    watermark = datetime(2026, 11, 1, 23, 0)
    bad = ("B", QTY_MAX + 400, watermark - timedelta(minutes=5))  # inside the next night's look-back
    _source(source_url, [("A", 1, watermark), bad])
    night1 = _night(source_url, warehouse, tmp_path, NIGHT1)
    assert (night1.load["rows_loaded"], night1.load["rows_quarantined"]) == (1, 1)
    assert _quarantined(warehouse) == [(NIGHT1, "B", str(bad[1]))]

    # night 2 reads the overlap again (A is skipped as landed; B, never landed, is read and is still bad)
    assert bad[2] >= watermark - watermark_overlap()
    _source(source_url, [("C", 3, watermark + timedelta(hours=3))])
    night2 = _night(source_url, warehouse, tmp_path, NIGHT2)
    assert (night2.load["rows_read"], night2.load["rows_loaded"], night2.load["rows_quarantined"]) == (2, 1, 1)
    assert _quarantined(warehouse) == [(NIGHT1, "B", str(bad[1]))]  # does not fire again: the same content
    assert _rows(warehouse, "select rows_read, rows_loaded, rows_quarantined, rows_already_quarantined "
                            "from raw._load_files where batch_date = %s", (NIGHT2,)) == [(2, 1, 1, 1)]
    rerun = _night(source_url, warehouse, tmp_path, NIGHT2)  # a rerun of the night is exact
    assert rerun.load | {"run_id": None} == night2.load | {"run_id": None}
    assert _quarantined(warehouse) == [(NIGHT1, "B", str(bad[1]))]

    # the source changes B, still out of range: a changed row is quarantined again (fires)
    changed = ("B", QTY_MAX + 500, watermark + timedelta(hours=4))
    _source(source_url, [changed])
    night3 = _night(source_url, warehouse, tmp_path, NIGHT3)
    assert night3.load["rows_quarantined"] >= 1
    assert _quarantined(warehouse) == [(NIGHT1, "B", str(bad[1])), (NIGHT3, "B", str(changed[1]))]
    read, loaded, quarantined, already = _rows(
        warehouse, "select sum(rows_read), sum(rows_loaded), sum(rows_quarantined), sum(rows_already_quarantined) "
                   "from raw._load_files where batch_date = %s", (NIGHT3,))[0]
    assert read == loaded + quarantined
    in_quarantine = _rows(warehouse, "select count(*) from raw._quarantine where batch_date = %s", (NIGHT3,))[0][0]
    assert quarantined == in_quarantine + already
