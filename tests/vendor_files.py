"""Reading the generated vendor source files independently of the loader, to derive expected
values (KPIs, scenario facts) from the data itself. Shared by the generator and end-to-end tests."""

from __future__ import annotations

import csv
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import date, datetime
from fnmatch import fnmatch
from pathlib import Path

from openpyxl import load_workbook

from hospital_ops.sources.spec import Entity
from hospital_ops.sources.vendor import SOURCE
from hospital_ops_sim.vendor import VendorGenerationResult

_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y%m%d")
_TIMESTAMP_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y-%m-%dT%H:%M:%S")
_CHINESE_DATE = re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})日")


# ------------------------------------------------------------------------------------ reading helpers


def parse_date(text: str) -> date:
    text = text.strip()
    match = _CHINESE_DATE.fullmatch(text)
    if match:
        return date(*(int(part) for part in match.groups()))
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"not one of the planted date formats: {text!r}")


def parse_timestamp(text: str) -> datetime:
    for fmt in _TIMESTAMP_FORMATS:
        try:
            return datetime.strptime(text.strip(), fmt)
        except ValueError:
            continue
    raise ValueError(f"not one of the planted timestamp formats: {text!r}")


def month_of(value: date | datetime) -> str:
    return f"{value:%Y-%m}"


def entity_of(path: Path) -> Entity:
    matches = [e for e in SOURCE.entities if fnmatch(path.name, e.file_pattern)]
    assert len(matches) == 1, f"{path} matches {len(matches)} entities"
    return matches[0]


def decode(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("gb18030")


def data_files(result: VendorGenerationResult) -> list[Path]:
    return sorted(p for p in (result.inbox_dir / "vendor").glob("*/*") if p.is_file())


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(decode(path).splitlines()))
    return rows[0], rows[1:]


def read_workbook(path: Path) -> tuple[list[str], list[list[object]], list[str]]:
    book = load_workbook(path, read_only=True)
    try:
        sheet_names = list(book.sheetnames)
        rows = [list(row) for row in book.worksheets[0].iter_rows(values_only=True)]
    finally:
        book.close()
    header = [str(c) for c in rows[0]]
    # spreadsheets do not store empty trailing cells: pad like the loader does
    return header, [(row + [None] * len(header))[:len(header)] for row in rows[1:]], sheet_names


class Tables:
    """Every row of every entity, as dicts with the file and folder day it came from."""

    def __init__(self, result: VendorGenerationResult) -> None:
        self.result = result
        self.rows: dict[str, list[dict]] = defaultdict(list)
        for path in data_files(result):
            entity = entity_of(path)
            day = date.fromisoformat(path.parent.name)
            if entity.file_format == "xlsx":
                header, rows, _ = read_workbook(path)
            else:
                header, rows = read_csv(path)
            for row in rows:
                record = dict(zip(header, row, strict=False))
                record["_file"] = f"vendor/{path.parent.name}/{path.name}"
                record["_day"] = day
                self.rows[entity.name].append(record)

    def of(self, entity: str, vendor_id: str | None = None) -> list[dict]:
        rows = self.rows[entity]
        return [r for r in rows if vendor_id is None or r["vendor_id"] == vendor_id]

    def unique(self, entity: str, vendor_id: str | None = None) -> list[dict]:
        """Rows without exact duplicates (what the loader's duplicate check keeps)."""
        seen: set[tuple] = set()
        kept = []
        for row in self.of(entity, vendor_id):
            key = tuple((k, v) for k, v in row.items() if not k.startswith("_"))
            if key not in seen:
                seen.add(key)
                kept.append(row)
        return kept

    def latest_export(self, entity: str) -> list[dict]:
        last = max(r["_day"] for r in self.rows[entity])
        return [r for r in self.rows[entity] if r["_day"] == last]


def well_formed(rows: Iterable[dict], *numeric: str) -> list[dict]:
    """Skip the planted malformed rows (N/A or blank where a number or time is required)."""
    return [r for r in rows if all(r[c].strip() not in ("", "N/A") for c in numeric)]


# ------------------------------------------------------------------------------------ KPIs from files


def delivery_delay(tables: Tables, vendor_id: str) -> dict[str, float]:
    late: Counter = Counter()
    total: Counter = Counter()
    for row in well_formed(tables.unique("deliveries", vendor_id), "promised_at", "delivered_at"):
        promised, delivered = parse_timestamp(row["promised_at"]), parse_timestamp(row["delivered_at"])
        total[month_of(promised)] += 1
        late[month_of(promised)] += delivered > promised
    return {m: late[m] / total[m] for m in total}


def lab_accuracy(tables: Tables, vendor_id: str) -> dict[str, float]:
    good: Counter = Counter()
    total: Counter = Counter()
    for row in well_formed(tables.unique("lab_qc_results", vendor_id), "measured_value"):
        expected, measured = float(row["expected_value"]), float(row["measured_value"])
        month = month_of(parse_timestamp(row["run_at"]))
        total[month] += 1
        good[month] += abs(measured - expected) / expected * 100 <= float(row["allowed_deviation_pct"])
    return {m: good[m] / total[m] for m in total}


def report_counts(tables: Tables, vendor_id: str) -> tuple[Counter, Counter]:
    """Reports received and reports issued on time, per month received."""
    received: Counter = Counter()
    on_time: Counter = Counter()
    for row in well_formed(tables.unique("report_turnaround", vendor_id), "promised_hours"):
        start = parse_timestamp(row["received_at"])
        month = month_of(start)
        received[month] += 1
        if row["issued_at"].strip():
            hours = (parse_timestamp(row["issued_at"]) - start).total_seconds() / 3600
            on_time[month] += hours <= float(row["promised_hours"])
    return received, on_time


def report_timeliness(tables: Tables, vendor_id: str) -> dict[str, float]:
    received, on_time = report_counts(tables, vendor_id)
    return {m: on_time[m] / received[m] for m in received}


def service_reports(tables: Tables, vendor_id: str) -> dict[str, dict]:
    """The highest revision of each month's service report."""
    latest: dict[str, dict] = {}
    for row in tables.of("service_reports", vendor_id):
        if row["period"] not in latest or row["revision"] > latest[row["period"]]["revision"]:
            latest[row["period"]] = row
    return latest


def spot_check_pass(tables: Tables, vendor_id: str) -> dict[str, float]:
    passed: Counter = Counter()
    checked: Counter = Counter()
    for row in well_formed(tables.of("inspections", vendor_id), "items_checked"):
        month = month_of(parse_date(row["inspected_on"]))
        checked[month] += int(row["items_checked"])
        passed[month] += int(row["items_passed"])
    return {m: passed[m] / checked[m] for m in checked}


def registry(tables: Tables) -> dict[str, dict]:
    return {r["vendor_id"]: r for r in tables.latest_export("registry")}
