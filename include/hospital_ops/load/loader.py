"""Land a night's files in the `raw` schema with PostgreSQL COPY, quarantining what is malformed.

One night of one source is one transaction: the night's previous batch (a rerun) is deleted, every
file is parsed, good rows are COPYed into `raw.<source>__<entity>` with load metadata, malformed
rows are COPYed into `raw._quarantine` with the reason, and each file is reconciled
(read = loaded + quarantined, checked against what the database holds). The extract watermark moves
only when the whole night commits, so a failed night leaves nothing behind and a rerun is exact.
"""

from __future__ import annotations

import hashlib
import json
import re
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from hospital_ops.load.files import SourceFileError, csv_buffer_writer, is_misshapen, read_rows, sha256_of
from hospital_ops.load.parsing import convert, pseudonymize
from hospital_ops.sources.spec import PG_TYPES, Entity, Source

log = logging.getLogger(__name__)

RAW_SCHEMA = "raw"
_COPY_CHUNK_ROWS = 50_000
_REASON_VALUES = re.compile(r"'[^']*'|\"[^\"]*\"|-?\d+(?:\.\d+)?|(?<=as ).*$")  # values out of reasons
_META_COLUMNS = ("_run_id", "_batch_date", "_source_file", "_row_number", "_row_hash")


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
    reasons: Counter = field(default_factory=Counter)


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


def ensure_raw_schema(conn, source: Source) -> None:  # type: ignore[no-untyped-def]
    """Create the raw schema, the load bookkeeping tables and this source's raw tables."""
    with conn.cursor() as cur:
        cur.execute(f"create schema if not exists {RAW_SCHEMA}")
        cur.execute(
            f"""
            create table if not exists {RAW_SCHEMA}._quarantine (
                run_id text not null, source text not null, entity text not null,
                batch_date date not null, source_file text not null, row_number integer not null,
                reason text not null, record jsonb, quarantined_at timestamptz not null default now())
            """
        )
        cur.execute(
            f"""
            create table if not exists {RAW_SCHEMA}._load_files (
                run_id text not null, source text not null, entity text not null,
                batch_date date not null, source_file text not null, file_sha256 text not null,
                rows_read integer not null, rows_loaded integer not null, rows_quarantined integer not null,
                loaded_at timestamptz not null default now(),
                primary key (source, batch_date, source_file))
            """
        )
        cur.execute(
            f"""
            create table if not exists {RAW_SCHEMA}._extract_log (
                source text not null, batch_date date not null, run_id text not null,
                folder_from date, folder_to date, files integer not null,
                extracted_at timestamptz not null default now(),
                primary key (source, batch_date))
            """
        )
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
    conn.commit()


# ------------------------------------------------------------------------------------- extract


def watermark(conn, source: str, batch_date: date) -> date | None:  # type: ignore[no-untyped-def]
    """The last drop folder taken by a night before `batch_date` (so a rerun sees the same files)."""
    with conn.cursor() as cur:
        cur.execute(
            f"select max(folder_to) from {RAW_SCHEMA}._extract_log where source = %s and batch_date < %s",
            (source, batch_date),
        )
        return cur.fetchone()[0]


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
    conn,  # type: ignore[no-untyped-def]
    source: Source,
    manifest: Iterable[ManifestEntry],
    *,
    run_id: str,
    batch_date: date,
    key: bytes,
) -> NightLoad:
    """Replace the night's batch of `source` with the files in `manifest`, in one transaction."""
    manifest = sorted(manifest, key=lambda m: (source.entity(m.entity).load_order, m.folder_date, m.relative_path))
    ensure_raw_schema(conn, source)
    night = NightLoad(source.name, run_id, batch_date, [])
    try:
        with conn.cursor() as cur:
            _delete_batch(cur, source, batch_date)
            known: dict[tuple[str, str], set[str]] = {}
            for entry in manifest:
                entity = source.entity(entry.entity)
                file_load = _load_file(cur, source, entity, entry, run_id, batch_date, key, known)
                night.files.append(file_load)
                known = {ref: ids for ref, ids in known.items() if ref[0] != entity.name}
            folders = [m.folder_date for m in manifest]
            cur.execute(
                f"insert into {RAW_SCHEMA}._extract_log (source, batch_date, run_id, folder_from, folder_to, files)"
                " values (%s, %s, %s, %s, %s, %s)",
                (source.name, batch_date, run_id, min(folders, default=None), max(folders, default=None),
                 len(night.files)),
            )
        conn.commit()
    except Exception:
        conn.rollback()
        raise
    log.info("%s night %s: %d files, %d rows read, %d loaded, %d quarantined", source.name, batch_date,
             len(night.files), night.rows_read, night.rows_loaded, night.rows_quarantined)
    return night


def _delete_batch(cur, source: Source, batch_date: date) -> None:  # type: ignore[no-untyped-def]
    for entity in source.entities:
        cur.execute(f"delete from {RAW_SCHEMA}.{entity.raw_table} where _batch_date = %s", (batch_date,))
    for table in ("_quarantine", "_load_files", "_extract_log"):
        cur.execute(f"delete from {RAW_SCHEMA}.{table} where source = %s and batch_date = %s",
                    (source.name, batch_date))


def _known_values(cur, source: Source, ref: tuple[str, str], cache: dict) -> set[str]:  # type: ignore[no-untyped-def]
    if ref not in cache:
        entity = source.entity(ref[0])
        cur.execute(f"select distinct {entity.column(ref[1]).raw_name} from {RAW_SCHEMA}.{entity.raw_table}")
        cache[ref] = {row[0] for row in cur.fetchall()}
    return cache[ref]


