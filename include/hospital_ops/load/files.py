"""Reading delivered files as rows of cells, whatever their encoding or format."""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Self

from hospital_ops.redaction import shown_cells
from hospital_ops.sources.spec import Entity

if TYPE_CHECKING:
    from _csv import Writer


class SourceFileError(RuntimeError):
    """A delivered file cannot be read at all (missing, unreadable, wrong header)."""


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


MAX_LINE_BYTES = 1 << 20  # a physical line longer than this is quarantined unread (no CSV field is that long)
_CHUNK_BYTES = 1 << 20  # = MAX_LINE_BYTES: a line inside one chunk can never be over-long
_SHOWN_CELL_CHARS = 200  # a quarantined line's cells are cut to this length in its record


@dataclass(frozen=True)
class FileFacts:
    """What one pass over a file's bytes tells the loader before it reads a row."""

    sha256: str
    encoding: str
    lines: int  # physical lines (a last line without its newline counts)
    has_long_line: bool  # some line is longer than MAX_LINE_BYTES


def file_facts(path: Path) -> FileFacts:
    """sha256, encoding (as detect_encoding), physical lines and over-long lines in one pass, in chunks.

    The loader compares the lines with the records COPY framed: a quoted field that runs over a line
    end (an unclosed quote that swallowed the next records, or a legitimate multi-line comment) makes
    them differ, and the file is then read by the strict reader below, which tells the two apart."""
    if not path.is_file():
        raise SourceFileError(f"{path}: file not found")
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    utf8 = True
    newlines = 0
    run = 0  # bytes of the line in progress
    long_line = False
    try:
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(_CHUNK_BYTES), b""):
                digest.update(chunk)
                count = chunk.count(b"\n")
                if count:
                    newlines += count
                    long_line = long_line or run + chunk.find(b"\n") + 1 > MAX_LINE_BYTES
                    run = len(chunk) - chunk.rfind(b"\n") - 1
                else:
                    run += len(chunk)
                    long_line = long_line or run > MAX_LINE_BYTES
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
    return FileFacts(digest.hexdigest(), "utf-8-sig" if utf8 else "gb18030", newlines + (1 if run else 0), long_line)


SMALL_FILE_BYTES = MAX_LINE_BYTES  # a CSV file this small is read whole, and may share one COPY with others


@dataclass(frozen=True)
class SmallCsv:
    """A small CSV file read whole, ready to be landed by a COPY shared with other files of its entity."""

    facts: FileFacts
    names: tuple[str, ...]  # the header's names (as header_positions gives them), in the file's order
    pseudonymised: frozenset[str]  # as pseudonymised_columns
    data: bytes  # the data lines as UTF-8, header removed, each ending in a newline
    records: int  # data lines: COPY frames exactly one record per line (see read_small_csv)


def read_small_csv(path: Path, entity: Entity) -> SmallCsv | None:
    """A small CSV file whose records are exactly its lines, read whole in one pass; None for a file
    that is larger, or that COPY could frame otherwise than line by line, or that the strict reader
    must judge: a carriage return, a NUL byte, a blank line, a line with an odd number of quotes (a
    quoted field running over a line end, or a broken quote), a header with a quote, bytes neither
    UTF-8 nor GB18030, no data line at all. Such a file is loaded on its own, as before.

    For the files it takes, the facts are those `file_facts` gives (sha256 of the bytes, encoding,
    physical lines), and the header is refused as `header_positions` refuses it. COPY's CSV parser
    toggles quoting at every quote character, so a line with an even number of them ends outside any
    quoted field: the file's records are its lines, and a shared COPY's rows can be told apart by
    counting lines (`loader._load_batch`)."""
    if not path.is_file():
        raise SourceFileError(f"{path}: file not found")
    try:
        if path.stat().st_size > SMALL_FILE_BYTES:
            return None
        raw = path.read_bytes()
    except OSError as exc:
        raise SourceFileError(f"{path}: cannot be read: {exc}") from exc
    body = raw.removeprefix(codecs.BOM_UTF8)
    try:
        body.decode("utf-8")
        encoding = "utf-8-sig"
    except UnicodeDecodeError:
        try:
            body = raw.decode("gb18030").lstrip("\ufeff").encode("utf-8")
        except UnicodeDecodeError:
            return None
        encoding = "gb18030"
    if not body or b"\r" in body or b"\x00" in body:
        return None
    lines = raw.count(b"\n") + (0 if raw.endswith(b"\n") else 1)
    if not body.endswith(b"\n"):
        body += b"\n"
    header_end = body.find(b"\n")
    if header_end <= 0 or b"\n\n" in body or b'"' in body[:header_end]:
        return None
    if b'"' in body and any(line.count(b'"') % 2 for line in body.split(b"\n")):
        return None
    header = body[:header_end].decode("utf-8").split(",")
    names, _ = header_positions(path, entity, header)  # refuses a bad header, as for any file
    facts = FileFacts(hashlib.sha256(raw).hexdigest(), encoding, lines, False)
    return SmallCsv(facts, tuple(names), pseudonymised_columns(entity, header), body[header_end + 1:], lines - 1)


