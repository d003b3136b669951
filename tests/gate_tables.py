"""Building the tables a quality-gate checkpoint validates, from what its suites touch (types from the
source specs for raw tables), so gate tests follow the suites in expectations/ instead of restating
them. Shared by the test_quality_gate*.py files."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from itertools import count

import psycopg2

from hospital_ops.quality import load_checkpoint, load_suite
from hospital_ops.sources import LANDED_SOURCES as SOURCES
from hospital_ops.sources.spec import PG_TYPES

META_TYPES = {"_run_id": "text", "_batch_date": "date", "_source_file": "text", "_row_number": "integer",
              "_row_hash": "text", "_loaded_at": "timestamptz"}

_hashes = count(1)


def raw_types(table: str) -> dict[str, str]:
    schema, name = table.split(".")
    assert schema == "raw"
    entity = next(e for source in SOURCES.values() for e in source.entities if e.raw_table == name)
    return {**{c.raw_name: PG_TYPES[c.type] for c in entity.columns}, **META_TYPES}


def _condition_columns(condition) -> list[str]:  # type: ignore[no-untyped-def]
    if isinstance(condition, dict):
        found = [condition["column"]["name"]] if isinstance(condition.get("column"), dict) else []
        return found + [c for value in condition.values() for c in _condition_columns(value)]
    if isinstance(condition, list):
        return [c for value in condition for c in _condition_columns(value)]
    return []


def suite_columns(suite: dict) -> list[str]:
    """Every column a suite's expectations (and their row conditions) name, in order of appearance."""
    columns: list[str] = []
    for expectation in suite["expectations"]:
        kwargs = expectation["kwargs"]
        for key in ("column", "column_A", "column_B"):
            if key in kwargs:
                columns.append(kwargs[key])
        columns.extend(kwargs.get("column_list", []))
        columns.extend(_condition_columns(kwargs.get("row_condition")))
    return list(dict.fromkeys(columns))


def expected_result_count(checkpoint: str) -> int:
    return sum(len(load_suite(v.suite)["expectations"]) for v in load_checkpoint(checkpoint).validations)


def create_tables(url: str, checkpoint: str, mart_types: Callable[[str, list[str]], dict[str, str]]) -> None:
    """Create every table `checkpoint` validates with the columns its suites touch."""
    columns_by_table: dict[str, list[str]] = {}
    for v in load_checkpoint(checkpoint).validations:
        needed = columns_by_table.setdefault(v.table, [])
        extra = ["_batch_date", "_row_hash", "_source_file"] if v.table.startswith("raw.") else []
        for column in suite_columns(load_suite(v.suite)) + extra:
            if column not in needed:
                needed.append(column)
    conn = psycopg2.connect(url)
    with conn.cursor() as cur:
        cur.execute("create schema if not exists raw; create schema if not exists marts_build")  # raw: the migrations'
        for table, columns in columns_by_table.items():
            types = raw_types(table) if table.startswith("raw.") else mart_types(table, columns)
            cur.execute(f"create table {table} ({', '.join(f'{c} {types[c]}' for c in columns)})")
    conn.commit()
    conn.close()


def insert(conn, table: str, batch_date: date, source_file: str | None = None, **values) -> None:  # type: ignore[no-untyped-def]
    """Insert one row; a raw row gets its batch, a unique row hash and a source file by default."""
    if table.startswith("raw."):
        values.setdefault("_batch_date", batch_date)
        values.setdefault("_row_hash", f"h{next(_hashes):06d}")
        source, entity = table[len("raw."):].split("__")
        values.setdefault("_source_file", source_file or f"{source}/{batch_date}/{source}_{entity}.csv")
    with conn.cursor() as cur:
        cur.execute(f"insert into {table} ({', '.join(values)}) values ({', '.join(['%s'] * len(values))})",
                    list(values.values()))
    conn.commit()


def insert_night(url: str, rows: list[tuple[str, dict]], batch_date: date) -> None:
    """Insert (table, values) rows of one night, each as `insert` does."""
    conn = psycopg2.connect(url)
    try:
        for table, values in rows:
            insert(conn, table, batch_date, **values)
    finally:
        conn.close()
