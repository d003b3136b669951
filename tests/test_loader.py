"""Loader: COPY into raw, quarantine with reasons, reconciliation, idempotent reruns, clear errors."""

from __future__ import annotations

import csv
from contextlib import closing
from datetime import date, datetime
from pathlib import Path

import psycopg2
import pytest

from hospital_ops.load.files import SourceFileError
from hospital_ops.load.loader import ManifestEntry, load_night, plan_extract, watermark
from hospital_ops.sources.vendor import SOURCE
from reference_parsing import convert, parse_date, parse_timestamp

KEY = b"test-key"
REGISTRY_HEADER = [c.name for c in SOURCE.entity("registry").columns]
DELIVERY_HEADER = [c.name for c in SOURCE.entity("deliveries").columns]

REGISTRY_ROWS = [
    ["V001", "顺达医药物流有限公司", "logistics_delivery", "medium", "91310000MA1FL0XX1A", "张伟", "13800138000",
     "2024/03/01", "N"],
    ["V002", "华康医学检验有限公司", "lab_testing", "medium", "91310000MA1FL0XX2B", "李娜", "13900139000",
     "2023年7月15日", "是"],
]
GOOD_DELIVERIES = [
    ["D1", "V001", "H01", "药品", "2026-11-01 09:00:00", "2026-11-01 08:55:00"],
    ["D2", "V001", "H02", "耗材", "2026/11/01 10:00", "2026-11-01T10:20:00"],
    ["D3", "V001", "H01", "药品", "2026-11-01 11:00:00", ""],  # blank = not delivered yet
]
BAD_DELIVERIES = {
    "unknown vendor": ["D4", "V999", "H01", "药品", "2026-11-01 12:00:00", "2026-11-01 12:00:00"],
    "bad timestamp": ["D5", "V001", "H01", "药品", "yesterday noon", "2026-11-01 12:00:00"],
    "missing required": ["D6", "V001", "  ", "药品", "2026-11-01 12:00:00", "2026-11-01 12:00:00"],
    "duplicate": GOOD_DELIVERIES[0],
}
SHORT_ROW = ["D7", "V001", "H01"]


def write_csv(path: Path, header: list[str], rows: list[list[str]], encoding: str = "utf-8") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    night1 = tmp_path / "vendor" / "2026-11-01"
    write_csv(night1 / "vendor_registry.csv", REGISTRY_HEADER, REGISTRY_ROWS, encoding="gbk")
    write_csv(night1 / "deliveries.csv", DELIVERY_HEADER, GOOD_DELIVERIES + list(BAD_DELIVERIES.values()) + [SHORT_ROW])
    night2 = tmp_path / "vendor" / "2026-11-02"
    write_csv(night2 / "deliveries.csv", DELIVERY_HEADER, [["D8", "V002", "H01", "药品", "20261102", "20261102"]])
    return tmp_path


def run(db_url: str, inbox: Path, night: date, run_id: str):
    with closing(psycopg2.connect(db_url)) as conn:
        from hospital_ops.load.loader import ensure_raw_schema

        ensure_raw_schema(conn, SOURCE)
        manifest = plan_extract(inbox, SOURCE, night, watermark(conn, "vendor", night))
        return load_night(conn, SOURCE, manifest, run_id=run_id, batch_date=night, key=KEY)


def query(db_url: str, sql: str, params: tuple = ()) -> list[tuple]:
    with closing(psycopg2.connect(db_url)) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def test_load_quarantines_malformed_rows_and_reconciles(db_url: str, inbox: Path) -> None:
    night = run(db_url, inbox, date(2026, 11, 1), "run-1")

    deliveries = next(f for f in night.files if f.entity == "deliveries")
    expected_bad = len(BAD_DELIVERIES) + 1  # + the short row
    assert deliveries.rows_read == len(GOOD_DELIVERIES) + expected_bad
    assert deliveries.rows_loaded == len(GOOD_DELIVERIES)
    assert deliveries.rows_quarantined == expected_bad
    assert query(db_url, "select count(*) from raw.vendor__deliveries")[0][0] == len(GOOD_DELIVERIES)

    reasons = dict(query(db_url, "select row_number, reason from raw._quarantine where entity = 'deliveries'"))
    rows = GOOD_DELIVERIES + list(BAD_DELIVERIES.values()) + [SHORT_ROW]
    row_of = {tuple(r): i + 2 for i, r in reversed(list(enumerate(rows)))}  # file row numbers (header = 1)
    assert "unknown vendor_id 'V999'" in reasons[row_of[tuple(BAD_DELIVERIES["unknown vendor"])]]
    assert "promised_at" in reasons[row_of[tuple(BAD_DELIVERIES["bad timestamp"])]]
    assert "hospital_id: required value is missing" in reasons[row_of[tuple(BAD_DELIVERIES["missing required"])]]
    assert reasons[len(rows) + 1].startswith("row has 3 cells")  # the short row is last
    duplicate_row = len(GOOD_DELIVERIES) + list(BAD_DELIVERIES).index("duplicate") + 2
    assert reasons[duplicate_row].startswith("duplicate: same content as vendor/2026-11-01/deliveries.csv row 2")

    # blank strings are NULLs, mixed timestamp formats are normalised
    delivered = dict(query(db_url, "select delivery_id, delivered_at from raw.vendor__deliveries"))
    assert delivered["D3"] is None
    assert delivered["D2"] == datetime(2026, 11, 1, 10, 20)