def header_positions(path: Path, entity: Entity, header: Sequence[object] | None) -> tuple[list[str], list[int]]:
    """The header's names and, for each spec column in spec order, its position in the header.

    A header that lacks a spec column, has an unknown, blank or repeated one is a SourceFileError
    naming the file and the columns: the vendor changed its export and a person must look. The message
    never shows a data row: a first row that names none of the spec's columns is reported as a missing
    header, not listed (it is most likely data: names, ID numbers)."""
    if header is None:
        raise SourceFileError(f"{path}: file is empty (no header row)")
    names = [str(cell).strip().lstrip("\ufeff") if cell is not None else "" for cell in header]
    # a personal column headed `<name>_pseudo` carries pseudonyms already (see pseudonymised_columns)
    renamed = {column.raw_name: column.name for column in entity.columns if column.pii}
    names = [renamed.get(name, name) for name in names]
    expected = [column.name for column in entity.columns]
    missing = [name for name in expected if name not in names]
    if len(missing) == len(expected):
        raise SourceFileError(f"{path}: line 1 is not a header: it names none of the {entity.raw_table} spec's "
                              f"{len(expected)} columns (expected {', '.join(expected[:8])}"
                              f"{', …' if len(expected) > 8 else ''})")
    blank = [i + 1 for i, name in enumerate(names) if name == ""]
    repeated = sorted({name for name in names if name and names.count(name) > 1})
    unexpected = [name for name in names if name and name not in expected]
    if missing or unexpected or blank or repeated:
        problems = [f"missing {missing or 'none'}",
                    f"unexpected {shown_cells(unexpected)}" if unexpected else "unexpected none"]
        if blank:
            problems.append(f"blank column name at position {', '.join(map(str, blank[:10]))}")
        if repeated:
            problems.append(f"repeated column name {shown_cells(repeated)}")
        raise SourceFileError(f"{path}: header does not match the {entity.raw_table} spec: " + "; ".join(problems))
    return names, [names.index(name) for name in expected]


def pseudonymised_columns(entity: Entity, header: Sequence[object] | None) -> frozenset[str]:
    """The personal columns a file delivers already pseudonymised: those its header names `<name>_pseudo`.

    The marker is per file, in the file itself: an extractor (SQL, API, FHIR) hashes personal values
    before it writes a landing file and heads their columns with the raw name, while a drop-folder
    source (vendor, referral) delivers them in clear under the plain name and the loader hashes them.
    A global "extracted sources are hashed" rule would hash twice (or not at all) the day a file took
    the other road; the header travels with the values it describes. The loader still checks that each
    such cell is a pseudonym's shape (32 hex digits) and quarantines it otherwise, unshown."""
    if header is None:
        return frozenset()
    names = {str(cell).strip().lstrip("\ufeff") for cell in header if cell is not None}
    return frozenset(column.name for column in entity.columns if column.pii and column.raw_name in names)


def csv_header(path: Path, encoding: str) -> list[str] | None:
    """The header (first non-blank row) of a CSV file, or None when the file is empty."""
    try:
        for record in _csv_records(path, encoding):
            if record.problem is not None:
                raise SourceFileError(f"{path}: line {record.line}: header row cannot be read: {record.problem}")
            return record.cells
        return None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SourceFileError(f"{path}: cannot be read as csv: {_bounded(exc)}") from exc


