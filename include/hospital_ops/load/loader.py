"""Land a night's files in the `raw` schema with PostgreSQL COPY, quarantining what is malformed.

One night of one source is one transaction: the night's previous batch (a rerun) is deleted, every
file is COPYed as text into a landing table, one set-based statement per file (or per batch of small
files) converts and checks its rows in the database (`checks_sql`) and inserts the good ones into `raw.<source>__<entity>` with
load metadata and the malformed ones into `raw._quarantine` with the reason, and each file is
reconciled (read = loaded + quarantined, checked against what the database holds). The extract
watermark moves only when the whole night commits, so a failed night leaves nothing behind and a
rerun is exact.

A CSV file streams straight into COPY (re-encoded to UTF-8 chunk by chunk when it is GB18030): no
Python work per row. Small CSV files whose records are their lines (`files.read_small_csv`: most of a
vendor's thousand files a night) are read whole and land several at a time, headers removed, with one
COPY and one execution of the entity's checking statement (`_load_batch`); the statement tells each
row's file by its landing number. A night of many small files so costs a few statements, not one
per file. Python frames the rows itself only where COPY cannot: Excel workbooks, and a CSV
file COPY rejects (a row with the wrong number of cells, a blank line, a broken quote). Such a file is
reread with the csv module, its well-formed rows go to the same landing table and the same SQL
checks, and its misshapen rows are quarantined from Python, as before.
"""

from __future__ import annotations

import io
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg2

from hospital_ops import limits
from hospital_ops.config import date_bounds
from hospital_ops.db import fetch_one
from hospital_ops.load import checks_sql
from hospital_ops.load.files import (
    FileFacts,
    SmallCsv,
    SourceFileError,
    Utf8Stream,
    broken_reason,
    csv_buffer_writer,
    csv_header,
    file_facts,
    header_positions,
    is_misshapen,
    misshapen_reason,
    pseudonymised_columns,
    read_rows,
    read_small_csv,
)
from hospital_ops.load.parsing import pseudonymize
from hospital_ops.sources.spec import PG_TYPES, Entity, Source

if TYPE_CHECKING:
    from collections.abc import Callable

    from psycopg2.extensions import connection as PgConnection
    from psycopg2.extensions import cursor as PgCursor

log = logging.getLogger(__name__)

RAW_SCHEMA = "raw"
# every source kind's watermarks (migration 0002): a file source's drop folders under this entity,
# a SQL or API source's largest updated_at per entity (extract/sql.py)
WATERMARKS = f"{RAW_SCHEMA}._watermarks"
DROP_FOLDERS = "drop_folders"
_COPY_CHUNK_ROWS = 50_000
_REASON_VALUES = re.compile(r"'[^']*'|\"[^\"]*\"|-?\d+(?:\.\d+)?|(?<=as ).*$")  # values out of reasons
# each file's checking statement works on one landing table at a time; give it memory to keep the
# checked rows and the duplicate lookup off disk (per transaction, not a server setting)
_WORK_MEM = "128MB"
_TRUNCATE_AFTER_ROWS = 10_000  # emptying a landing table: DELETE is cheaper for a small file, TRUNCATE for a big one
_BATCH_BYTES = 16 << 20  # small files landed by one COPY and checked by one statement: at most this much text


class ReconciliationError(RuntimeError):
    """Rows read from a file do not equal rows loaded plus rows quarantined."""


@dataclass(frozen=True)
class ManifestEntry:
    entity: str
    path: Path
    relative_path: str  # as recorded in raw tables: <source>/<YYYY-MM-DD>/<file>
    folder_date: date


@dataclass
class FileLoad:
    entity: str
    source_file: str
    sha256: str
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    # of rows_quarantined, rows an earlier night already quarantined with the same content: counted, not
    # quarantined again (raw._quarantine.content_hash)
    rows_already_quarantined: int = 0
    reasons: Counter = field(default_factory=Counter)
    seconds: float = 0.0  # wall time to read, land, check and insert the file (for the benchmark)


