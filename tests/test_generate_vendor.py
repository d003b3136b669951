"""The synthetic vendor source: deterministic, shaped exactly like the spec, scenarios recomputable.

Every planted scenario is checked by recomputing its KPI from the written files (never from the
generator's own bookkeeping), the way the warehouse will. No database needed. The scenario tests run
for several end dates (early in a month, the settling boundary on the 5th, late in a month, across a
year boundary): the scenarios are anchored on the last month settled by end, which the files must
show to be settled, and every scenario must be visible in the folders dated up to end.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from hospital_ops.sources.vendor import SOURCE
from hospital_ops_sim.vendor import SCENARIOS, VendorGenerationResult, generate_vendor_source
from reference_parsing import convert
from vendor_files import (
    Tables,
    data_files,
    delivery_delay,
    entity_of,
    lab_accuracy,
    month_of,
    parse_date,
    parse_timestamp,
    read_csv,
    read_workbook,
    registry,
    report_counts,
    report_timeliness,
    service_reports,
    spot_check_pass,
    well_formed,
)

END = date(2026, 11, 22)
MONTHS = 4  # full months 2026-07 .. 2026-10, start 2026-07-01
FULL_MONTHS = ("2026-07", "2026-08", "2026-09", "2026-10")

# end, months of history, the month the scenarios must be anchored on (the last settled by end)
RUNS = (
    (END, MONTHS, "2026-10"),
    (date(2026, 12, 1), 4, "2026-10"),  # November's reports not in yet
    (date(2026, 12, 2), 4, "2026-10"),
    (date(2026, 12, 3), 4, "2026-10"),  # November's reports arrive today: a correction cannot follow yet
    (date(2026, 12, 4), 4, "2026-10"),  # ... nor on end - 1 = the 3rd; pathology still due until the 5th
    (date(2026, 12, 5), 3, "2026-11"),  # the first day November is settled
    (date(2026, 12, 6), 3, "2026-11"),
    (date(2026, 12, 10), 3, "2026-11"),
    (date(2027, 1, 2), 4, "2026-11"),  # year boundary: end in January, anchor in November
    (date(2027, 1, 5), 3, "2026-12"),  # December's reports arrive and are corrected in January
    (date(2027, 2, 28), 3, "2027-01"),  # the 28th, settled months across the year boundary
)


# which KPIs each scenario is allowed to spoil; every other KPI of every vendor must look healthy
_SPOILS = {
    "delivery_delay_climb": {"delivery_delay"},
    "lab_accuracy_yellow": {"lab_accuracy"},
    "report_delay_blue": {"timeliness"},
    "three_months_below_standard": {"timeliness"},
    "volume_surge_timeliness_drop": {"timeliness"},
    "privacy_leak": {"incidents"},
    "satisfaction_low": {"satisfaction"},
}


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> VendorGenerationResult:
    return generate_vendor_source(tmp_path_factory.mktemp("inbox"), end=END, months=MONTHS)


@pytest.fixture(scope="module")
def tables(generated: VendorGenerationResult) -> Tables:
    return Tables(generated)


@pytest.fixture(scope="module")
def scenarios(generated: VendorGenerationResult) -> dict[str, dict]:
    return generated.scenarios


# ------------------------------------------------------------------------------------ shape and determinism


def test_period_folders_and_scenario_file(generated: VendorGenerationResult) -> None:
    assert generated.start == date(2026, 7, 1)
    assert generated.end == END
    vendor_dir = generated.inbox_dir / "vendor"
    folders = sorted(p.name for p in vendor_dir.iterdir() if p.is_dir())
    expected = [(generated.start + timedelta(days=i)).isoformat() for i in range((END - generated.start).days + 1)]
    assert folders == expected
    assert generated.files_written == len(data_files(generated))
    written = json.loads((vendor_dir / "_scenarios.json").read_text(encoding="utf-8"))
    assert written == json.loads(json.dumps(generated.scenarios))
    assert set(written) == {*SCENARIOS, "defects"}
    vendor_ids = [written[name]["vendor_id"] for name in SCENARIOS]
    assert len(set(vendor_ids)) == len(SCENARIOS), "every scenario has its own vendor"


def test_same_arguments_give_identical_bytes(generated: VendorGenerationResult, tmp_path: Path) -> None:
    again = generate_vendor_source(tmp_path / "again", end=END, months=MONTHS)
    first = {p.relative_to(generated.inbox_dir): p.read_bytes() for p in generated.inbox_dir.rglob("*") if p.is_file()}
    second = {p.relative_to(again.inbox_dir): p.read_bytes() for p in again.inbox_dir.rglob("*") if p.is_file()}
    assert sorted(first) == sorted(second)
    differing = [str(path) for path in first if first[path] != second[path]]
    assert not differing, f"files differ between two identical runs: {differing[:5]}"


def test_another_seed_gives_other_data(generated: VendorGenerationResult, tmp_path: Path) -> None:
    other = generate_vendor_source(tmp_path / "other", end=END, months=3, seed=7)
    path = Path("vendor/2026-08-01/staff_roster.csv")
    assert (other.inbox_dir / path).read_bytes() != (generated.inbox_dir / path).read_bytes()


def test_every_file_matches_the_spec_header(generated: VendorGenerationResult) -> None:
    for path in data_files(generated):
        entity = entity_of(path)
        expected = [c.name for c in entity.columns]
        if entity.file_format == "xlsx":
            header, rows, sheets = read_workbook(path)
            assert sheets == [entity.sheet], path
            assert header == expected, path
            assert len(rows) == 1, path
        else:
            header, rows = read_csv(path)
            assert header == expected, path
            assert rows, f"{path}: a daily file is written only when it has rows"
            assert all(len(row) == len(expected) for row in rows), path


def test_registers_and_roster_arrive_on_the_first(generated: VendorGenerationResult) -> None:
    by_day: dict[str, set[str]] = defaultdict(set)
    for path in data_files(generated):
        by_day[path.parent.name].add(path.name)
    registers = {"vendor_registry.csv", "contracts.csv", "qualifications.csv", "price_list.csv", "staff_roster.csv"}
    for day, names in by_day.items():
        if day.endswith("-01"):
            assert registers <= names, day
        else:
            assert not registers & names, day


def test_service_reports_arrive_on_the_third(tables: Tables, generated: VendorGenerationResult) -> None:
    first_revisions = [r for r in tables.of("service_reports") if r["revision"] == 1]
    vendors = {r["vendor_id"] for r in registry(tables).values()}
    assert {(r["vendor_id"], r["period"]) for r in first_revisions} == {(v, m) for v in vendors for m in FULL_MONTHS}
    for row in first_revisions:
        period = date.fromisoformat(row["period"] + "-01")
        arrives = (period + timedelta(days=32)).replace(day=3)
        assert row["_day"] == arrives
        assert row["_file"].endswith(f"service_report_{row['vendor_id']}_{row['period']}.xlsx")
        if row["patients_surveyed"] is not None:
            assert 0 <= row["patients_satisfied"] <= row["patients_surveyed"]


def test_values_parse_except_the_planted_defects(tables: Tables, scenarios: dict[str, dict]) -> None:
    """Each value goes through the loader's own converter; only the recorded malformed rows fail."""
    defects = scenarios["defects"]
    failing: set[tuple[str, str]] = set()
    total = 0
    for entity in SOURCE.entities:
        for row in tables.of(entity.name):
            total += 1
            for column in entity.columns:
                try:
                    convert(column, row[column.name], b"test-key")
                except ValueError:
                    failing.add((row["_file"], str(row[entity.columns[0].name])))
    planted = {(d["file"], d["id"]) for d in defects["malformed_rows"]}
    planted.add((defects["sensor_fault"]["file"], defects["sensor_fault"]["device_id"]))
    assert failing == planted
    known = set(registry(tables))
    unknown = [(entity.name, row) for entity in SOURCE.entities for row in tables.of(entity.name)
               if row["vendor_id"] not in known]
    assert {(row["_file"], row[SOURCE.entity(name).columns[0].name]) for name, row in unknown} == {
        (d["file"], d["id"]) for d in defects["unknown_vendor_rows"]}
    assert all(row["vendor_id"] == "V999" for _, row in unknown)
    assert (len(failing) + len(unknown)) / total < 0.001