def test_registry_in_gbk_is_decoded_and_pii_pseudonymized(db_url: str, inbox: Path) -> None:
    run(db_url, inbox, date(2026, 11, 1), "run-1")
    rows = query(db_url, "select vendor_id, vendor_name, contact_phone_pseudo, admitted_on, related_party_declared "
                         "from raw.vendor__registry order by vendor_id")
    assert [r[1] for r in rows] == [r[1] for r in REGISTRY_ROWS]
    assert all(len(r[2]) == 32 and r[2] != src[6] for r, src in zip(rows, REGISTRY_ROWS, strict=True))
    assert [r[3] for r in rows] == [date(2024, 3, 1), date(2023, 7, 15)]
    assert [r[4] for r in rows] == [False, True]
    columns = {r[0] for r in query(db_url, "select column_name from information_schema.columns "
                                           "where table_schema = 'raw' and table_name = 'vendor__registry'")}
    assert "contact_phone" not in columns and "contact_person" not in columns


def test_rerun_of_a_night_replaces_its_batch(db_url: str, inbox: Path) -> None:
    first = run(db_url, inbox, date(2026, 11, 1), "run-1")
    second = run(db_url, inbox, date(2026, 11, 1), "run-1-retry")
    assert first.as_dict() | {"run_id": None} == second.as_dict() | {"run_id": None}
    assert query(db_url, "select count(*) from raw.vendor__deliveries")[0][0] == first.files[1].rows_loaded
    assert query(db_url, "select count(*) from raw._quarantine")[0][0] == first.rows_quarantined
    assert query(db_url, "select distinct _run_id from raw.vendor__deliveries") == [("run-1-retry",)]


def test_a_night_that_grows_a_table_by_a_tenth_leaves_it_analyzed(db_url: str, inbox: Path) -> None:
    """dbt plans its joins on these statistics minutes later, before autovacuum would have run."""
    def planner_rows_and_rows() -> tuple[float, int]:
        return query(db_url, "select reltuples, (select count(*) from raw.vendor__deliveries) from pg_class "
                             "where oid = 'raw.vendor__deliveries'::regclass")[0]

    first = run(db_url, inbox, date(2026, 11, 1), "run-1")
    planned, rows = planner_rows_and_rows()
    assert rows == first.files[1].rows_loaded and planned == rows
    second = run(db_url, inbox, date(2026, 11, 2), "run-2")  # one row more: over a tenth of the table
    planned, rows = planner_rows_and_rows()
    assert rows == first.files[1].rows_loaded + second.rows_loaded and planned == rows


def test_next_night_takes_only_new_drop_folders(db_url: str, inbox: Path) -> None:
    run(db_url, inbox, date(2026, 11, 1), "run-1")
    second = run(db_url, inbox, date(2026, 11, 2), "run-2")
    assert [f.source_file for f in second.files] == ["vendor/2026-11-02/deliveries.csv"]
    # the rerun of the first night still sees exactly its own folders
    again = run(db_url, inbox, date(2026, 11, 1), "run-1b")
    assert {f.source_file for f in again.files} == {"vendor/2026-11-01/vendor_registry.csv",
                                                     "vendor/2026-11-01/deliveries.csv"}


def test_missing_file_is_a_clear_error(db_url: str, tmp_path: Path) -> None:
    missing = tmp_path / "vendor" / "2026-11-01" / "deliveries.csv"
    entry = ManifestEntry("deliveries", missing, "vendor/2026-11-01/deliveries.csv", date(2026, 11, 1))
    with closing(psycopg2.connect(db_url)) as conn, pytest.raises(SourceFileError, match=r"deliveries\.csv: file not found"):
        load_night(conn, SOURCE, [entry], run_id="r", batch_date=date(2026, 11, 1), key=KEY)


def test_wrong_header_is_a_clear_error_and_nothing_lands(db_url: str, tmp_path: Path) -> None:
    night = tmp_path / "vendor" / "2026-11-01"
    write_csv(night / "vendor_registry.csv", REGISTRY_HEADER, REGISTRY_ROWS)
    wrong = [("delivery_no" if name == "delivery_id" else name) for name in DELIVERY_HEADER]
    write_csv(night / "deliveries.csv", wrong, GOOD_DELIVERIES)
    with pytest.raises(SourceFileError, match=r"deliveries.csv: header does not match .*'delivery_id'.*'delivery_no'"):
        run(db_url, tmp_path, date(2026, 11, 1), "run-1")
    assert query(db_url, "select count(*) from raw.vendor__registry")[0][0] == 0  # whole night rolled back


def test_unrecognised_file_in_drop_folder_is_reported(tmp_path: Path) -> None:
    night = tmp_path / "vendor" / "2026-11-01"
    write_csv(night / "mystery_export.csv", ["a"], [["1"]])
    with pytest.raises(SourceFileError, match=r"mystery_export\.csv: unrecognised file"):
        plan_extract(tmp_path, SOURCE, date(2026, 11, 1), None)


@pytest.mark.parametrize("text", ["2026-05-03", "2026/05/03", "20260503", "2026年5月3日", "2026-05-03 14:05:00"])
def test_mixed_date_formats(text: str) -> None:
    assert parse_date(text) == date(2026, 5, 3)


@pytest.mark.parametrize("text", ["2026-05-03 14:05:00", "2026/05/03 14:05", "2026-05-03T14:05:00"])
def test_mixed_timestamp_formats(text: str) -> None:
    assert parse_timestamp(text) == datetime(2026, 5, 3, 14, 5)


def test_out_of_range_reading_is_rejected_with_its_bounds() -> None:
    temperature = SOURCE.entity("cold_chain_readings").column("temperature_c")
    with pytest.raises(ValueError, match=r"999 outside plausible range \[-40, 60\]"):
        convert(temperature, "999", KEY)
    assert convert(temperature, " 4.5 ", KEY) == "4.5"