def _row_hash(values: list[str | None]) -> str:
    joined = "\x1f".join("\x00" if v is None else v for v in values)
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()[:32]


def _load_file(cur, source: Source, entity: Entity, entry: ManifestEntry, run_id: str, batch_date: date,  # type: ignore[no-untyped-def]
               key: bytes, known: dict) -> FileLoad:
    """Parse, check and COPY one file. An exact duplicate line within the file is quarantined; the
    same row in another file is kept (registers are re-sent whole; staging keeps the latest)."""
    seen: dict[str, str] = {}
    file_load = FileLoad(entity.name, entry.relative_path, sha256_of(entry.path))
    target_columns = [c.raw_name for c in entity.columns] + list(_META_COLUMNS)
    copy_rows = (f"copy {RAW_SCHEMA}.{entity.raw_table} ({', '.join(target_columns)}) "
                 "from stdin with (format csv)")
    copy_quarantine = (f"copy {RAW_SCHEMA}._quarantine (run_id, source, entity, batch_date, source_file, "
                       "row_number, reason, record) from stdin with (format csv)")
    good, good_writer = csv_buffer_writer()
    bad, bad_writer = csv_buffer_writer()
    pending = 0
    has_pii = any(c.pii for c in entity.columns)

    def quarantine(row_number: int, reason: str, record: dict) -> None:
        file_load.rows_quarantined += 1
        file_load.reasons[reason_category(entity.name, reason)] += 1
        bad_writer.writerow([run_id, source.name, entity.name, batch_date.isoformat(), entry.relative_path,
                             row_number, reason, json.dumps(record, ensure_ascii=False, default=str)])

    for row_number, cells in enumerate(read_rows(entry.path, entity), start=2):  # row 1 is the header
        file_load.rows_read += 1
        if is_misshapen(cells):
            shown = [pseudonymize(str(c), key) if has_pii and c not in (None, "") else c for c in cells]
            quarantine(row_number, f"row has {len(cells)} cells, header has {cells.expected_width}",
                       {"cells": shown})
            continue
        values: list[str | None] = []
        errors: list[str] = []
        for column, cell in zip(entity.columns, cells):
            try:
                value = convert(column, cell, key)
            except ValueError as exc:
                errors.append(str(exc))
                value = pseudonymize(str(cell), key) if column.pii else (None if cell is None else str(cell))
            values.append(value)
        record = {c.raw_name: v for c, v in zip(entity.columns, values)}
        if not errors:
            for column, value in zip(entity.columns, values):
                if column.references and value is not None and value not in _known_values(
                        cur, source, column.references, known):
                    ref_entity, ref_column = column.references
                    errors.append(f"{column.name}: unknown {ref_column} {value!r} (not in {source.name} {ref_entity})")
        if errors:
            quarantine(row_number, "; ".join(errors), record)
            continue
        row_hash = _row_hash(values)
        if row_hash in seen:
            quarantine(row_number, f"duplicate: same content as {seen[row_hash]}", record)
            continue
        seen[row_hash] = f"{entry.relative_path} row {row_number}"
        good_writer.writerow(values + [run_id, batch_date.isoformat(), entry.relative_path, row_number, row_hash])
        file_load.rows_loaded += 1
        pending += 1
        if pending >= _COPY_CHUNK_ROWS:
            _flush(cur, copy_rows, good)
            good, good_writer = csv_buffer_writer()
            pending = 0
    _flush(cur, copy_rows, good)
    _flush(cur, copy_quarantine, bad)
    _reconcile(cur, entity, entry, batch_date, file_load)
    cur.execute(
        f"insert into {RAW_SCHEMA}._load_files (run_id, source, entity, batch_date, source_file, file_sha256,"
        " rows_read, rows_loaded, rows_quarantined) values (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (run_id, source.name, entity.name, batch_date, entry.relative_path, file_load.sha256,
         file_load.rows_read, file_load.rows_loaded, file_load.rows_quarantined),
    )
    return file_load


def _flush(cur, copy_sql: str, buffer) -> None:  # type: ignore[no-untyped-def]
    if buffer.tell() == 0:
        return
    buffer.seek(0)
    cur.copy_expert(copy_sql, buffer)


def _reconcile(cur, entity: Entity, entry: ManifestEntry, batch_date: date, file_load: FileLoad) -> None:  # type: ignore[no-untyped-def]
    cur.execute(
        f"select count(*) from {RAW_SCHEMA}.{entity.raw_table} where _batch_date = %s and _source_file = %s",
        (batch_date, entry.relative_path),
    )
    in_table = cur.fetchone()[0]
    cur.execute(
        f"select count(*) from {RAW_SCHEMA}._quarantine where batch_date = %s and source_file = %s",
        (batch_date, entry.relative_path),
    )
    in_quarantine = cur.fetchone()[0]
    if (file_load.rows_read != file_load.rows_loaded + file_load.rows_quarantined
            or in_table != file_load.rows_loaded or in_quarantine != file_load.rows_quarantined):
        raise ReconciliationError(
            f"{entry.relative_path}: read {file_load.rows_read} rows but loaded {in_table} "
            f"and quarantined {in_quarantine} (expected {file_load.rows_loaded} + {file_load.rows_quarantined})"
        )
