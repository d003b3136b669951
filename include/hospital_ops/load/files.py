"""Reading delivered files as rows of cells, whatever their encoding or format."""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

from hospital_ops.redaction import shown_cells
from hospital_ops.sources.spec import Entity


class SourceFileError(RuntimeError):
    """A delivered file cannot be read at all (missing, unreadable, wrong header)."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    if not path.is_file():
        raise SourceFileError(f"{path}: file not found")
    try:
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise SourceFileError(f"{path}: cannot be read: {exc}") from exc
    return digest.hexdigest()


def detect_encoding(path: Path) -> str:
    """UTF-8 (with or without BOM) if the whole file decodes as such, else GB18030 (a superset of GBK).

    Checked incrementally so a large file is never held in memory.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return "gb18030"
    return "utf-8-sig"


def digest_and_encoding(path: Path) -> tuple[str, str]:
    """sha256_of and detect_encoding in one pass over the file, read in chunks."""
    if not path.is_file():
        raise SourceFileError(f"{path}: file not found")
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    utf8 = True
    try:
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
                if utf8:
                    try:
                        decoder.decode(chunk)
                    except UnicodeDecodeError:
                        utf8 = False
        if utf8:
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                utf8 = False
    except OSError as exc:
        raise SourceFileError(f"{path}: cannot be read: {exc}") from exc
    return digest.hexdigest(), "utf-8-sig" if utf8 else "gb18030"


def header_positions(path: Path, entity: Entity, header: list[object] | None) -> tuple[list[str], list[int]]:
    """The header's names and, for each spec column in spec order, its position in the header.

    A header that lacks a spec column or has an unknown one is a SourceFileError naming the file
    and the columns: the vendor changed its export and a person must look.
    """
    if header is None:
        raise SourceFileError(f"{path}: file is empty (no header row)")
    names = [str(cell).strip().lstrip("\ufeff") if cell is not None else "" for cell in header]
    expected = [column.name for column in entity.columns]
    missing = [name for name in expected if name not in names]
    unexpected = [name for name in names if name and name not in expected]
    if missing or unexpected:
        raise SourceFileError(
            f"{path}: header does not match the {entity.raw_table} spec: "
            f"missing {missing or 'none'}, unexpected {shown_cells(unexpected) if unexpected else 'none'}"
        )
    return names, [names.index(name) for name in expected]


def csv_header(path: Path, encoding: str) -> list[object] | None:
    """The header (first non-blank row) of a CSV file, or None when the file is empty."""
    try:
        return next(_csv_rows(path, encoding), None)
    except (OSError, UnicodeDecodeError, csv.Error, ValueError) as exc:
        raise SourceFileError(f"{path}: cannot be read as csv: {exc}") from exc


def read_rows(path: Path, entity: Entity, encoding: str | None = None) -> Iterator[list[object]]:
    """Yield data rows (header checked and removed) as lists ordered like the spec's columns."""
    if not path.is_file():
        raise SourceFileError(f"{path}: file not found")
    try:
        rows = _xlsx_rows(path, entity) if entity.file_format == "xlsx" else _csv_rows(path, encoding)
        header = next(rows, None)
    except (OSError, UnicodeDecodeError, csv.Error, ValueError, KeyError) as exc:
        raise SourceFileError(f"{path}: cannot be read as {entity.file_format}: {exc}") from exc
    names, positions = header_positions(path, entity, header)
    width = len(names)
    for row in rows:
        if entity.file_format == "xlsx":  # spreadsheets pad or trim empty trailing cells freely
            row = (list(row) + [None] * width)[:width] if all(
                cell in (None, "") for cell in row[width:]) else row
        if len(row) != width:
            # keep the misshapen row whole so the quarantine shows what arrived
            yield _MisshapenRow(row, width)
            continue
        yield [row[position] for position in positions]


class Utf8Stream:
    """A CSV file's bytes as UTF-8 for COPY FROM STDIN, read in chunks and never whole: a UTF-8 file
    passes through as it is (less its BOM), a GB18030 one is decoded and re-encoded chunk by chunk."""

    def __init__(self, path: Path, encoding: str, chunk_bytes: int = 1 << 20) -> None:
        self._handle = path.open("rb")
        self._chunk_bytes = chunk_bytes
        self._decoder = None if encoding.startswith("utf-8") else codecs.getincrementaldecoder(encoding)()
        if self._decoder is None and self._handle.read(len(codecs.BOM_UTF8)) != codecs.BOM_UTF8:
            self._handle.seek(0)

    def read(self, size: int = -1) -> bytes:
        chunk = self._handle.read(max(size, self._chunk_bytes))
        if self._decoder is None:
            return chunk
        return self._decoder.decode(chunk, final=not chunk).encode("utf-8")

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> Utf8Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _MisshapenRow(list):
    def __init__(self, cells: list[object], expected_width: int) -> None:
        super().__init__(cells)
        self.expected_width = expected_width


def is_misshapen(row: list[object]) -> bool:
    return isinstance(row, _MisshapenRow)


def _csv_rows(path: Path, encoding: str | None = None) -> Iterator[list[object]]:
    encoding = encoding or detect_encoding(path)
    with path.open("r", encoding=encoding, newline="") as handle:
        for row in csv.reader(handle):
            if row:  # blank lines are not rows
                yield row


def _xlsx_rows(path: Path, entity: Entity) -> Iterator[list[object]]:
    from openpyxl import load_workbook

    workbook = load_workbook(path, read_only=True, data_only=True)
    try:
        sheet = workbook[entity.sheet] if entity.sheet else workbook.worksheets[0]
        for row in sheet.iter_rows(values_only=True):
            if any(cell not in (None, "") for cell in row):
                yield list(row)
    finally:
        workbook.close()


def csv_buffer_writer() -> tuple[io.StringIO, csv.writer]:  # type: ignore[valid-type]
    buffer = io.StringIO()
    return buffer, csv.writer(buffer, lineterminator="\n")
