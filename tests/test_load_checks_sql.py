"""The loader's set-based SQL checks against parsing.convert, cell by cell: same values, same reasons."""

from __future__ import annotations

import csv
import hashlib
import hmac
from contextlib import closing
from datetime import date
from pathlib import Path

import psycopg2
import pytest

from hospital_ops.load.checks_sql import hmac_pads
from hospital_ops.load.loader import ManifestEntry, load_night
from hospital_ops.sources.spec import Column, Entity, Source
from reference_parsing import convert

KEY = b"parity-key"
NIGHT = date(2026, 11, 1)

COLUMNS = {
    "code": Column("code", required=True, allowed=("a", "b")),
    "flag": Column("flag", "bool"),
    "amount": Column("amount", "decimal", min=0, max=1e9),
    "count": Column("count", "int", min=1, max=99),
    "day": Column("day", "date"),
    "at": Column("at", "timestamp"),
    "month": Column("month", "month"),
    "phone": Column("phone", pii=True),
}
CELLS = {
    "code": ["a", " b ", "", "c", "x'y", "\u3000a\u3000"],
    "flag": ["Y", "n", "是", "否", "true", "maybe", "", " T "],
    "amount": ["4.5", " 4.50 ", "1,234.5", "¥12", "-1", "abc", "NaN", "inf", "1e3", "0x1A", "", ".5", "2000000000",
               "y" * 150, "1" * 150],
    "count": ["1", "12.0", "1.5", "0", "100", "99", "+7", "x"],
    "day": ["2026-05-03", "2026/05/03", "20260503", "2026.5.3", "2026年5月3日", "2026-05-03 14:05:00",
            "2026-02-30", "2026531", "03/05/2026", "yesterday", ""],
    "at": ["2026-05-03 14:05:00", "2026/05/03 14:05", "2026-05-03T14:05:00", "2026-05-03t14:05", "2026-05-03",
           "2026-05-03 24:00:00", "2026-05-03 23:59:60", "2026.05.03 14:05", "2026/05/03T14:05", "20260503",
           "2026-5-3  9:05:00", "noon"],
    "month": ["2026-05", "2026年5月", "2026/13", "2026-05-17", "May", ""],
    "phone": ["13800138000", " 13800138000 ", ""],
}


def _python_outcome(column: Column, cell: str) -> tuple[str | None, str | None]:
    try:
        return convert(column, cell, KEY), None
    except ValueError as exc:
        return None, str(exc)


def test_hmac_pads_reproduce_python_hmac() -> None:
    inner, outer = hmac_pads(KEY)
    expected = hmac.new(KEY, "张伟".encode(), hashlib.sha256).hexdigest()
    assert hashlib.sha256(outer + hashlib.sha256(inner + "张伟".encode()).digest()).hexdigest() == expected
    long_key = b"k" * 100  # longer than the block: hashed first, as RFC 2104 says
    inner, outer = hmac_pads(long_key)
    expected = hmac.new(long_key, b"x", hashlib.sha256).hexdigest()
    assert hashlib.sha256(outer + hashlib.sha256(inner + b"x").digest()).hexdigest() == expected


@pytest.mark.parametrize("name", list(COLUMNS))
def test_sql_checks_agree_with_parsing_convert(db_url: str, tmp_path: Path, name: str) -> None:
    column = COLUMNS[name]
    # a row key column, so every row is distinct and none is a duplicate of another
    entity = Entity(source="parity", name=name, file_pattern="*.csv", business_key=("row_key",),
                    description="parity", columns=(Column("row_key", required=True), column))
    source = Source(name="parity", description="parity", entities=(entity,))
    path = tmp_path / f"{name}.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row_key", name])
        writer.writerows([[f"k{i}", cell] for i, cell in enumerate(CELLS[name])])
    entry = ManifestEntry(name, path, f"parity/{NIGHT}/{path.name}", NIGHT)
    with closing(psycopg2.connect(db_url)) as conn:
        load_night(conn, source, [entry], run_id="parity", batch_date=NIGHT, key=KEY)
        with conn.cursor() as cur:
            cur.execute(f"select row_key, {column.raw_name}::text from raw.parity__{name}")
            loaded = dict(cur.fetchall())
            cur.execute("select record->>'row_key', reason from raw._quarantine")
            quarantined = dict(cur.fetchall())
    for i, cell in enumerate(CELLS[name]):
        value, error = _python_outcome(column, cell)
        key = f"k{i}"
        if error is None:
            assert key in loaded, (cell, quarantined.get(key))
            assert loaded[key] == value or _same_number(column, loaded[key], value), (cell, loaded[key], value)
        else:
            assert quarantined.get(key) == error, (cell, quarantined.get(key), error)


def _same_number(column: Column, sql_text: str | None, python_text: str | None) -> bool:
    """numeric's text and Decimal's str differ only in notation (1E+3 and 1000)."""
    from decimal import Decimal

    if column.type not in ("int", "decimal") or sql_text is None or python_text is None:
        return False
    return Decimal(sql_text) == Decimal(python_text)