@dataclass
class NightLoad:
    source: str
    run_id: str
    batch_date: date
    files: list[FileLoad]

    @property
    def rows_read(self) -> int:
        return sum(f.rows_read for f in self.files)

    @property
    def rows_loaded(self) -> int:
        return sum(f.rows_loaded for f in self.files)

    @property
    def rows_quarantined(self) -> int:
        return sum(f.rows_quarantined for f in self.files)

    def top_reasons(self, limit: int = 5) -> list[tuple[str, int]]:
        total: Counter = Counter()
        for file_load in self.files:
            total.update(file_load.reasons)
        return total.most_common(limit)

    def as_dict(self) -> dict:
        return {
            "source": self.source,
            "run_id": self.run_id,
            "batch_date": self.batch_date.isoformat(),
            "files": len(self.files),
            "rows_read": self.rows_read,
            "rows_loaded": self.rows_loaded,
            "rows_quarantined": self.rows_quarantined,
            "top_reasons": self.top_reasons(),
        }


def reason_category(entity: str, reason: str) -> str:
    """A quarantine reason without its values, to count reasons of the same kind together."""
    return f"{entity}: {_REASON_VALUES.sub('…', reason)}"


# ----------------------------------------------------------------------------------------- DDL


def ensure_raw_schema(conn: PgConnection, source: Source) -> None:
    """Create this source's raw tables from its spec (the one place they are made; a new column is a
    new column in the spec). The raw schema's fixed tables — quarantine, load files, watermarks, batch
    verdicts — are the migrations' (hospital_ops.migrate), applied before any night."""
    with conn.cursor() as cur:
        # the first night's extract tasks run side by side under the scheduler: concurrent
        # `create … if not exists` collide in the catalog, so the first one creates the tables under a
        # lock (held to the end of its transaction) and later nights skip it
        cur.execute("select bool_or(to_regclass(t) is null) from unnest(%s::text[]) as t",
                    ([f"{RAW_SCHEMA}.{e.raw_table}" for e in source.entities],))
        if fetch_one(cur)[0]:
            cur.execute("select pg_advisory_xact_lock(hashtext('hospital_ops.ensure_raw_schema'))")
        for entity in source.entities:
            columns = ",\n".join(f"{c.raw_name} {PG_TYPES[c.type]}" for c in entity.columns)
            cur.execute(
                f"""
                create table if not exists {RAW_SCHEMA}.{entity.raw_table} (
                    {columns},
                    _run_id text not null, _batch_date date not null, _source_file text not null,
                    _row_number integer not null, _row_hash text not null,
                    _loaded_at timestamptz not null default now())
                """
            )
            cur.execute(
                f"create index if not exists {entity.raw_table}__batch "
                f"on {RAW_SCHEMA}.{entity.raw_table} (_batch_date)"
            )
            # incremental staging reads the rows landed since its last build; raw grows by appends (a
            # rerun replaces only its own night's rows), so _loaded_at follows the physical order and
            # a small BRIN index finds those rows without scanning the history
            cur.execute(
                f"create index if not exists {entity.raw_table}__loaded_at "
                f"on {RAW_SCHEMA}.{entity.raw_table} using brin (_loaded_at)"
            )
    conn.commit()


# ------------------------------------------------------------------------------------- extract


def watermark(conn: PgConnection, source: str, batch_date: date) -> date | None:
    """The last drop folder taken by a night before `batch_date` (so a rerun sees the same files)."""
    with conn.cursor() as cur:
        cur.execute(
            f"select max(watermark)::date from {WATERMARKS} where source = %s and entity = %s and batch_date < %s",
            (source, DROP_FOLDERS, batch_date),
        )
        return fetch_one(cur)[0]


