"""Incremental extraction of an OLTP source (the HIS) by `updated_at`, into landing CSVs.

For business date N the window of a table is

    watermark(table, N) < updated_at < start of N + 1          (local time, like the source's values)

where watermark(table, N) is the largest `updated_at` extracted by any night *before* N, kept in
`raw._watermarks(source, entity, batch_date, watermark)`, the one watermark table of every source kind.

The read itself looks back: it takes `updated_at >= watermark - overlap` (`watermark_overlap`, set by
HOSPITAL_OPS_WATERMARK_OVERLAP_MINUTES), so a row that reaches the source late with an `updated_at`
equal to or just before the watermark (a long transaction committed after the last extract, a clock a
little behind) is still taken. A version already landed by an earlier night (same business key and
`updated_at`, read from raw: `landed_versions`) is skipped, so the overlap loads nothing twice. Because the upper bound is the end
of the business date and the lower bound only looks at earlier nights, rerunning night N takes the
same rows even if the source has received new rows since. (A row *updated* since has a new
`updated_at` and moves to the night that covers it; its old version is no longer in the source.)

All tables are read in one REPEATABLE READ, read-only transaction, so a night sees one consistent
snapshot of the source; each table is streamed with a server-side cursor (`yield_per`) and ordered by
its business key, so a rerun on unchanged data writes byte-identical files. The files land in
`<landing>/<source>/<YYYY-MM-DD>/` (see `hospital_ops.extract`), where the ordinary file loader
takes them: the DAG's extract and load tasks (`pipeline.extract`, `pipeline.load`) run the whole night
(watermarks → extract → plan_extract → load_night → record watermarks). Watermarks are recorded only
after the load committed, so a failed night is simply extracted again.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from hospital_ops.config import pseudonym_key
from hospital_ops.extract import LandingFolder, landing_text
from hospital_ops.load.loader import DROP_FOLDERS, RAW_SCHEMA, WATERMARKS
from hospital_ops.sources.spec import Entity, Source

if TYPE_CHECKING:
    from psycopg2.extensions import connection as PgConnection

log = logging.getLogger(__name__)

WATERMARK_COLUMN = "updated_at"
DEFAULT_SCHEMA = "his"
_CHUNK_ROWS = 5_000


class SqlExtractError(RuntimeError):
    """A source table cannot be extracted as its spec describes (missing table or column)."""


@dataclass
class SqlExtraction:
    source: str
    business_date: date
    cutoff: datetime  # exclusive upper bound: the start of the day after the business date
    folder: Path
    paths: list[Path] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)  # entity -> rows written (entities with rows only)
    max_updated_at: dict[str, datetime] = field(default_factory=dict)  # entity -> new watermark candidate
    watermarks: dict[str, datetime | None] = field(default_factory=dict)  # entity -> lower bound used
    already_landed: dict[str, int] = field(default_factory=dict)  # entity -> rows of the overlap skipped


def night_cutoff(business_date: date) -> datetime:
    return datetime.combine(business_date + timedelta(days=1), time())


DEFAULT_OVERLAP_MINUTES = 120


def watermark_overlap() -> timedelta:
    """How far before its watermark an incremental extract reads again (HOSPITAL_OPS_WATERMARK_OVERLAP_MINUTES)."""
    text = os.environ.get("HOSPITAL_OPS_WATERMARK_OVERLAP_MINUTES", "").strip()
    minutes = int(text) if text else DEFAULT_OVERLAP_MINUTES
    if minutes < 0:
        raise ValueError(f"HOSPITAL_OPS_WATERMARK_OVERLAP_MINUTES={text} must not be negative")
    return timedelta(minutes=minutes)


def read_from(watermark: datetime | None, overlap: timedelta) -> datetime | None:
    """The lower bound (inclusive) an extract reads from: the watermark less the overlap."""
    return None if watermark is None else watermark - overlap


def version_key(key_values: Sequence[object], updated_at: object) -> tuple[str, ...]:
    """A record's version as the landing files write it: business key and updated_at (to the second)."""
    return (*(landing_text(value) for value in key_values), landing_text(updated_at))


def landed_versions(conn: PgConnection, source: Source, business_date: date,
                    since: Mapping[str, datetime | None]) -> dict[str, set[tuple[str, ...]]]:
    """Per entity, the versions (business key, updated_at) earlier nights landed in raw from `since[entity]`
    on: what an extract's overlap reads again and must not load twice."""
    versions: dict[str, set[tuple[str, ...]]] = {}
    with conn.cursor() as cur:
        for entity in source.entities:
            lower = since.get(entity.name)
            if lower is None:
                continue
            keys = ", ".join(entity.column(name).raw_name for name in entity.business_key)
            cur.execute(f"select {keys}, {WATERMARK_COLUMN} from {RAW_SCHEMA}.{entity.raw_table} "
                        f"where {WATERMARK_COLUMN} >= %s and _batch_date < %s", (lower, business_date))
            versions[entity.name] = {version_key(row[:-1], row[-1]) for row in cur.fetchall()}
    conn.commit()
    return versions


def _safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


# ------------------------------------------------------------------------------------- extract