def test_dates_and_timestamps_use_the_planted_formats(tables: Tables) -> None:
    seen: Counter = Counter()
    rows = rows_with_other_formats = 0
    for entity in SOURCE.entities:
        if entity.file_format == "xlsx":
            continue
        columns = [c.name for c in entity.columns if c.type in ("date", "timestamp")]
        for row in tables.of(entity.name):
            rows += 1
            rows_with_other_formats += any(
                row[c].strip() and not re.fullmatch(r"\d{4}-\d{2}-\d{2}( \d{2}:\d{2}:\d{2})?", row[c])
                for c in columns)
        for column in entity.columns:
            if column.type not in ("date", "timestamp"):
                continue
            for row in tables.of(entity.name):
                text = row[column.name].strip()
                if not text:
                    continue
                if column.type == "date":
                    parse_date(text)
                    seen["chinese" if "年" in text else "slash" if "/" in text else
                         "compact" if text.isdigit() else "iso"] += 1
                else:
                    parse_timestamp(text)
                    seen["t" if "T" in text else "slash_ts" if "/" in text else "iso_ts"] += 1
    assert set(seen) == {"chinese", "slash", "compact", "iso", "t", "slash_ts", "iso_ts"}
    assert seen["iso_ts"] > 0.9 * (seen["iso_ts"] + seen["t"] + seen["slash_ts"])
    assert rows_with_other_formats / rows < 0.01