def plan_extract(inbox: Path, source: Source, batch_date: date, after: date | None) -> list[ManifestEntry]:
    """Files in drop folders dated after the watermark up to the night's business date."""
    source_dir = inbox / source.name
    if not source_dir.is_dir():
        raise SourceFileError(f"{source_dir}: inbox folder for source {source.name!r} not found")
    entries: list[ManifestEntry] = []
    for folder in sorted(p for p in source_dir.iterdir() if p.is_dir()):
        try:
            folder_date = date.fromisoformat(folder.name)
        except ValueError:
            log.warning("ignoring %s: not a YYYY-MM-DD drop folder", folder)
            continue
        if folder_date > batch_date or (after is not None and folder_date <= after):
            continue
        claimed: set[Path] = set()
        for entity in sorted(source.entities, key=lambda e: e.load_order):
            for path in sorted(folder.glob(entity.file_pattern)):
                claimed.add(path)
                entries.append(
                    ManifestEntry(entity.name, path, f"{source.name}/{folder.name}/{path.name}", folder_date)
                )
        for path in sorted(folder.iterdir()):
            if path not in claimed and not path.name.startswith(("_", ".")):
                raise SourceFileError(f"{path}: unrecognised file for source {source.name!r} (no entity matches)")
    return entries


# ---------------------------------------------------------------------------------------- load


def load_night(
    conn: PgConnection,
    source: Source,
    manifest: Iterable[ManifestEntry],
    *,
    run_id: str,
    batch_date: date,
    key: bytes,
) -> NightLoad:
    """Replace the night's batch of `source` with the files in `manifest`, in one transaction."""
    # an entity's files side by side, so that its small files share a COPY and a checking statement:
    # entities of one load order refer only to entities of a lower one, never to each other
    manifest = sorted(manifest, key=lambda m: (source.entity(m.entity).load_order, m.entity, m.folder_date,
                                               m.relative_path))
    ensure_raw_schema(conn, source)
    night = NightLoad(source.name, run_id, batch_date, [])
    started = time.perf_counter()
    params = {"run_id": run_id, "source": source.name, "batch_date": batch_date}
    prepared: dict[tuple[str, frozenset[str]], str] = {}  # per entity and set of pre-pseudonymised columns
    landing_tables: set[str] = set()
    bounds = date_bounds()  # read once a night: it parses the dbt project's yml

    def statement_for(cur: PgCursor, entity: Entity, pseudonymised: frozenset[str]) -> str:
        if entity.name not in landing_tables:
            cur.execute(checks_sql.landing_table_ddl(entity))
            landing_tables.add(entity.name)
        if (entity.name, pseudonymised) not in prepared:
            statement = f"hospital_ops_load_{entity.raw_table}_{len(prepared)}"
            cur.execute(f"prepare {statement} ({', '.join(p.split()[1] for p in checks_sql.FILE_LOAD_PARAMETERS)}) "
                        f"as {checks_sql.file_load_sql(source, entity, pseudonymised, bounds)}")
            prepared[(entity.name, pseudonymised)] = statement
        return prepared[(entity.name, pseudonymised)]

    try:
        with conn.cursor() as cur:
            cur.execute(f"set local work_mem = '{_WORK_MEM}'")
            cur.execute("set local statement_timeout = %s", (limits.statement_timeout(),))
            cur.execute("set local datestyle = 'ISO, YMD'")  # the row hash reads dates as text
            cur.execute(checks_sql.SESSION_SQL)
            # the key's pads reach the server by COPY only, never in SQL text (checks_sql.KEY_TABLE)
            cur.execute(checks_sql.KEY_TABLE_DDL)
            cur.copy_expert(checks_sql.KEY_TABLE_COPY, io.StringIO(checks_sql.key_table_rows(key)))
            _delete_batch(cur, source, batch_date)
            for entity_name, entries in groupby(manifest, key=lambda m: m.entity):
                night.files.extend(_load_entity(cur, source, source.entity(entity_name), list(entries), params,
                                                statement_for, key))
            _record_files(cur, source, run_id, batch_date, night.files)
            _reconcile(cur, source, batch_date, night.files)
            folders = [m.folder_date for m in manifest]
            cur.execute(
                f"insert into {WATERMARKS} (source, entity, batch_date, run_id, taken_from, watermark, files)"
                " values (%s, %s, %s, %s, %s, %s, %s)",
                (source.name, DROP_FOLDERS, batch_date, run_id, min(folders, default=None),
                 max(folders, default=None), len(night.files)),
            )
        conn.commit()
    except Exception:
        conn.rollback()
        raise
    finally:  # prepared statements belong to the session, not the transaction
        if prepared and not conn.closed:
            with conn.cursor() as cur:
                for statement in prepared.values():
                    cur.execute(f"deallocate {statement}")
            conn.commit()
    _analyze_grown_tables(conn, source, night)
    log.info("%s night %s: %d files, %d rows read, %d loaded, %d quarantined in %.2f s", source.name, batch_date,
             len(night.files), night.rows_read, night.rows_loaded, night.rows_quarantined,
             time.perf_counter() - started)
    return night


