"""Small files landed together: one COPY and one checking statement for many files of an entity.

The batched path must give exactly what loading each file on its own gives: the same rows in raw
(same row numbers, same row hashes), the same quarantine rows with the same file, line and reason,
and the same counts per file. Each test loads the same files twice, batched and one by one (the
small-file reader switched off), and compares. Files the batch cannot take (a short row, a broken
quote, a GBK file with a carriage return) are in the mix, so each way out of the batch is covered."""

from __future__ import annotations

import csv
from contextlib import closing
from datetime import date
from pathlib import Path

import psycopg2
import pytest

from hospital_ops.load import loader as loader_module
from hospital_ops.load.files import SourceFileError, read_small_csv
from hospital_ops.load.loader import ManifestEntry, load_night
from hospital_ops.sources.vendor import SOURCE

KEY = b"batch-key"
NIGHT = date(2026, 11, 3)
REGISTRY_HEADER = [c.name for c in SOURCE.entity("registry").columns]
DELIVERY_HEADER = [c.name for c in SOURCE.entity("deliveries").columns]
REGISTRY_ROWS = [
    ["V001", "顺达医药物流有限公司", "logistics_delivery", "medium", "91310000MA1FL0XX1A", "张伟", "13800138000",
     "2024/03/01", "N"],
    ["V002", "华康医学检验有限公司", "lab_testing", "medium", "91310000MA1FL0XX2B", "李娜", "13900139000",
     "2023年7月15日", "是"],
]


def _good(n: int, day: int) -> list[str]:
    return [f"D{day}-{n}", "V001" if n % 2 else "V002", "H01", "药品", f"2026-11-0{day} 09:{n:02d}:00",
            f"2026-11-0{day} 10:{n:02d}:00"]


# a malformed row of each kind the checks know, each planted in its own file among good rows
PLANTED = {
    "wrong type": ["DX1", "V001", "H01", "药品", "yesterday noon", "2026-11-01 12:00:00"],
    "missing required": ["DX2", "V001", "  ", "药品", "2026-11-01 12:00:00", "2026-11-01 12:00:00"],
    "unknown reference": ["DX3", "V999", "H01", "药品", "2026-11-01 12:00:00", "2026-11-01 12:00:00"],
    "out of bounds": ["DX4", "V001", "H01", "药品", "1999-01-01 12:00:00", "2026-11-01 12:00:00"],
}
READING_HEADER = [c.name for c in SOURCE.entity("cold_chain_readings").columns]
PLANTED_READINGS = {
    "not a number": ["T1", "V001", "2026-11-01 08:10:00", "abc"],
    "implausible": ["T1", "V001", "2026-11-01 08:20:00", "999"],
}


def _write(path: Path, header: list[str], rows: list[list[str]], encoding: str = "utf-8",
           lineterminator: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle, lineterminator=lineterminator)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def night_files(tmp_path: Path) -> list[ManifestEntry]:
    """A night of many small files: one per planted kind, a duplicate within a file and the same row
    in another file, a quoted comma, an empty file, and three files the batch cannot take."""
    entries: list[tuple[str, Path]] = []
    folder = tmp_path / "vendor"

    def add(entity: str, day: int, name: str, header: list[str], rows: list[list[str]], **kw: str) -> None:
        path = _write(folder / f"2026-11-0{day}" / name, header, rows, **kw)
        entries.append((entity, path))

    add("registry", 1, "vendor_registry.csv", REGISTRY_HEADER, REGISTRY_ROWS)
    for day, row in enumerate(PLANTED.values(), start=1):
        add("deliveries", day, f"deliveries_{day}.csv", DELIVERY_HEADER, [_good(1, day), row, _good(2, day)])
    for day, row in enumerate(PLANTED_READINGS.values(), start=1):
        add("cold_chain_readings", day, f"cold_chain_readings_{day}.csv", READING_HEADER,
            [["T1", "V002", f"2026-11-0{day} 08:00:00", "4.5"], row])
    add("deliveries", 1, "deliveries_dup.csv", DELIVERY_HEADER, [_good(1, 1), _good(3, 1), _good(3, 1)])
    add("deliveries", 2, "deliveries_quoted.csv", DELIVERY_HEADER, [["D,Q1", "V001", "H01", "药品",
                                                                       "2026-11-02 09:00:00", ""]])
    add("deliveries", 2, "deliveries_empty.csv", DELIVERY_HEADER, [])
    add("deliveries", 3, "deliveries_short.csv", DELIVERY_HEADER, [_good(4, 3), ["D-short", "V001", "H01"]])
    path = folder / "2026-11-04" / "deliveries_broken.csv"
    path.write_text(",".join(DELIVERY_HEADER) + "\n" + ",".join(_good(5, 4)) + '\nD-b,"V001,H01,药品,x,y\n'
                    + ",".join(_good(6, 4)) + "\n", encoding="utf-8")
    entries.append(("deliveries", path))
    add("deliveries", 4, "deliveries_crlf_gbk.csv", DELIVERY_HEADER, [_good(7, 4), PLANTED["wrong type"]],
        encoding="gbk", lineterminator="\r\n")
    add("deliveries", 5, "deliveries_gbk.csv", DELIVERY_HEADER, [[*_good(8, 5)[:3], "耗材", *_good(8, 5)[4:]]],
        encoding="gbk")
    return [ManifestEntry(entity, path, f"vendor/{path.parent.name}/{path.name}", date.fromisoformat(path.parent.name))
            for entity, path in entries]