def test_gbk_file_is_the_only_non_utf8_file(generated: VendorGenerationResult, scenarios: dict[str, dict]) -> None:
    gbk = generated.inbox_dir / scenarios["defects"]["gbk_file"]["file"]
    data = gbk.read_bytes()
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    text = data.decode("gb18030")
    assert "医学检验所有限公司" in text
    for path in data_files(generated):
        if path.suffix == ".csv" and path != gbk:
            path.read_bytes().decode("utf-8")


def test_planted_defects_are_present(generated: VendorGenerationResult, scenarios: dict[str, dict]) -> None:
    defects = scenarios["defects"]
    for duplicate in defects["duplicate_rows"]:
        lines = (generated.inbox_dir / duplicate["file"]).read_text(encoding="utf-8").splitlines()
        copies = Counter(line for line in lines if line.startswith(duplicate["id"] + ","))
        assert max(copies.values()) >= 2, duplicate
    fault = defects["sensor_fault"]
    _, rows = read_csv(generated.inbox_dir / fault["file"])
    assert [fault["device_id"], "999"] in [[r[0], r[3]] for r in rows]
    undelivered = defects["blank_values"]["undelivered_item"]
    _, rows = read_csv(generated.inbox_dir / undelivered["file"])
    assert [r[5] for r in rows if r[0] == undelivered["id"]] == [""]
    spaced = defects["blank_values"]["space_only_phones"]
    _, rows = read_csv(generated.inbox_dir / spaced["file"])
    assert {r[0] for r in rows if r[4] and not r[4].strip()} == set(spaced["ids"])


def test_staff_roster_pii_shapes_and_leavers_kept(tables: Tables) -> None:
    rows = tables.of("staff_roster")
    assert rows
    for row in rows:
        assert row["staff_name"].strip()
        assert re.fullmatch(r"\d{17}[\dX]", row["national_id"]), row
        assert not row["phone"].strip() or re.fullmatch(r"1[3-9]\d{9}", row["phone"]), row
        assert row["certified"] in ("Y", "N")
        assert 0 <= float(row["training_hours_ytd"]) <= 2000
    exports = sorted({r["_day"] for r in rows})
    for earlier, later in pairwise(exports):
        left_before = {r["staff_id"] for r in rows if r["_day"] == earlier and r["left_on"]}
        assert left_before <= {r["staff_id"] for r in rows if r["_day"] == later}
    assert any(r["left_on"] for r in rows), "some staff left during the period"