def _analyze_grown_tables(conn: PgConnection, source: Source, night: NightLoad) -> None:
    """ANALYZE each raw table the night grew by a tenth or more (or that has never been analyzed).

    dbt reads these tables minutes later, before autovacuum has caught up: planned on stale or no
    statistics, its joins over a first night's history ran a hundred times slower. An incremental
    night adds a small share and leaves the statistics to autovacuum. ANALYZE reads a fixed sample,
    so its cost does not grow with the table."""
    loaded: Counter = Counter()
    for file in night.files:
        loaded[file.entity] += file.rows_loaded
    with conn.cursor() as cur:
        for entity_name, rows in sorted(loaded.items()):
            if not rows:
                continue
            table = f"{RAW_SCHEMA}.{source.entity(entity_name).raw_table}"
            cur.execute("select reltuples from pg_class where oid = %s::regclass", (table,))
            estimated = fetch_one(cur)[0]
            if estimated < 0 or rows >= 0.1 * estimated:
                cur.execute(f"analyze {table}")
    conn.commit()


def _delete_batch(cur: PgCursor, source: Source, batch_date: date) -> None:
    for entity in source.entities:
        cur.execute(f"delete from {RAW_SCHEMA}.{entity.raw_table} where _batch_date = %s", (batch_date,))
    for table in ("_quarantine", "_load_files"):
        cur.execute(f"delete from {RAW_SCHEMA}.{table} where source = %s and batch_date = %s",
                    (source.name, batch_date))
    cur.execute(f"delete from {WATERMARKS} where source = %s and entity = %s and batch_date = %s",
                (source.name, DROP_FOLDERS, batch_date))


def _load_file(cur: PgCursor, source: Source, entity: Entity, entry: ManifestEntry, night_params: dict,
               statement_for: Callable[[PgCursor, Entity, frozenset[str]], str], key: bytes) -> FileLoad:
    """Land one file's cells, then check and insert them in one statement. An exact duplicate line
    within the file is quarantined; the same row in another file is kept (registers are re-sent
    whole; staging keeps the latest)."""
    started = time.perf_counter()
    facts = file_facts(entry.path)
    encoding = facts.encoding
    file_load = FileLoad(entity.name, entry.relative_path, facts.sha256)
    # an extractor's landing CSV heads the personal columns it hashed `<name>_pseudo`: taken as they are
    pseudonymised = (pseudonymised_columns(entity, csv_header(entry.path, encoding))
                     if entity.file_format == "csv" else frozenset())
    statement = statement_for(cur, entity, pseudonymised)
    landing = checks_sql.landing_table(entity)
    cur.execute(f"delete from {landing}")  # small after small files; TRUNCATE after a big one (below)
    # the line the file's first row will take (the header is row 1): COPY numbers rows in arrival order
    cur.execute("select nextval(pg_get_serial_sequence(%s, '_line'))", (f"pg_temp.{landing}",))
    line_offset = fetch_one(cur)[0] - 1
    if not (entity.file_format == "csv" and _copy_csv(cur, entity, entry, facts)):
        _frame_rows(cur, source, entity, entry, night_params, key, encoding, file_load)
        line_offset = 0  # the Python reader numbers its rows itself
    _check(cur, statement, entity, night_params, [file_load], [0], [line_offset])
    if file_load.rows_read > _TRUNCATE_AFTER_ROWS:
        cur.execute(f"truncate {landing}")
    file_load.seconds = time.perf_counter() - started
    return file_load


