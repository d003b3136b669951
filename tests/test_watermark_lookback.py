"""Watermarks with a look-back: records that reach a source late with an updated_at at or just before
the saved watermark are still extracted, and the overlap read again loads nothing twice (SQL and API
sources); a 429's Retry-After is capped and an entity has an overall deadline."""

from __future__ import annotations

import time
from contextlib import closing
from datetime import date, datetime, timedelta

import psycopg2
import pytest

from hospital_ops.extract.api import ApiExtractError, ApiSettings
from hospital_ops.extract.sql import watermark_overlap
from hospital_ops.sources.spec import Column, Entity, Source
from hospital_ops.sources.survey import SOURCE as SURVEY
from hospital_ops_sim.survey_api import Fault, SurveyApiServer
from incremental_nights import run_night

KEY = b"lookback-key"
TOKEN = "lookback-token"
NIGHT1, NIGHT2 = date(2026, 11, 1), date(2026, 11, 2)
ITEMS = Entity(source="lb", name="items", file_pattern="lb_items.csv", business_key=("item_id",),
               description="look-back", columns=(Column("item_id", required=True),
                                                 Column("qty", "int", required=True, min=0, max=100),
                                                 Column("updated_at", "timestamp", required=True, dates="register")))
LB = Source(name="lb", description="look-back", entities=(ITEMS,), extract="sql", sql_schema="src")


def _rows(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def _sql_night(source_url: str, warehouse: str, landing, night: date):  # type: ignore[no-untyped-def]
    return run_night(LB, source_url, warehouse, landing, night, run_id=f"run-{night}", key=KEY)


def test_sql_late_arrivals_at_the_watermark_are_extracted_once(fresh_database, tmp_path) -> None:
    source_url, warehouse = fresh_database("lb_src"), fresh_database("lb_wh")
    first = [("A", 1, datetime(2026, 11, 1, 10, 0)), ("B", 2, datetime(2026, 11, 1, 23, 0))]
    with closing(psycopg2.connect(source_url)) as conn, conn.cursor() as cur:
        cur.execute("create schema src; create table src.items (item_id text, qty int, updated_at timestamp)")
        cur.executemany("insert into src.items values (%s, %s, %s)", first)
        conn.commit()
    night1 = _sql_night(source_url, warehouse, tmp_path, NIGHT1)
    watermark = max(stamp for *_, stamp in first)
    assert night1.watermarks["items"] == watermark

    # committed after night 1's extract, stamped at and just before its watermark; and an ordinary row
    late = [("C", 3, watermark), ("D", 4, watermark - timedelta(minutes=1)), ("E", 5, datetime(2026, 11, 2, 9, 0))]
    with closing(psycopg2.connect(source_url)) as conn, conn.cursor() as cur:
        cur.executemany("insert into src.items values (%s, %s, %s)", late)
        conn.commit()
    night2 = _sql_night(source_url, warehouse, tmp_path, NIGHT2)

    overlap_start = watermark - watermark_overlap()
    read_again = [row for row in first if row[2] >= overlap_start]
    assert night2.load["rows_loaded"] == len(late)
    assert night2.counts["already_landed"].get("items", 0) == len(read_again)
    landed = _rows(warehouse, "select item_id, updated_at, count(*) from raw.lb__items group by 1, 2")
    assert sorted((i, s) for i, s, _ in landed) == sorted((i, s) for i, _, s in first + late)
    assert all(n == 1 for *_, n in landed)  # nothing loaded twice

    rerun = _sql_night(source_url, warehouse, tmp_path, NIGHT2)  # a rerun of the night is exact
    assert rerun.load["rows_loaded"] == len(late)
    assert len(_rows(warehouse, "select 1 from raw.lb__items")) == len(first) + len(late)


def _rating(rating_id: str, stamp: datetime) -> dict:
    iso = stamp.isoformat() + "+08:00"
    return {"rating_id": rating_id, "hospital_id": "H01", "department_id": "D01", "window_no": "W1",
            "window_service": "payment", "rated_at": iso, "score": 5, "updated_at": iso}


def _api_night(server: SurveyApiServer, warehouse: str, landing, night: date, **settings):  # type: ignore[no-untyped-def]
    api = ApiSettings(**{"retries": 3, "backoff_factor": 0.01, "page_size": 2, **settings})
    return run_night(SURVEY, server.base_url, warehouse, landing, night, run_id=f"run-{night}", key=KEY, token=TOKEN,
                     api=api)


def _server(records: list[dict]) -> SurveyApiServer:
    return SurveyApiServer({entity.name: [] for entity in SURVEY.entities} | {"window_ratings": records}, TOKEN)


def test_api_late_arrivals_at_the_watermark_are_extracted_once(fresh_database, tmp_path) -> None:
    warehouse = fresh_database("lb_api")
    first = [_rating("R1", datetime(2026, 11, 1, 9, 0)), _rating("R2", datetime(2026, 11, 1, 22, 30)),
             _rating("R3", datetime(2026, 11, 1, 23, 15))]
    with _server(first) as server:
        night1 = _api_night(server, warehouse, tmp_path, NIGHT1)
        watermark = night1.watermarks["window_ratings"]
        late = [_rating("R4", watermark), _rating("R5", watermark - timedelta(seconds=30)),
                _rating("R6", datetime(2026, 11, 2, 8, 0))]
        server.upsert("window_ratings", late)
        night2 = _api_night(server, warehouse, tmp_path, NIGHT2)

    def stamp(record: dict) -> datetime:
        return datetime.fromisoformat(record["updated_at"]).replace(tzinfo=None)

    read_again = [r for r in first if stamp(r) > watermark - watermark_overlap()]
    assert night2.load["rows_loaded"] == len(late)
    assert night2.counts["already_landed"].get("window_ratings", 0) == len(read_again)
    landed = _rows(warehouse, "select rating_id, count(*) from raw.survey__window_ratings group by 1")
    assert dict(landed) == {r["rating_id"]: 1 for r in first + late}


def test_retry_after_is_capped_and_an_entity_has_a_deadline(fresh_database, tmp_path) -> None:
    warehouse = fresh_database("lb_api_faults")
    records = [_rating(f"R{i}", datetime(2026, 11, 1, 8, i)) for i in range(6)]
    with _server(records) as server:
        server.inject(Fault("rate_limit", entity="window_ratings", retry_after=3600))
        started = time.monotonic()
        night = _api_night(server, warehouse, tmp_path, NIGHT1,
                           retry_after_cap=0.2)
        assert time.monotonic() - started < 30  # the hour the platform asked for was not waited
        assert night.load["rows_loaded"] == len(records)

        server.inject(Fault("slow", entity="window_ratings", delay=0.4, times=len(records)))
        with pytest.raises(ApiExtractError, match=r"window_ratings: not finished within the 0.5 s deadline"):
            _api_night(server, warehouse, tmp_path, NIGHT2, deadline=0.5)
