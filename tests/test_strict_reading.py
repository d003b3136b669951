"""Strict reading: broken quotes, bad headers, NUL bytes, over-long lines and damaged workbooks are
quarantined line by line or refused with a clear, bounded error naming the file; nothing is merged
or lost, and no personal value reaches an error message."""

from __future__ import annotations

import csv
import io
from contextlib import closing
from datetime import date
from pathlib import Path

import psycopg2
import pytest

from hospital_ops.load.files import MAX_LINE_BYTES, SourceFileError
from hospital_ops.load.loader import ManifestEntry, load_night
from hospital_ops.sources.spec import Column, Entity, Source

KEY = b"strict-key"
NIGHT = date(2026, 11, 1)
COLUMNS = (Column("item_id", required=True), Column("patient_name", pii=True), Column("qty", "int", min=0, max=1000),
           Column("note", free_text=True))
HEADER = [c.name for c in COLUMNS]
ENTITY = Entity(source="strict", name="items", file_pattern="items*.csv", business_key=("item_id",),
                description="strict reading", columns=COLUMNS)
BOOK = Entity(source="strict", name="book", file_pattern="book*.xlsx", business_key=("item_id",),
              description="strict reading (Excel)", columns=COLUMNS, file_format="xlsx")
SOURCE = Source(name="strict", description="strict reading", entities=(ENTITY, BOOK))