def _load_entity(cur: PgCursor, source: Source, entity: Entity, entries: list[ManifestEntry], night_params: dict,
                 statement_for: Callable[[PgCursor, Entity, frozenset[str]], str], key: bytes) -> list[FileLoad]:
    """An entity's files of the night, in order: small CSV files whose records are their lines
    (`read_small_csv`) in batches that share one COPY and one checking statement, every other file on
    its own (`_load_file`). The per-file cost (round trips, a statement's start-up) is what dominated a
    night of a thousand small files."""
    loads: list[FileLoad] = []
    batch: list[tuple[ManifestEntry, SmallCsv]] = []

    def flush() -> None:
        if batch:
            loads.extend(_load_batch(cur, source, entity, list(batch), night_params, statement_for, key))
            batch.clear()

    for entry in entries:
        small = read_small_csv(entry.path, entity) if entity.file_format == "csv" else None
        if small is None:
            flush()
            loads.append(_load_file(cur, source, entity, entry, night_params, statement_for, key))
            continue
        if batch and (small.names != batch[0][1].names
                      or sum(len(s.data) for _, s in batch) + len(small.data) > _BATCH_BYTES):
            flush()
        batch.append((entry, small))
    flush()
    return loads


def _load_batch(cur: PgCursor, source: Source, entity: Entity, batch: list[tuple[ManifestEntry, SmallCsv]],
                night_params: dict, statement_for: Callable[[PgCursor, Entity, frozenset[str]], str],
                key: bytes) -> list[FileLoad]:
    """Land several small files of one entity (same header) with one COPY, headers removed, and check
    them with one execution of the entity's statement. Each file's records are its lines, so file i's
    rows are the next `records` numbers of the landing table; COPY's count of rows is checked against
    the lines. When COPY refuses the batch (a row with the wrong number of cells) or frames another
    number of rows, the batch is undone and each file is loaded on its own, as any file COPY refuses."""
    started = time.perf_counter()
    statement = statement_for(cur, entity, batch[0][1].pseudonymised)
    landing = checks_sql.landing_table(entity)
    cur.execute(f"delete from {landing}")
    cur.execute("select nextval(pg_get_serial_sequence(%s, '_line'))", (f"pg_temp.{landing}",))
    next_line = fetch_one(cur)[0] + 1
    index = {column.name: i for i, column in enumerate(entity.columns)}
    columns = ", ".join(f"s{index[name]}" for name in batch[0][1].names)
    expected = sum(small.records for _, small in batch)
    cur.execute("savepoint landing_copy")
    try:
        cur.copy_expert(f"copy {landing} ({columns}) from stdin with (format csv, encoding 'UTF8', force_not_null *)",
                        io.BytesIO(b"".join(small.data for _, small in batch)), size=1 << 20)
        landed = cur.rowcount
    except psycopg2.DataError as exc:
        log.info("%s: COPY refused a batch of %d files (%s); loading them one by one", entity.raw_table, len(batch),
                 (str(exc).splitlines() or [""])[0][:200])
        landed = -1
    if landed != expected:
        cur.execute("rollback to savepoint landing_copy")
        return [_load_file(cur, source, entity, entry, night_params, statement_for, key) for entry, _ in batch]
    cur.execute("release savepoint landing_copy")
    loads, first_lines, offsets = [], [], []
    for entry, small in batch:
        loads.append(FileLoad(entity.name, entry.relative_path, small.facts.sha256))
        first_lines.append(next_line)
        offsets.append(next_line - 2)  # the file's first data row is its line 2
        next_line += small.records
    _check(cur, statement, entity, night_params, loads, first_lines, offsets)
    if expected > _TRUNCATE_AFTER_ROWS:
        cur.execute(f"truncate {landing}")
    seconds = time.perf_counter() - started  # shared by the files in proportion to their rows
    for file_load in loads:
        file_load.seconds = seconds * (file_load.rows_read / expected if expected else 1 / len(loads))
    return loads