def read_rows(path: Path, entity: Entity, encoding: str | None = None) -> Iterator[tuple[int, list[object]]]:
    """Yield (line, row) for each data row (header checked and removed), the row ordered like the spec's
    columns. `line` is the physical line where the record starts (the sheet row for a workbook).

    A row the reader cannot take as it is comes whole as a misshapen row (wrong number of cells) or a
    broken line (`broken_reason`: unclosed or malformed quoting, a NUL byte, an over-long line), for
    the loader to quarantine with its line number."""
    if not path.is_file():
        raise SourceFileError(f"{path}: file not found")
    if entity.file_format == "xlsx":
        yield from _xlsx_read_rows(path, entity)
        return
    records = _csv_records(path, encoding or detect_encoding(path), entity)
    try:
        header = next(records, None)
        if header is not None and header.problem is not None:
            raise SourceFileError(f"{path}: line {header.line}: header row cannot be read: {header.problem}")
        names, positions = header_positions(path, entity, None if header is None else header.cells)
        width = len(names)
        for record in records:
            if record.problem is not None:
                yield record.line, _BrokenLine(record.cells, record.problem)
            elif len(record.cells) != width:
                yield record.line, _MisshapenRow(record.cells, width)
            else:
                yield record.line, [record.cells[position] for position in positions]
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SourceFileError(f"{path}: cannot be read as csv: {_bounded(exc)}") from exc


def _xlsx_read_rows(path: Path, entity: Entity) -> Iterator[tuple[int, list[object]]]:
    rows = _xlsx_rows(path, entity)
    header = next(rows, None)
    header_cells = None if header is None else header[1]
    if header_cells is not None:  # spreadsheets pad the header with empty trailing cells freely
        while header_cells and header_cells[-1] in (None, ""):
            header_cells = header_cells[:-1]
    if pseudonymised_columns(entity, header_cells):  # only extractors pre-pseudonymise, and they write CSV
        raise SourceFileError(f"{path}: a workbook's personal columns must arrive under their plain names "
                              "(a `_pseudo` column is a landing CSV's marker)")
    names, positions = header_positions(path, entity, header_cells)
    width = len(names)
    for line, row in rows:
        row = (list(row) + [None] * width)[:width] if all(cell in (None, "") for cell in row[width:]) else row
        if len(row) != width:
            yield line, _MisshapenRow(row, width)  # kept whole so the quarantine shows what arrived
            continue
        yield line, [row[position] for position in positions]