def test_contracts_follow_risk_tiers_and_cover_the_period(tables: Tables, generated: VendorGenerationResult) -> None:
    tiers = {"pathology_diagnosis": "high", "surgical_assistance": "high", "cleaning": "low", "landscaping": "low"}
    for vendor in registry(tables).values():
        assert vendor["risk_tier"] == tiers.get(vendor["service_type"], "medium")
        assert re.fullmatch(r"91\d{6}[0-9A-HJ-NPQRTUWXY]{10}", vendor["unified_credit_code"])
    for contract in tables.latest_export("contracts"):
        assert parse_date(contract["start_date"]) <= generated.start
        assert parse_date(contract["end_date"]) >= END
        lab = contract["service_type"] in ("lab_testing", "pathology_diagnosis")
        assert (contract["sla_lab_accuracy_min"] == "0.98") == lab


def test_too_few_vendors_or_months_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="vendors"):
        generate_vendor_source(tmp_path, end=END, vendors=11)
    with pytest.raises(ValueError, match="months"):
        generate_vendor_source(tmp_path, end=END, months=2)
    for end in (date(2026, 12, 1), date(2026, 12, 4)):  # anchor 2026-10: 2026-09 .. 2026-11 are not enough
        with pytest.raises(ValueError, match=r"months must be at least 4 .* 2026-10 .* got 3"):
            generate_vendor_source(tmp_path, end=end, months=3)
    assert not (tmp_path / "vendor").exists()


def test_default_run_stays_within_budget(tmp_path: Path) -> None:
    result = generate_vendor_source(tmp_path, end=END)
    assert result.start == date(2026, 5, 1)
    rows = 0
    for path in data_files(result):
        rows += 1 if path.suffix == ".xlsx" else len(read_csv(path)[1])
    assert rows == result.rows_written
    assert rows <= 250_000


# ------------------------------------------------------------------------------------ scenarios


@dataclass(frozen=True)
class Run:
    """One generation for one end date, with the months the scenarios are judged on."""

    end: date
    result: VendorGenerationResult
    tables: Tables
    full: tuple[str, ...]  # the full months before end's month
    settled: tuple[str, ...]  # the full months up to the anchor (the expected last settled month)

    @property
    def scenarios(self) -> dict[str, dict]:
        return self.result.scenarios

    @property
    def anchor(self) -> str:
        return self.settled[-1]


@pytest.fixture(scope="module", params=RUNS, ids=[end.isoformat() for end, _, _ in RUNS])
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Run:
    end, months, anchor = request.param
    if (end, months) == (END, MONTHS):  # the module's main generation: no need to write it twice
        result, tables = request.getfixturevalue("generated"), request.getfixturevalue("tables")
    else:
        result = generate_vendor_source(tmp_path_factory.mktemp(f"inbox-{end}"), end=end, months=months)
        tables = Tables(result)
    first = result.start.year * 12 + result.start.month - 1
    full = tuple(f"{(first + i) // 12}-{(first + i) % 12 + 1:02d}" for i in range(months))
    assert full[-1] == month_of(end.replace(day=1) - timedelta(days=1)), "months keeps its meaning"
    assert anchor in full
    return Run(end, result, tables, full, full[:full.index(anchor) + 1])


def _latest_due(run: Run) -> dict[str, datetime]:
    """Per month received, the latest moment a report received in it is due (received + promised hours)."""
    latest: dict[str, datetime] = {}
    for row in well_formed(run.tables.of("report_turnaround"), "promised_hours"):
        received = parse_timestamp(row["received_at"])
        due = received + timedelta(hours=float(row["promised_hours"]))
        latest[month_of(received)] = max(due, latest.get(month_of(received), due))
    return latest


def _settled(run: Run, month: str, latest_due: dict[str, datetime]) -> bool:
    """Whether the files dated up to end hold `month` complete: every vendor's report for it arrived
    before end - 1 (so a correction re-sent on end - 1 follows it) and every report received in it
    was due by the end of end's day."""
    vendors = set(registry(run.tables))
    arrived = {r["vendor_id"] for r in run.tables.of("service_reports")
               if r["period"] == month and r["revision"] == 1 and r["_day"] < run.end - timedelta(days=1)}
    return arrived == vendors and latest_due[month] < datetime.combine(run.end + timedelta(days=1), time())