def _check(cur: PgCursor, statement: str, entity: Entity, night_params: dict, loads: list[FileLoad],
           first_lines: list[int], offsets: list[int]) -> None:
    """Execute the entity's checking statement over the files in the landing table, and count each
    file's outcomes into its FileLoad."""
    params = night_params | {"entity": entity.name, "source_files": [f.source_file for f in loads],
                             "first_lines": first_lines, "line_offsets": offsets}
    names = [p.split()[0] for p in checks_sql.FILE_LOAD_PARAMETERS]
    casts = {"source_files": "::text[]", "first_lines": "::bigint[]", "line_offsets": "::bigint[]"}
    cur.execute(f"execute {statement} ({', '.join(f'%({name})s{casts.get(name, str())}' for name in names)})",
                params)
    by_file = {f.source_file: f for f in loads}
    for source_file, outcome, reason, count in cur.fetchall():
        file_load = by_file[source_file]
        file_load.rows_read += count
        if outcome == "loaded":
            file_load.rows_loaded += count
        else:
            file_load.rows_quarantined += count
            file_load.reasons[reason_category(entity.name, reason)] += count
            if outcome == "already_quarantined":
                file_load.rows_already_quarantined += count


def _record_files(cur: PgCursor, source: Source, run_id: str, batch_date: date, files: list[FileLoad]) -> None:
    """raw._load_files: one row per file, written once a night (one statement, not one per file)."""
    from psycopg2.extras import execute_values

    execute_values(
        cur,
        f"insert into {RAW_SCHEMA}._load_files (run_id, source, entity, batch_date, source_file, file_sha256,"
        " rows_read, rows_loaded, rows_quarantined, rows_already_quarantined) values %s",
        [(run_id, source.name, f.entity, batch_date, f.source_file, f.sha256, f.rows_read, f.rows_loaded,
          f.rows_quarantined, f.rows_already_quarantined) for f in files],
        page_size=1000,
    )


def _copy_csv(cur: PgCursor, entity: Entity, entry: ManifestEntry, facts: FileFacts) -> bool:
    """Stream the file into the landing table with COPY; False when COPY cannot take it as it is
    (the caller then frames its rows in Python). Every cell lands as text, '' for an empty one.

    COPY frames a quoted field over several lines as one record, whether it is a comment with a line
    break or an unclosed quote that swallowed the records after it. So the records COPY landed are
    counted against the file's physical lines: when they differ, the strict Python reader decides."""
    encoding = facts.encoding
    names, _ = header_positions(entry.path, entity, csv_header(entry.path, encoding))  # refuses a bad header
    if facts.has_long_line:
        return False
    index = {column.name: i for i, column in enumerate(entity.columns)}
    columns = ", ".join(f"s{index[name]}" for name in names)
    cur.execute("savepoint landing_copy")
    try:
        with Utf8Stream(entry.path, encoding) as stream:
            # copy_expert only read()s the stream; the stub asks for readline too
            cur.copy_expert(f"copy {checks_sql.landing_table(entity)} ({columns}) from stdin "
                            "with (format csv, header true, encoding 'UTF8', force_not_null *)", stream)  # type: ignore[arg-type]
    except (psycopg2.DataError, UnicodeDecodeError) as exc:  # BadCopyFileFormat and bad bytes are DataErrors
        log.info("%s: COPY cannot read it as it is (%s); reading it row by row", entry.relative_path,
                 (str(exc).splitlines() or [""])[0][:200])
        cur.execute("rollback to savepoint landing_copy")
        return False
    if cur.rowcount != facts.lines - 1:  # a record over several lines: let the strict reader judge it
        log.info("%s: %d physical lines but COPY framed a different number of records; reading it row by row",
                 entry.relative_path, facts.lines)
        cur.execute("rollback to savepoint landing_copy")
        return False
    cur.execute("release savepoint landing_copy")
    return True


def _cell_text(cell: object) -> str:
    """A cell as the text the SQL checks read (Excel gives typed cells)."""
    if cell is None:
        return ""
    if isinstance(cell, datetime):
        return cell.isoformat(sep=" ")
    if isinstance(cell, date):
        return cell.isoformat()
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return str(cell)


