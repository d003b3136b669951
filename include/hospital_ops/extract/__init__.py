"""Extractors that turn a live system (an OLTP database, a FHIR Bulk Data export) into landing files.

File sources arrive as drop folders; database and API sources are *extracted* into the same shape,
so the one loader (`hospital_ops.load.loader`: plan_extract + load_night, with quarantine,
reconciliation and pseudonymization) lands every source alike:

    <landing>/<source>/<YYYY-MM-DD>/<entity file_pattern>.csv     one CSV per entity with rows that night

`hospital_ops.extract.sql` reads tables incrementally by `updated_at`; `hospital_ops.extract.fhir_r4`
maps a FHIR R4 export (Bundles, Bulk NDJSON) onto the same entities. Both write through `LandingFolder`, which
builds the night's folder aside and swaps it in whole, so a rerun replaces (never merges with) the
previous attempt and an interrupted run leaves the old folder intact.

Personal identifiers never reach a landing file in clear: given the pseudonym key, `LandingFolder`
replaces each `pii` column's value with its keyed hash (`hospital_ops.load.parsing.pseudonymize`, the
same HMAC the loader computes in SQL for drop-folder files) and heads the column `<name>_pseudo`, the
per-file marker that tells the loader to take it as it is (`hospital_ops.load.files.pseudonymised_columns`).
"""

from __future__ import annotations

import csv
import logging
import shutil
import tempfile
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Self

from hospital_ops.load.parsing import pseudonymize
from hospital_ops.sources.spec import Column, Entity, Source

if TYPE_CHECKING:
    from _csv import Writer

log = logging.getLogger(__name__)

__all__ = ["LandingFolder", "landing_text", "night_folder", "remove_night_folder"]


def night_folder(landing_dir: Path, source: Source, business_date: date) -> Path:
    return Path(landing_dir) / source.name / business_date.isoformat()


def remove_night_folder(landing_dir: Path, source: Source, business_date: date) -> None:
    """Remove a night's landing folder once the night has loaded: raw holds its rows, a rerun extracts
    again from the source, so nothing is kept on disk that nobody guards."""
    shutil.rmtree(night_folder(landing_dir, source, business_date), ignore_errors=True)


def landing_text(value: object) -> str:
    """A value in the text form the loader parses: ISO dates, `YYYY-MM-DD HH:MM:SS`, true/false.

    Timestamps are written to the second: the loader's parser takes no fractional seconds or zone
    offsets (HIS times are local, Asia/Shanghai), and a watermark compares the source's own values,
    never these strings, so truncation loses nothing the pipeline relies on.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _file_name(entity: Entity) -> str:
    if any(char in entity.file_pattern for char in "*?["):
        raise ValueError(f"{entity.raw_table}: file_pattern {entity.file_pattern!r} is a glob; an extractor "
                         "needs one exact file name per entity")
    return entity.file_pattern


class LandingFolder:
    """One night's landing folder of one source, written aside and swapped in on `commit()`.

    Use as a context manager: leaving the block without commit (an exception) discards the partial
    folder and keeps whatever the previous run had written.
    """

    def __init__(self, landing_dir: Path, source: Source, business_date: date, *, key: bytes | None = None) -> None:
        self.source = source
        self.key = key  # personal columns are written as keyed hashes under `<name>_pseudo` when given
        self.final = night_folder(landing_dir, source, business_date)
        self.final.parent.mkdir(parents=True, exist_ok=True)
        # beside the final folder (same filesystem, so the swap is a rename); plan_extract ignores
        # names that are not dates
        self._staging = Path(tempfile.mkdtemp(prefix=f".{business_date.isoformat()}.", dir=self.final.parent))
        self._handles: dict[str, IO[str]] = {}
        self._writers: dict[str, Writer] = {}
        self.rows: dict[str, int] = {}

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._close()
        if self._staging.exists():
            shutil.rmtree(self._staging, ignore_errors=True)

    def write(self, entity: Entity, values: list[str]) -> None:
        """Append one row (already in landing text, ordered like the entity's columns)."""
        writer = self._writers.get(entity.name)
        if writer is None:
            handle = (self._staging / _file_name(entity)).open("w", encoding="utf-8", newline="")
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow([column.raw_name if self.key is not None else column.name for column in entity.columns])
            self._handles[entity.name], self._writers[entity.name] = handle, writer
            self.rows[entity.name] = 0
        if self.key is not None:
            values = [self.cell(column, value) for column, value in zip(entity.columns, values, strict=True)]
        writer.writerow(values)
        self.rows[entity.name] += 1

    def cell(self, column: Column, value: str) -> str:
        """A cell as written: a personal column's value as its pseudonym (the text the loader would hash:
        stripped, blank stays blank), anything else as it is."""
        if self.key is None or not column.pii:
            return value
        text = value.strip()
        return pseudonymize(text, self.key) if text else ""

    def commit(self) -> list[Path]:
        """Replace the night's folder with what was written; return the files, in load order."""
        self._close()
        previous = None
        if self.final.exists():
            previous = self.final.with_name(f"{self._staging.name}.previous")
            self.final.rename(previous)
        self._staging.rename(self.final)
        if previous is not None:
            shutil.rmtree(previous)
        order = {entity.name: (entity.load_order, position) for position, entity in enumerate(self.source.entities)}
        written = sorted(self.rows, key=lambda name: order[name])
        paths = [self.final / _file_name(self.source.entity(name)) for name in written]
        log.info("%s: wrote %d files (%d rows) to %s", self.source.name, len(paths), sum(self.rows.values()),
                 self.final)
        return paths

    def _close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()