def extract_sql_source(
    source: Source,
    source_url: str,
    landing_dir: Path,
    business_date: date,
    *,
    watermarks: Mapping[str, datetime | None],
    landed: Mapping[str, set[tuple[str, ...]]] | None = None,
    overlap: timedelta | None = None,
    schema: str = DEFAULT_SCHEMA,
    chunk_rows: int = _CHUNK_ROWS,
    key: bytes | None = None,
) -> SqlExtraction:
    """Write the rows of every table of `source` changed in the night's window as landing CSVs.

    Table `<schema>.<entity name>` must have every spec column (extra columns are ignored) and
    `updated_at`. A table without rows in the window writes no file. The night's folder is replaced
    as a whole, so a rerun never leaves files of an earlier attempt behind. The window starts `overlap`
    before the watermark; a row whose version is in `landed` (see `landed_versions`) is skipped.
    """
    cutoff = night_cutoff(business_date)
    overlap = watermark_overlap() if overlap is None else overlap
    landed = landed or {}
    key = pseudonym_key() if key is None else key  # personal columns are hashed before they are written
    extraction = SqlExtraction(source.name, business_date, cutoff, Path())
    engine = sa.create_engine(source_url)
    try:
        with LandingFolder(landing_dir, source, business_date, key=key) as folder, engine.connect() as conn:
            conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            with conn.begin():
                for entity in sorted(source.entities, key=lambda e: (e.load_order, e.name)):
                    lower = watermarks.get(entity.name)
                    extraction.watermarks[entity.name] = lower
                    highest = _extract_table(conn, folder, entity, schema, read_from(lower, overlap), cutoff,
                                             chunk_rows, landed.get(entity.name, set()), extraction)
                    if highest is not None:
                        extraction.max_updated_at[entity.name] = highest
            extraction.paths = folder.commit()
            extraction.rows = dict(folder.rows)
            extraction.folder = folder.final
    finally:
        engine.dispose()
    log.info("%s %s: extracted %d rows from %d of %d tables of %s (window up to %s)", source.name, business_date,
             sum(extraction.rows.values()), len(extraction.rows), len(source.entities), _safe_url(source_url), cutoff)
    return extraction


def _source_table(conn: sa.Connection, schema: str, entity: Entity) -> sa.Table:
    try:
        table = sa.Table(entity.name, sa.MetaData(), schema=schema, autoload_with=conn)
    except sa.exc.NoSuchTableError:
        raise SqlExtractError(f"{schema}.{entity.name}: table not found (needed for {entity.raw_table})") from None
    missing = [column.name for column in entity.columns if column.name not in table.c]
    if WATERMARK_COLUMN not in table.c:
        missing.append(WATERMARK_COLUMN)
    if missing:
        raise SqlExtractError(f"{schema}.{entity.name}: missing columns {sorted(set(missing))} "
                              f"required by the {entity.raw_table} spec")
    return table


def _extract_table(conn: sa.Connection, folder: LandingFolder, entity: Entity, schema: str,
                   lower: datetime | None, cutoff: datetime, chunk_rows: int, landed: set[tuple[str, ...]],
                   extraction: SqlExtraction) -> datetime | None:
    """Stream one table's window (from `lower` inclusive) into the folder, less the versions already
    landed; return the largest updated_at seen (None if no rows)."""
    table = _source_table(conn, schema, entity)
    stamp = table.c[WATERMARK_COLUMN]
    condition = stamp < cutoff if lower is None else sa.and_(stamp >= lower, stamp < cutoff)
    key_positions = [[column.name for column in entity.columns].index(name) for name in entity.business_key]
    skipped = 0
    query = (sa.select(*(table.c[column.name] for column in entity.columns), stamp.label("_watermark"))
             .where(condition)
             .order_by(*(table.c[name] for name in entity.business_key)))
    highest: datetime | None = None
    width = len(entity.columns)
    try:
        result = conn.execution_options(yield_per=chunk_rows).execute(query)
        for partition in result.partitions():
            for row in partition:
                if highest is None or row[width] > highest:
                    highest = row[width]
                if landed and version_key([folder.cell(entity.columns[i], landing_text(row[i])) for i in key_positions],
                                          row[width]) in landed:  # raw holds a personal key as its pseudonym
                    skipped += 1  # read again by the overlap, landed by an earlier night
                    continue
                folder.write(entity, [landing_text(value) for value in row[:width]])
    except sa.exc.DBAPIError as exc:
        raise SqlExtractError(f"{schema}.{entity.name}: extraction failed: {exc.orig}") from exc
    if skipped:
        extraction.already_landed[entity.name] = skipped
    return highest


# ---------------------------------------------------------------------------------- watermarks


def load_watermarks(conn: PgConnection, source_name: str, business_date: date) -> dict[str, datetime | None]:
    """Per entity, the largest updated_at extracted by a night *before* `business_date`.

    Entities never extracted are absent (the extractor then reads them from the beginning).
    """
    with conn.cursor() as cur:
        cur.execute(
            f"select entity, max(watermark) from {WATERMARKS} "
            "where source = %s and entity <> %s and batch_date < %s group by entity",
            (source_name, DROP_FOLDERS, business_date),
        )
        return dict(cur.fetchall())


def save_watermarks(conn: PgConnection, source_name: str, business_date: date,
                    max_updated_at: Mapping[str, datetime], *, run_id: str | None = None) -> None:
    """Record what night `business_date` extracted, replacing an earlier attempt of that night (its
    drop-folder row, the loader's, stays)."""
    try:
        with conn.cursor() as cur:
            cur.execute(f"delete from {WATERMARKS} where source = %s and entity <> %s and batch_date = %s",
                        (source_name, DROP_FOLDERS, business_date))
            for entity, stamp in sorted(max_updated_at.items()):
                cur.execute(
                    f"insert into {WATERMARKS} (source, entity, batch_date, watermark, run_id) "
                    "values (%s, %s, %s, %s, %s)",
                    (source_name, entity, business_date, stamp, run_id),
                )
        conn.commit()
    except Exception:
        conn.rollback()
        raise