def _frame_rows(cur: PgCursor, source: Source, entity: Entity, entry: ManifestEntry, night_params: dict,
                key: bytes, encoding: str, file_load: FileLoad) -> None:
    """Read the file with Python's csv module or openpyxl (row by row: COPY cannot frame these rows)
    into the landing table; quarantine the rows whose number of cells does not match the header and the
    lines the strict reader could not frame (broken quoting, a NUL byte, an over-long line), each with
    its physical line number. A quarantined line's cells are cut short and pseudonymized when the
    entity has personal columns (which cell is which is unknown on such a line)."""
    landing = checks_sql.landing_table(entity)
    cells = ", ".join(f"s{i}" for i in range(len(entity.columns)))
    copy_landing = f"copy {landing} ({cells}, _line) from stdin with (format csv, force_not_null *)"
    copy_quarantine = (f"copy {RAW_SCHEMA}._quarantine (run_id, source, entity, batch_date, source_file, "
                       "row_number, reason, record) from stdin with (format csv)")
    has_pii = any(c.pii for c in entity.columns)
    good, good_writer = csv_buffer_writer()
    bad, bad_writer = csv_buffer_writer()
    pending = 0
    for row_number, row in read_rows(entry.path, entity, encoding):  # physical line numbers (header = 1)
        broken = broken_reason(row)
        if broken is not None or is_misshapen(row):
            file_load.rows_read += 1
            file_load.rows_quarantined += 1
            reason = broken if broken is not None else misshapen_reason(row)
            file_load.reasons[reason_category(entity.name, reason)] += 1
            shown = [pseudonymize(str(c), key) if has_pii and c not in (None, "") else
                     (c[:200] if isinstance(c, str) else c) for c in row]
            bad_writer.writerow([night_params["run_id"], source.name, entity.name, night_params["batch_date"],
                                 entry.relative_path, row_number, reason,
                                 json.dumps({"cells": shown}, ensure_ascii=False, default=str)])
            continue
        good_writer.writerow([_cell_text(cell) for cell in row] + [row_number])
        pending += 1
        if pending >= _COPY_CHUNK_ROWS:
            _flush(cur, copy_landing, good)
            good, good_writer = csv_buffer_writer()
            pending = 0
    _flush(cur, copy_landing, good)
    _flush(cur, copy_quarantine, bad)


def _flush(cur: PgCursor, copy_sql: str, buffer: io.StringIO) -> None:
    if buffer.tell() == 0:
        return
    buffer.seek(0)
    cur.copy_expert(copy_sql, buffer)


def _reconcile(cur: PgCursor, source: Source, batch_date: date, files: list[FileLoad]) -> None:
    """Each file's rows read must equal its rows in raw plus its rows in quarantine, as the database
    holds them (counted per table once a night, not once per file)."""
    in_tables: Counter = Counter()
    for entity in {f.entity for f in files}:
        cur.execute(
            f"select _source_file, count(*) from {RAW_SCHEMA}.{source.entity(entity).raw_table} "
            "where _batch_date = %s group by _source_file",
            (batch_date,),
        )
        in_tables.update(dict(cur.fetchall()))
    cur.execute(
        f"select source_file, count(*) from {RAW_SCHEMA}._quarantine where source = %s and batch_date = %s "
        "group by source_file",
        (source.name, batch_date),
    )
    in_quarantine = Counter(dict(cur.fetchall()))
    for file_load in files:
        loaded = in_tables[file_load.source_file]
        quarantined = in_quarantine[file_load.source_file] + file_load.rows_already_quarantined
        if (file_load.rows_read != file_load.rows_loaded + file_load.rows_quarantined
                or loaded != file_load.rows_loaded or quarantined != file_load.rows_quarantined):
            raise ReconciliationError(
                f"{file_load.source_file}: read {file_load.rows_read} rows but loaded {loaded} "
                f"and quarantined {quarantined} (expected {file_load.rows_loaded} + {file_load.rows_quarantined})"
            )
