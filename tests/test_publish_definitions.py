"""Publish keeps what dbt built into a table's definition: the descriptions persist_docs wrote as
comments (table and columns), the contract's constraints and the indexes — on the first copy, on a
same-shape copy and after a change of shape — and leaves a table without them as it is."""

from __future__ import annotations

import re
from datetime import date

from hospital_ops import pipeline
from nightly_runs import query


def _definition(url: str, schema: str, table: str) -> dict:
    relation = f"{schema}.{table}"
    return {
        "table": query(url, "select obj_description(%s::regclass, 'pg_class')", (relation,))[0][0],
        "columns": dict(query(url, "select attname, col_description(attrelid, attnum) from pg_attribute "
                                   "where attrelid = %s::regclass and attnum > 0 and not attisdropped", (relation,))),
        "constraints": sorted(query(url, "select contype::text, pg_get_constraintdef(oid) from pg_constraint "
                                         "where conrelid = %s::regclass", (relation,))),
        # index names are the server's to choose; what is indexed, and how, must match
        "indexes": sorted(re.sub(r"INDEX \S+ ON \S+", "INDEX ON", r[0]) for r in
                          query(url, "select indexdef from pg_indexes where schemaname = %s and tablename = %s",
                                (schema, table))),
    }


def _build(url: str, extra_column: str = "") -> None:
    import psycopg2

    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("create schema if not exists marts_build; create schema if not exists scoring_build")
        cur.execute("drop table if exists marts_build.rpt_demo; drop table if exists marts_build.plain")
        cur.execute(f"""
            create table marts_build.rpt_demo (
                demo_id text not null primary key, month date not null,
                score numeric check (score between 0 and 100){extra_column});
            create index rpt_demo_month on marts_build.rpt_demo (month);
            comment on table marts_build.rpt_demo is 'Demo report 示例报表';
            comment on column marts_build.rpt_demo.score is 'Score 得分 (0-100)';
            insert into marts_build.rpt_demo (demo_id, month, score) values ('a', '2026-10-01', 90), ('b', '2026-10-01', 70);
            create table marts_build.plain as select 1 as n;""")
    conn.close()


def test_publish_keeps_comments_constraints_and_indexes(db_url: str) -> None:
    _build(db_url)
    for night in range(2):  # a first copy, then a same-shape copy
        pipeline.publish(warehouse_url=db_url, business_date=date(2026, 11, 20 + night), run_id=f"night-{night}")
        built, published = _definition(db_url, "marts_build", "rpt_demo"), _definition(db_url, "marts", "rpt_demo")
        assert published == built
        assert published["table"] == "Demo report 示例报表"
        assert published["columns"]["score"] == "Score 得分 (0-100)" and published["columns"]["month"] is None
        assert any(kind == "p" for kind, _ in published["constraints"])
        assert any(kind == "c" and "score" in definition for kind, definition in published["constraints"])
        assert "CREATE INDEX ON USING btree (month)" in published["indexes"]
        assert query(db_url, "select count(*) from marts.rpt_demo") == [(2,)]
    plain = _definition(db_url, "marts", "plain")
    assert plain["table"] is None and plain["constraints"] == [] and plain["indexes"] == []

    _build(db_url, extra_column=", note text")  # a new column: the published table is recreated, still whole
    pipeline.publish(warehouse_url=db_url, business_date=date(2026, 11, 22), run_id="night-2")
    assert _definition(db_url, "marts", "rpt_demo") == _definition(db_url, "marts_build", "rpt_demo")
    assert "note" in _definition(db_url, "marts", "rpt_demo")["columns"]