def test_scenarios_anchor_on_the_last_settled_month(run: Run) -> None:
    folders = sorted(date.fromisoformat(p.name) for p in (run.result.inbox_dir / "vendor").iterdir() if p.is_dir())
    assert folders[-1] == run.end, "every file is dated up to end, the last folder is end's"
    latest_due = _latest_due(run)
    assert all(_settled(run, month, latest_due) for month in run.settled)
    later = run.full[len(run.settled):]  # at most one full month, still settling
    assert len(later) <= 1
    assert not any(_settled(run, month, latest_due) for month in later)
    # deliveries are due the day they are promised: none of a settled month is open but the planted blank
    undelivered = run.scenarios["defects"]["blank_values"]["undelivered_item"]["id"]
    assert not [r["delivery_id"] for r in run.tables.of("deliveries") if not r["delivered_at"].strip()
                and r["promised_at"].strip() and month_of(parse_timestamp(r["promised_at"])) in run.settled
                and r["delivery_id"] != undelivered]
    for name in SCENARIOS:
        if "month" in run.scenarios[name]:
            assert run.scenarios[name]["month"] == run.anchor, name


def test_delivery_delay_climbs(run: Run) -> None:
    facts = run.scenarios["delivery_delay_climb"]
    rates = delivery_delay(run.tables, facts["vendor_id"])
    series = [rates[m] for m in run.settled]
    assert series[0] < 0.10
    assert series[-1] >= 0.15
    assert all(later > earlier for earlier, later in pairwise(series))
    assert facts["months"] == list(run.settled)
    assert (facts["first_month"], facts["last_month"]) == (run.settled[0], run.anchor)
    assert facts["delay_rates"] == {m: round(rates[m], 4) for m in run.settled}
    assert all(rates[m] >= 0.15 for m in run.full[len(run.settled):]), "the climb does not fall back"


def test_lab_accuracy_two_yellow_months(run: Run) -> None:
    facts = run.scenarios["lab_accuracy_yellow"]
    accuracy = lab_accuracy(run.tables, facts["vendor_id"])
    assert facts["months"] == list(run.settled[-2:])
    for month in run.settled[-2:]:
        assert 0.95 <= accuracy[month] <= 0.97, (month, accuracy[month])
        assert facts["accuracy"][month] == round(accuracy[month], 4)
    for month in run.settled[:-2]:
        assert accuracy[month] >= 0.985
        assert facts["accuracy_before"][month] == round(accuracy[month], 4)
    assert registry(run.tables)[facts["vendor_id"]]["service_type"] == "lab_testing"


def test_report_delay_blue(run: Run) -> None:
    facts = run.scenarios["report_delay_blue"]
    timeliness = report_timeliness(run.tables, facts["vendor_id"])
    assert 0.10 <= 1 - timeliness[run.anchor] <= 0.20
    assert facts["delay_rate"] == round(1 - timeliness[run.anchor], 4)
    assert all(1 - timeliness[m] < 0.05 for m in run.settled[:-1])
    assert facts["delay_rate_before"] == {m: round(1 - timeliness[m], 4) for m in run.settled[:-1]}
    assert registry(run.tables)[facts["vendor_id"]]["service_type"] == "imaging"


def test_privacy_leak_incident(run: Run) -> None:
    facts = run.scenarios["privacy_leak"]
    incidents = run.tables.of("incidents")
    assert [(r["vendor_id"], r["incident_type"], r["incident_id"], r["_file"]) for r in incidents] == [
        (facts["vendor_id"], "privacy_leak", facts["incident_id"], facts["file"])]
    assert month_of(parse_date(incidents[0]["occurred_on"])) == facts["month"] == run.anchor
    assert registry(run.tables)[facts["vendor_id"]]["service_type"] in ("patient_guide", "it_services")


