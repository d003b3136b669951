"""A night of one incremental source (SQL or API), outside Airflow: the sequence the DAG's
extract and load tasks run (`pipeline.extract`, `pipeline.load`: watermarks → extract →
plan_extract → load_night → record watermarks), for a source spec and extract options a test chooses
(a source that is not in hospital_ops.sources.SOURCES, a page size, a retry policy, a fixed key).
Test-only: the product runs nights through the DAG."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from hospital_ops.extract import remove_night_folder
from hospital_ops.extract.api import ApiExtraction, extract_api_source
from hospital_ops.extract.sql import (
    DEFAULT_SCHEMA,
    SqlExtraction,
    extract_sql_source,
    landed_versions,
    load_watermarks,
    read_from,
    save_watermarks,
    watermark_overlap,
)
from hospital_ops.load.loader import NightLoad, ensure_raw_schema, load_night, plan_extract
from hospital_ops.sources.spec import Source


@dataclass
class IncrementalNight:
    extraction: SqlExtraction | ApiExtraction
    load: NightLoad


def _night(source: Source, warehouse_conn: Any, landing_dir: Path, business_date: date, *, run_id: str, key: bytes,
           keep_landing: bool, overlap, extract) -> IncrementalNight:  # type: ignore[no-untyped-def]
    ensure_raw_schema(warehouse_conn, source)
    watermarks = load_watermarks(warehouse_conn, source.name, business_date)
    overlap = watermark_overlap() if overlap is None else overlap
    landed = landed_versions(warehouse_conn, source, business_date,
                             {name: read_from(mark, overlap) for name, mark in watermarks.items()})
    extraction = extract(watermarks, landed, overlap)
    # exactly this night's folder (the rows of a failed earlier night were read again from the source)
    manifest = plan_extract(Path(landing_dir), source, business_date, business_date - timedelta(days=1))
    night = load_night(warehouse_conn, source, manifest, run_id=run_id, batch_date=business_date, key=key)
    save_watermarks(warehouse_conn, source.name, business_date, extraction.max_updated_at, run_id=run_id)
    if not keep_landing:  # loaded: the landing files have done their work
        remove_night_folder(landing_dir, source, business_date)
    return IncrementalNight(extraction, night)


def run_sql_night(source: Source, source_url: str, warehouse_conn: Any, landing_dir: Path, business_date: date, *,
                  run_id: str, key: bytes, schema: str = DEFAULT_SCHEMA, keep_landing: bool = False,
                  overlap=None) -> IncrementalNight:  # type: ignore[no-untyped-def]
    return _night(source, warehouse_conn, landing_dir, business_date, run_id=run_id, key=key,
                  keep_landing=keep_landing, overlap=overlap,
                  extract=lambda marks, landed, overlap: extract_sql_source(
                      source, source_url, landing_dir, business_date, watermarks=marks, landed=landed,
                      overlap=overlap, schema=schema, key=key))


def run_api_night(source: Source, base_url: str, token: str | None, warehouse_conn: Any, landing_dir: Path,
                  business_date: date, *, run_id: str, key: bytes, keep_landing: bool = False, overlap=None,
                  **extract_options: Any) -> IncrementalNight:  # type: ignore[no-untyped-def]
    return _night(source, warehouse_conn, landing_dir, business_date, run_id=run_id, key=key,
                  keep_landing=keep_landing, overlap=overlap,
                  extract=lambda marks, landed, overlap: extract_api_source(
                      source, base_url, token, landing_dir, business_date, watermarks=marks, landed=landed,
                      overlap=overlap, key=key, **extract_options))