def _line(cells: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(cells)
    return buffer.getvalue()


def _load(db_url: str, path: Path, entity: Entity = ENTITY):  # type: ignore[no-untyped-def]
    entry = ManifestEntry(entity.name, path, f"strict/{NIGHT}/{path.name}", NIGHT)
    with closing(psycopg2.connect(db_url)) as conn:
        night = load_night(conn, SOURCE, [entry], run_id="strict", batch_date=NIGHT, key=KEY)
        with conn.cursor() as cur:
            cur.execute(f"select item_id, _row_number, note from raw.strict__{entity.name}")
            loaded = {item: (line, note) for item, line, note in cur.fetchall()}
            cur.execute("select row_number, reason, record::text from raw._quarantine order by row_number")
            quarantined = {line: (reason, record) for line, reason, record in cur.fetchall()}
    return night.files[0], loaded, quarantined


def test_unclosed_quote_never_merges_records(db_url: str, tmp_path: Path) -> None:
    good = [["A1", "张伟", "1", "ok"], ["A3", "王芳", "3", "fine"], ["A4", "赵强", "4", "fine"]]
    broken = 'A2,"李娜,2,fine\n'  # the quote before 李娜 is never closed
    lines = [_line(HEADER), _line(good[0]), broken, _line(good[1]), _line(good[2]), 'A5,"x",5,"done"\n']
    path = tmp_path / "items.csv"
    path.write_text("".join(lines), encoding="utf-8")
    data_lines = len(lines) - 1

    file_load, loaded, quarantined = _load(db_url, path)

    # every physical line is counted once: read = data lines = loaded + quarantined
    assert file_load.rows_read == data_lines
    assert file_load.rows_loaded + file_load.rows_quarantined == data_lines
    assert len(loaded) + len(quarantined) == data_lines
    broken_line = lines.index(broken) + 1
    assert quarantined[broken_line][0].startswith("unclosed quote")
    # the records the open quote swallowed come back as rows, each at its own line
    for row in [*good, ["A5"]]:
        line = next(i + 1 for i, text in enumerate(lines) if text.startswith(row[0] + ","))
        assert loaded[row[0]][0] == line
    assert "李娜" not in quarantined[broken_line][1]  # the entity has a personal column: cells pseudonymized


def test_a_quoted_line_break_in_free_text_is_one_record(db_url: str, tmp_path: Path) -> None:
    rows = [["B1", "张伟", "1", "first line\nsecond line"], ["B2", "王芳", "2", "plain"]]
    path = tmp_path / "items.csv"
    path.write_text(_line(HEADER) + "".join(_line(r) for r in rows), encoding="utf-8")

    file_load, loaded, quarantined = _load(db_url, path)

    assert file_load.rows_read == len(rows) and not quarantined
    assert loaded["B1"][1] == rows[0][3]
    assert loaded["B2"][0] == 2 + rows[0][3].count("\n") + 1  # B2 starts after B1's two physical lines


def test_a_line_break_outside_free_text_is_not_a_record(db_url: str, tmp_path: Path) -> None:
    rows = [["C1", "张伟\nA9,王芳,9,swallowed", "1", "x"], ["C2", "王芳", "2", "y"]]
    path = tmp_path / "items.csv"
    path.write_text(_line(HEADER) + "".join(_line(r) for r in rows), encoding="utf-8")

    file_load, loaded, quarantined = _load(db_url, path)

    physical = 1 + sum(1 + r[1].count("\n") for r in rows)
    assert file_load.rows_read == physical - 1
    assert set(loaded) == {"C2"} and loaded["C2"][0] == physical
    # C1's line with the open quote, and the line it swallowed (which ends with the stray closing quote)
    assert quarantined[2][0].startswith("unclosed quote")
    assert quarantined[3][0].startswith("row has")
    assert len(quarantined) == physical - 1 - len(loaded)


def test_nul_bytes_and_over_long_lines_are_quarantined_with_their_line(db_url: str, tmp_path: Path) -> None:
    long_note = "x" * (MAX_LINE_BYTES + 10)
    lines = [_line(HEADER), _line(["D1", "张伟", "1", "ok"]), "D2,张\x00伟,2,nul\n", _line(["D3", "王芳", "3", long_note]),
             _line(["D4", "赵强", "4", "ok"])]
    path = tmp_path / "items.csv"
    path.write_text("".join(lines), encoding="utf-8")

    file_load, loaded, quarantined = _load(db_url, path)

    assert file_load.rows_read == len(lines) - 1
    assert set(loaded) == {"D1", "D4"}
    assert quarantined[3][0] == "line contains a NUL byte"
    assert quarantined[4][0].startswith(f"line is longer than {MAX_LINE_BYTES}")
    assert all(len(reason) < 300 and len(record) < 1000 for reason, record in quarantined.values())
    assert all("伟" not in record for _, record in quarantined.values())


@pytest.mark.parametrize("header, problem", [
    (["item_id", "patient_name", "qty", "note", "note"], r"repeated column name \['note'\]"),
    (["item_id", "patient_name", "", "qty", "note"], "blank column name at position 3"),
])
def test_repeated_or_blank_header_names_are_refused(db_url: str, tmp_path: Path, header: list[str],
                                                     problem: str) -> None:
    path = tmp_path / "items.csv"
    path.write_text(_line(header) + _line(["E1", "张伟", "", "1", "x"]), encoding="utf-8")
    with pytest.raises(SourceFileError, match=rf"items.csv: header does not match .*{problem}"):
        _load(db_url, path)


def test_a_missing_header_never_echoes_the_first_row(db_url: str, tmp_path: Path) -> None:
    first = ["F1", "张伟", "1", "110101199003071234"]
    path = tmp_path / "items.csv"
    path.write_text(_line(first) + _line(["F2", "王芳", "2", "x"]), encoding="utf-8")
    with pytest.raises(SourceFileError, match=r"items.csv: line 1 is not a header") as raised:
        _load(db_url, path)
    assert not any(cell in str(raised.value) for cell in first if len(cell) > 1)


def test_a_damaged_workbook_is_a_clear_error_naming_the_file(db_url: str, tmp_path: Path) -> None:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.append(HEADER)
    for i in range(50):
        sheet.append([f"G{i}", "张伟", i, "note"])
    whole = tmp_path / "book_whole.xlsx"
    workbook.save(whole)
    truncated = tmp_path / "book_truncated.xlsx"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])

    file_load, loaded, _ = _load(db_url, whole, BOOK)
    assert file_load.rows_loaded == 50 and loaded["G7"][0] == 9  # sheet row numbers (header = row 1)
    with pytest.raises(SourceFileError, match=r"book_truncated.xlsx: damaged workbook") as raised:
        _load(db_url, truncated, BOOK)
    assert len(str(raised.value)) < 600