def test_three_months_below_standard(run: Run) -> None:
    facts = run.scenarios["three_months_below_standard"]
    timeliness = report_timeliness(run.tables, facts["vendor_id"])
    accuracy = lab_accuracy(run.tables, facts["vendor_id"])
    assert facts["months"] == list(run.settled[-3:])
    for month in run.settled[-3:]:
        assert 0.90 <= timeliness[month] <= 0.94, (month, timeliness[month])
        assert facts["timeliness"][month] == round(timeliness[month], 4)
        assert accuracy[month] >= 0.98
    assert registry(run.tables)[facts["vendor_id"]]["service_type"] in ("lab_testing", "pathology_diagnosis")


def test_cold_chain_excursion(run: Run) -> None:
    facts = run.scenarios["cold_chain_excursion"]
    fault = run.scenarios["defects"]["sensor_fault"]
    outside = [r for r in run.tables.of("cold_chain_readings")
               if not 2 <= float(r["temperature_c"]) <= 8 and r["temperature_c"] != fault["temperature_c"]]
    assert {r["device_id"] for r in outside} == {facts["device_id"]}
    assert {r["vendor_id"] for r in outside} == {facts["vendor_id"]}
    times = sorted(parse_timestamp(r["reading_at"]) for r in outside)
    assert {t.date().isoformat() for t in times} == {facts["date"]}
    assert month_of(times[0]) == facts["month"] == run.anchor
    assert timedelta(minutes=75) <= times[-1] - times[0] <= timedelta(minutes=105)
    assert all(9 <= float(r["temperature_c"]) <= 12 for r in outside)
    devices = {r["device_id"] for r in run.tables.of("cold_chain_readings", facts["vendor_id"])}
    assert len(devices) == 2


def test_certificate_expiring(run: Run) -> None:
    facts = run.scenarios["certificate_expiring"]
    certificates = {r["certificate_no"]: r for r in run.tables.latest_export("qualifications")}
    certificate = certificates[facts["certificate_no"]]
    assert certificate["vendor_id"] == facts["vendor_id"]
    expires = parse_date(certificate["expires_on"])
    assert expires.isoformat() == facts["expires_on"]
    assert 10 <= (expires - run.end).days == facts["days_after_end"] <= 30
    others = [c for no, c in certificates.items() if no != facts["certificate_no"]]
    assert all((parse_date(c["expires_on"]) - run.end).days > 90 for c in others)


def test_price_above_reference(run: Run) -> None:
    facts = run.scenarios["price_above_reference"]
    prices = run.tables.latest_export("price_list")
    in_force: dict[tuple[str, str], dict] = {}
    for row in sorted(prices, key=lambda r: parse_date(r["effective_from"])):
        in_force[(row["vendor_id"], row["item_code"])] = row
    ct = in_force[(facts["vendor_id"], facts["item_code"])]
    deviation = float(ct["unit_price_cny"]) / float(ct["reference_price_cny"]) - 1
    assert 0.25 <= deviation <= 0.35
    assert float(ct["unit_price_cny"]) == facts["unit_price_cny"]
    assert float(ct["reference_price_cny"]) == facts["reference_price_cny"]
    assert parse_date(ct["effective_from"]).isoformat() == facts["effective_from"]
    assert registry(run.tables)[facts["vendor_id"]]["service_type"] == "imaging"
    others = [r for key, r in in_force.items() if key != (facts["vendor_id"], facts["item_code"])]
    assert all(float(r["unit_price_cny"]) / float(r["reference_price_cny"]) - 1 < 0.10 for r in others)


def test_volume_surge_while_timeliness_drops(run: Run) -> None:
    facts = run.scenarios["volume_surge_timeliness_drop"]
    vendor_id = facts["vendor_id"]
    received, on_time = report_counts(run.tables, vendor_id)
    month, previous = run.anchor, run.settled[-2]
    assert (facts["month"], facts["previous_month"]) == (month, previous)
    assert received[month] >= 1.5 * received[previous]
    assert on_time[month] / received[month] < 0.95
    assert on_time[previous] / received[previous] >= 0.95
    assert facts["timeliness"] == round(on_time[month] / received[month], 4)
    assert facts["previous_timeliness"] == round(on_time[previous] / received[previous], 4)
    reports = service_reports(run.tables, vendor_id)
    assert reports[month]["service_volume"] == received[month] == facts["service_volume"]
    assert reports[previous]["service_volume"] == received[previous] == facts["previous_service_volume"]
    assert registry(run.tables)[vendor_id]["service_type"] in ("lab_testing", "pathology_diagnosis")