def _bounded(exc: BaseException, limit: int = 300) -> str:
    """A library's error message cut to `limit` characters (some echo the input they choked on)."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[:limit] + "…"


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

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _MisshapenRow(list):
    def __init__(self, cells: Iterable[object], expected_width: int) -> None:
        super().__init__(cells)
        self.expected_width = expected_width


def is_misshapen(row: list[object]) -> bool:
    return isinstance(row, _MisshapenRow)


def misshapen_reason(row: list[object]) -> str:
    """Why a row with the wrong number of cells is quarantined."""
    expected = row.expected_width if isinstance(row, _MisshapenRow) else "another number of"
    return f"row has {len(row)} cells, header has {expected}"


class _BrokenLine(list):
    def __init__(self, cells: Iterable[object], reason: str) -> None:
        super().__init__(cells)
        self.reason = reason


def broken_reason(row: list[object]) -> str | None:
    """Why the reader could not frame this line as a row (None for a row it framed)."""
    return row.reason if isinstance(row, _BrokenLine) else None


@dataclass
class _Record:
    line: int  # the physical line it starts on
    cells: list[str]
    problem: str | None = None


class _BadLine(Exception):
    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


class _Lines:
    """A text file's physical lines for csv.reader, remembering which lines each record consumed.

    A line with a NUL byte or longer than MAX_LINE_BYTES is not handed to csv: it raises _BadLine (the
    reader resumes at the next line), and an over-long line is skipped unread, never held whole."""

    def __init__(self, handle: IO[str]) -> None:
        self._handle = handle
        self.number = 0
        self._taken: list[tuple[int, str]] = []

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self._handle.readline(MAX_LINE_BYTES + 1)
        if not line:
            raise StopIteration
        self.number += 1
        if len(line) > MAX_LINE_BYTES and not line.endswith("\n"):
            length = len(line)
            while True:  # skip the rest of the line unread
                more = self._handle.readline(MAX_LINE_BYTES + 1)
                length += len(more)
                if not more or more.endswith("\n"):
                    break
            raise _BadLine(self.number, f"line is longer than {MAX_LINE_BYTES} characters ({length})")
        if "\x00" in line:
            raise _BadLine(self.number, "line contains a NUL byte")
        self._taken.append((self.number, line))
        return line

    def take(self) -> list[tuple[int, str]]:
        taken, self._taken = self._taken, []
        return taken


def _csv_records(path: Path, encoding: str | None = None, entity: Entity | None = None) -> Iterator[_Record]:
    """The file's records, read strictly (csv strict mode) and checked against its physical lines.

    A record may run over several lines only inside a quoted free-text cell (a comment with a line
    break). Anything else that spans lines (an unclosed quote that swallowed the following records, a
    quote that closes in the wrong place) is undone: each of its physical lines is read again on its
    own, so the swallowed records come back as rows and only the line with the broken quote is a
    problem, with its own line number. Blank lines are not records."""
    encoding = encoding or detect_encoding(path)
    csv.field_size_limit(max(csv.field_size_limit(), MAX_LINE_BYTES))
    with path.open("r", encoding=encoding, newline="") as handle:
        lines = _Lines(handle)
        reader = csv.reader(lines, strict=True)
        width: int | None = None
        free_text: set[int] = set()
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                taken = lines.take()
                if taken:  # a quoted field still open at the end of the file
                    yield from _one_by_one(taken)
                return
            except _BadLine as bad:
                yield from _one_by_one(lines.take())
                yield _Record(bad.line, [], bad.reason)
                continue
            except csv.Error:
                yield from _one_by_one(lines.take())
                continue
            taken = lines.take()
            if not cells:
                continue
            if len(taken) > 1 and width is not None and not _legitimate_multiline(cells, taken, width, free_text):
                yield from _one_by_one(taken)
                continue
            if width is None:  # the header
                if len(taken) > 1:
                    yield _Record(taken[0][0], [], "the header row runs over several lines (a quote is not closed)")
                    return
                width = len(cells)
                if entity is not None:
                    names = [c.strip().lstrip("\ufeff") for c in cells]
                    free_text = {names.index(c.name) for c in entity.columns if c.free_text and c.name in names}
            yield _Record(taken[0][0], cells)


def _legitimate_multiline(cells: list[str], taken: list[tuple[int, str]], width: int, free_text: set[int]) -> bool:
    """A record over several lines is a free-text cell with a line break, not swallowed records: the
    right number of cells, line breaks only in free-text cells, and no continuation line that reads on
    its own as a whole row."""
    if len(cells) != width:
        return False
    if any(("\n" in cell or "\r" in cell) for i, cell in enumerate(cells) if i not in free_text):
        return False
    for _, text in taken[1:]:
        try:
            alone = next(csv.reader([text]), [])
        except csv.Error:
            continue
        if len(alone) == width:
            return False
    return True


def _one_by_one(taken: list[tuple[int, str]]) -> Iterator[_Record]:
    """Each physical line read on its own, strictly: a good line is a record again, a line whose quoting
    is broken is a problem with its number (its cells as a lenient reader sees them, for the record)."""
    for number, text in taken:
        if not text.strip("\r\n"):
            continue
        try:
            yield _Record(number, next(csv.reader([text], strict=True)))
        except csv.Error as exc:
            lenient = next(csv.reader([text]), [])
            problem = ("unclosed quote: a quoted field opened on this line is not closed on it"
                       if "unexpected end of data" in str(exc) else f"malformed CSV quoting ({exc})")
            yield _Record(number, [str(c)[:_SHOWN_CELL_CHARS] for c in lenient], problem)


def _xlsx_rows(path: Path, entity: Entity) -> Iterator[tuple[int, list[object]]]:
    """(sheet row, cells) of each non-blank row. A workbook that cannot be opened or read (truncated,
    not a zip, broken XML) is a SourceFileError naming the file (and the last row read), never a bare
    library error."""
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # zipfile.BadZipFile, KeyError, lxml/expat errors, ValueError, …
        raise SourceFileError(f"{path}: damaged workbook, cannot be opened as xlsx ({_bounded(exc)})") from exc
    number = 0
    try:
        try:
            sheet = workbook[entity.sheet] if entity.sheet else workbook.worksheets[0]
        except KeyError:
            raise SourceFileError(f"{path}: workbook has no sheet {entity.sheet!r}") from None
        try:
            for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
                if any(cell not in (None, "") for cell in row):
                    yield number, list(row)
        except SourceFileError:
            raise
        except Exception as exc:
            raise SourceFileError(f"{path}: damaged workbook, cannot be read after sheet row {number} "
                                  f"({_bounded(exc)})") from exc
    finally:
        workbook.close()


def csv_buffer_writer() -> tuple[io.StringIO, Writer]:
    buffer = io.StringIO()
    return buffer, csv.writer(buffer, lineterminator="\n")
