"""Publishing only forwards: a night older than the newest published one is refused before it builds,
snapshots or publishes anything, unless forced, and a forced publication is recorded."""

from __future__ import annotations

from contextlib import closing
from datetime import date

import psycopg2
import pytest

from hospital_ops.config import environment
from hospital_ops.dbt_runner import DbtStageFailed, run_stage
from hospital_ops.pipeline import FORCE_PUBLISH_ENV, PublicationOutOfOrder, publish

OLDER, NEWER = date(2026, 11, 1), date(2026, 11, 2)


def _rows(url: str, sql: str) -> list[tuple]:
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def _build(url: str, night: date) -> None:
    """What dbt leaves in a build schema for a night: a table holding the night's figures."""
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.execute("create schema if not exists marts_build; drop table if exists marts_build.figures; "
                    "create table marts_build.figures (as_of date, value int)")
        cur.execute("insert into marts_build.figures values (%s, %s)", (night, night.day))
        conn.commit()


def test_an_older_night_is_refused_before_snapshots_and_publication(db_url: str) -> None:
    _build(db_url, NEWER)
    publish(warehouse_url=db_url, business_date=NEWER, run_id="newer")
    _build(db_url, OLDER)

    for stage in ("marts", "scoring", "snapshots"):
        with pytest.raises(DbtStageFailed, match=f"refusing night {OLDER}: {NEWER} is already published"):
            run_stage(stage, warehouse_url=db_url, business_date=OLDER)
    assert _rows(db_url, "select count(*) from information_schema.tables where table_schema = 'snapshots'") == [(0,)]
    with pytest.raises(PublicationOutOfOrder, match="--force-publish"):
        publish(warehouse_url=db_url, business_date=OLDER, run_id="older")
    assert _rows(db_url, "select as_of from marts.figures") == [(NEWER,)]  # BI kept the newer night

    publish(warehouse_url=db_url, business_date=NEWER, run_id="newer-rerun")  # the same night again is fine
    with environment({FORCE_PUBLISH_ENV: "1"}):
        publish(warehouse_url=db_url, business_date=OLDER, run_id="older-forced")
    assert _rows(db_url, "select as_of from marts.figures") == [(OLDER,)]
    recorded = dict(_rows(db_url, "select run_id, bool_and(forced) from audit.publications group by run_id"))
    assert recorded == {"newer": False, "newer-rerun": False, "older-forced": True}