def _load(db_url: str, manifest: list[ManifestEntry]):  # type: ignore[no-untyped-def]
    with closing(psycopg2.connect(db_url)) as conn:
        night = load_night(conn, SOURCE, manifest, run_id="batch", batch_date=NIGHT, key=KEY)
        with conn.cursor() as cur:
            cur.execute("select _source_file, _row_number, _row_hash, delivery_id, vendor_id, promised_at "
                        "from raw.vendor__deliveries order by 1, 2")
            raw = cur.fetchall()
            cur.execute("select source_file, row_number, reason, record from raw._quarantine order by 1, 2")
            quarantine = cur.fetchall()
            cur.execute("select source_file, rows_read, rows_loaded, rows_quarantined from raw._load_files order by 1")
            files = cur.fetchall()
    return night, raw, quarantine, files


def _one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader_module, "read_small_csv", lambda path, entity: None)


def test_batched_files_load_exactly_as_files_one_by_one(fresh_database, night_files: list[ManifestEntry],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    batched_night, *batched = _load(fresh_database("batched"), night_files)
    with monkeypatch.context() as patch:
        _one_by_one(patch)
        single_night, *single = _load(fresh_database("single"), night_files)

    assert batched == single
    raw, quarantine, files = batched
    # every file reconciles: its data lines are its rows read, loaded plus quarantined
    for entry in night_files:
        lines = entry.path.read_bytes().count(b"\n") - 1
        assert (entry.relative_path, lines) in {(f, r) for f, r, _, _ in files}
    assert all(read == loaded + quarantined for _, read, loaded, quarantined in files)
    assert batched_night.rows_read == single_night.rows_read == sum(r for _, r, _, _ in files)

    reasons = {(file, line): reason for file, line, reason, _ in quarantine}
    for day, kind in enumerate(PLANTED, start=1):  # each planted row: its own file, line 3 (header, good row)
        assert (f"vendor/2026-11-0{day}/deliveries_{day}.csv", 3) in reasons, kind
    assert reasons[("vendor/2026-11-01/cold_chain_readings_1.csv", 3)] == "temperature_c: 'abc' is not a number"
    assert "outside plausible range" in reasons[("vendor/2026-11-02/cold_chain_readings_2.csv", 3)]
    assert reasons[("vendor/2026-11-01/deliveries_dup.csv", 4)] == (
        "duplicate: same content as vendor/2026-11-01/deliveries_dup.csv row 3")
    # the same row in another file is kept: registers are re-sent whole, staging keeps the latest
    assert [r for r in raw if r[3] == "D1-1"] and len([r for r in raw if r[3] == "D1-1"]) == 2
    assert reasons[("vendor/2026-11-03/deliveries_short.csv", 3)].startswith("row has 3 cells")
    assert reasons[("vendor/2026-11-04/deliveries_broken.csv", 3)].startswith("unclosed quote")
    assert "promised_at: unrecognised date/time" in reasons[("vendor/2026-11-04/deliveries_crlf_gbk.csv", 3)]
    assert ("vendor/2026-11-02/deliveries_quoted.csv", 2) in {(r[0], r[1]) for r in raw if r[3] == "D,Q1"}


def test_the_small_file_reader_takes_only_what_copy_frames_line_by_line(night_files: list[ManifestEntry]) -> None:
    deliveries = SOURCE.entity("deliveries")
    taken = {e.path.name for e in night_files if e.entity == "deliveries" and read_small_csv(e.path, deliveries)}
    assert "deliveries_quoted.csv" in taken and "deliveries_gbk.csv" in taken and "deliveries_empty.csv" in taken
    assert "deliveries_broken.csv" not in taken  # an odd number of quotes on a line
    assert "deliveries_crlf_gbk.csv" not in taken  # carriage returns: the strict reader judges
    gbk = read_small_csv(next(e.path for e in night_files if e.path.name == "deliveries_gbk.csv"), deliveries)
    assert gbk is not None and gbk.facts.encoding == "gb18030" and "耗材".encode() in gbk.data


def test_a_batch_copy_refuses_is_loaded_file_by_file(fresh_database, night_files: list[ManifestEntry],
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger=loader_module.__name__)
    _load(fresh_database("refused"), night_files)
    assert any("COPY refused a batch" in message for message in caplog.messages)  # the short row's batch


def test_a_failing_file_in_a_batch_leaves_nothing_behind(fresh_database, night_files: list[ManifestEntry]) -> None:
    url = fresh_database("failing")
    _load(url, night_files[:2])  # an earlier load of the same night, which the failing rerun must leave as it was
    before = _load_snapshot(url)
    bad = night_files[3].path
    bad.write_text(bad.read_text(encoding="utf-8").replace("delivery_id", "delivery_no", 1), encoding="utf-8")
    with pytest.raises(SourceFileError, match=r"deliveries_3\.csv: header does not match"):
        _load(url, night_files)
    assert _load_snapshot(url) == before
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.execute("select count(*) from pg_class where relname like '\\_landing\\_\\_%' and relpersistence = 't'")
        assert cur.fetchone()[0] == 0  # no landing table outlives its transaction


def _load_snapshot(url: str) -> tuple[list[tuple], ...]:
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        out = []
        for sql in ("select _source_file, _row_number, _row_hash from raw.vendor__deliveries order by 1, 2",
                    "select source_file, row_number, reason from raw._quarantine order by 1, 2",
                    "select source_file, rows_read from raw._load_files order by 1"):
            cur.execute(sql)
            out.append(cur.fetchall())
        return tuple(out)