def test_satisfaction_low(run: Run) -> None:
    facts = run.scenarios["satisfaction_low"]
    report = service_reports(run.tables, facts["vendor_id"])[run.anchor]
    assert facts["month"] == run.anchor
    assert report["_file"] == facts["file"]
    assert report["_day"].isoformat() == facts["arrives_on"]
    assert (report["patients_surveyed"], report["patients_satisfied"]) == (
        facts["patients_surveyed"], facts["patients_satisfied"])
    assert 0.72 <= report["patients_satisfied"] / report["patients_surveyed"] <= 0.78
    assert registry(run.tables)[facts["vendor_id"]]["service_type"] == "patient_guide"


def test_related_party_declared(run: Run) -> None:
    facts = run.scenarios["related_party"]
    vendor_id = facts["vendor_id"]
    latest = registry(run.tables)
    assert latest[vendor_id]["related_party_declared"] == "Y"
    assert [v for v, r in latest.items() if r["related_party_declared"] == "Y"] == [vendor_id]
    exports = run.tables.of("registry", vendor_id)
    assert [r["related_party_declared"] for r in exports if r["_day"] == min(r["_day"] for r in exports)] == ["N"]
    assert min(r["_day"] for r in exports if r["related_party_declared"] == "Y").isoformat() == facts["declared_from"]


def test_corrected_report(run: Run) -> None:
    facts = run.scenarios["corrected_report"]
    assert facts["month"] == run.anchor
    rows = {r["revision"]: r for r in run.tables.of("service_reports", facts["vendor_id"])
            if r["period"] == run.anchor}
    assert set(rows) == {1, 2}
    assert rows[2]["_day"] == run.end - timedelta(days=1), "an incremental night on end - 1 sees it"
    assert rows[1]["_day"] < rows[2]["_day"], "the correction follows the original"
    for revision in (1, 2):
        recorded = facts[f"revision_{revision}"]
        assert rows[revision]["_file"] == recorded["file"]
        assert rows[revision]["service_volume"] == recorded["service_volume"]
        assert rows[revision]["complaints_received"] == recorded["complaints_received"]
    assert rows[1]["service_volume"] != rows[2]["service_volume"]
    assert rows[1]["complaints_received"] != rows[2]["complaints_received"]


def test_every_kpi_no_scenario_spoils_is_healthy(run: Run) -> None:
    scenarios, tables = run.scenarios, run.tables
    scenario_of = {scenarios[name]["vendor_id"]: name for name in SCENARIOS}
    incident_vendors = {r["vendor_id"] for r in tables.of("incidents")}
    for vendor_id in registry(tables):
        spoiled = _SPOILS.get(scenario_of.get(vendor_id, ""), set())
        checks = {
            "lab_accuracy": (lab_accuracy(tables, vendor_id), lambda v: v >= 0.985),
            "timeliness": (report_timeliness(tables, vendor_id), lambda v: v >= 0.96),
            "delivery_delay": (delivery_delay(tables, vendor_id), lambda v: v <= 0.05),
            "spot_check": (spot_check_pass(tables, vendor_id), lambda v: v >= 0.90),
            "satisfaction": ({m: r["patients_satisfied"] / r["patients_surveyed"]
                              for m, r in service_reports(tables, vendor_id).items() if r["patients_surveyed"]},
                             lambda v: v >= 0.85),
        }
        for kpi, (by_month, healthy) in checks.items():
            if kpi in spoiled:
                continue
            for month in run.settled:
                if month in by_month:
                    assert healthy(by_month[month]), (vendor_id, kpi, month, by_month[month])
        if "incidents" not in spoiled:
            assert vendor_id not in incident_vendors
