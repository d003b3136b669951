"""Synthetic third-party-vendor source data 第三方服务商 for the drop-folder inbox.

`generate_vendor_source` writes what a medical consortium (医联体) receives from and about its outsourced
service vendors, one folder per business day, exactly in the file formats of
`hospital_ops.sources.vendor.SOURCE`:

    <inbox>/vendor/<YYYY-MM-DD>/vendor_registry.csv, contracts.csv, ...   (registers: on the 1st)
    <inbox>/vendor/<YYYY-MM-DD>/lab_qc_results.csv, deliveries.csv, ...   (daily logs, when not empty)
    <inbox>/vendor/<YYYY-MM-DD>/staff_roster.csv                          (on the 1st)
    <inbox>/vendor/<YYYY-MM-DD>/service_report_<vendor_id>_<YYYY-MM>.xlsx  (on the 3rd, previous month)
    <inbox>/vendor/_scenarios.json                                        (what was planted, for humans/tests)

Every calendar day is a business day (hospitals and their vendors work every day). A daily log row
lands in the folder of the day its event completed (a report on the day it was issued, a delivery on
the day it was delivered); what is still open on the last day lands there with its completion blank.

Month-based scenarios are anchored on the *last settled month*: the last month whose service reports
(and a correction of them) have arrived by `end` and whose reports and deliveries are all due by
`end`. Reports for month M arrive on the 3rd of M+1, the correction is re-sent on `end - 1` and must
come after the original, and a pathology report opened in the last minute of M is due 120 h later,
on the 5th of M+1. So the anchor is the month before end's month when end is on or after the 5th,
and the month before that when end is on the 1st-4th (end 2026-12-04 → anchor 2026-10; end
2026-12-05 → anchor 2026-11). The history up to the anchor carries the trends (the delivery-delay
climb, the two yellow months, the three months below standard); a full month after the anchor, which
is still settling, and end's partial month continue the anchor's behaviour, so the newest data never
contradicts a scenario. The anchor month's report of one vendor is re-sent corrected (revision 2) in
the folder of `end - 1`, after the original, where an incremental night picks it up. `months` keeps
its meaning (history starts on the 1st of the month `months` months before end's month), so when end
is on the 1st-4th one more month is needed to hold three settled months (see
`generate_vendor_source`).

Twelve scenarios are planted, each on its own vendor (see `SCENARIOS`), on top of healthy behaviour
(lab accuracy ~99.3%, timeliness ~98%, delivery delay ~3%, satisfaction ~92%, spot checks ~97%), and a
few real-world defects (duplicated lines, blanks and spaces for nulls, a GB18030 file, mixed date
formats, a sensor fault, unknown vendor ids, malformed rows), all recorded under `defects`. Monthly
rates are planted exactly (k late out of n per vendor-month), so a scenario's magnitude can be
recomputed from the files. Same arguments give byte-identical files: every random draw comes from a
`random.Random` seeded from `seed` and a purpose, never from the wall clock.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from fnmatch import fnmatch
from pathlib import Path

from hospital_ops.sources.vendor import SOURCE
from hospital_ops_sim import SCENARIO_FILE, prepare_source_dir
from hospital_ops_sim.vendor.catalogue import (
    _ANNUAL_VALUE,
    _AREA_CODES,
    _CERT_YEARS,
    _CERTIFICATES,
    _CITIES,
    _EXTRA_TYPES,
    _FILE_NAMES,
    _GIVEN,
    _HEADCOUNT,
    _HEALTHY_DELIVERY_LATE,
    _HEALTHY_QC_FAIL,
    _HEALTHY_REPORT_LATE,
    _HEALTHY_SATISFACTION,
    _HEALTHY_SPOT_FAIL,
    _ID_WEIGHTS,
    _ITEM_CATEGORIES,
    _LAB_ANALYTES,
    _LAB_TYPES,
    _MIXED_DATE_SHARE,
    _MIXED_TIMESTAMP_SHARE,
    _MOBILE_PREFIXES,
    _MONTHLY_VOLUME,
    _NAME_PREFIXES,
    _NAME_SUFFIX,
    _ORG_WEIGHTS,
    _PATHOLOGY_ANALYTES,
    _PATIENT_FACING,
    _PRICE_ITEMS,
    _PROMISES,
    _REPORT_DAY,
    _REPORT_TYPES,
    _RISK_TIER,
    _ROLES,
    _SCENARIO_VENDORS,
    _SETTLED_DAY,
    _SURNAMES,
    _USCC_ALPHABET,
    _USCC_WEIGHTS,
    MAX_VENDORS,
    MIN_MONTHS,
    MIN_VENDORS,
    SCENARIOS,
    UNKNOWN_VENDOR_ID,
)
from hospital_ops_sim.vendor.files import _write_csv, _write_workbook

log = logging.getLogger(__name__)

@dataclass
class VendorGenerationResult:
    inbox_dir: Path
    start: date
    end: date
    files_written: int
    scenarios: dict[str, dict]  # scenario name -> {"vendor_id": ..., facts to find it}; plus "defects"
    rows_written: int = 0


# ------------------------------------------------------------------------------------ calendar


def _add_months(day: date, months: int) -> date:
    """First day of the month `months` months after `day`'s month."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _month_label(month: date) -> str:
    return month.strftime("%Y-%m")


def _settled_month(end: date) -> date:
    """The last month complete in the data that has arrived by `end`: the scenarios' anchor month.

    That is the month before end's month when end is on or after the 5th (`_SETTLED_DAY`), else the
    month before that: on the 1st-4th the previous month's service reports have not arrived yet (1st,
    2nd), or a correction re-sent on end - 1 could not come after them (3rd, 4th), and pathology
    reports opened at its end are not all due yet (up to 120 h, i.e. until the 5th).
    """
    return _add_months(end, -1 if end.day >= _SETTLED_DAY else -2)


@dataclass(frozen=True)
class _Period:
    start: date
    end: date
    full_months: tuple[date, ...]  # complete months before end's month, oldest first
    anchor: date  # the last settled month (see `_settled_month`): month-based scenarios are planted on it

    @classmethod
    def ending(cls, end: date, months: int) -> _Period:
        start = _add_months(end, -months)
        return cls(start, end, tuple(_add_months(start, i) for i in range(months)), _settled_month(end))

    @property
    def settled_months(self) -> tuple[date, ...]:
        """The full months up to and including the anchor, oldest first: the scenarios' history."""
        return tuple(month for month in self.full_months if month <= self.anchor)

    @property
    def months(self) -> tuple[date, ...]:
        """Every month with activity: the full months and end's (partial) month."""
        return (*self.full_months, self.end.replace(day=1))

    def days(self, month: date | None = None) -> list[date]:
        first = month or self.start
        last = self.end if month is None else min(self.end, _add_months(month, 1) - timedelta(days=1))
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]


# ------------------------------------------------------------------------------------ fake identities


def _rng(seed: int, *purpose: object) -> random.Random:
    """An independent, reproducible stream per purpose (str seeds hash with SHA-512, not PYTHONHASHSEED)."""
    return random.Random("|".join(str(part) for part in (seed, *purpose)))


def _person_name(rng: random.Random) -> str:
    given = "".join(rng.choice(_GIVEN) for _ in range(rng.choice((1, 2, 2))))
    return rng.choice(_SURNAMES) + given


def _mobile(rng: random.Random) -> str:
    return rng.choice(_MOBILE_PREFIXES) + f"{rng.randrange(10 ** 8):08d}"


def _national_id(rng: random.Random, birth: date) -> str:
    """18-character PRC resident ID shape: area, birth date, sequence, ISO 7064 MOD 11-2 check."""
    body = f"{rng.choice(_AREA_CODES)}{birth:%Y%m%d}{rng.randrange(1000):03d}"
    total = sum(int(digit) * weight for digit, weight in zip(body, _ID_WEIGHTS, strict=False))
    return body + "10X98765432"[total % 11]


def _credit_code(rng: random.Random) -> str:
    """Unified social credit code 统一社会信用代码 (GB 32100): 91 + area + organisation code + check."""
    if rng.random() < 0.6:
        org = "MA" + str(rng.randrange(1, 10)) + "".join(rng.choice(_USCC_ALPHABET[:31]) for _ in range(5))
    else:
        org = f"{rng.randrange(10 ** 8):08d}"
    total = sum(_char_value(char) * weight for char, weight in zip(org, _ORG_WEIGHTS, strict=False))
    org += {10: "X", 11: "0"}.get(11 - total % 11, str(11 - total % 11))
    body = "91" + rng.choice(_AREA_CODES) + org
    total = sum(_USCC_ALPHABET.index(char) * weight for char, weight in zip(body, _USCC_WEIGHTS, strict=False))
    return body + _USCC_ALPHABET[(31 - total % 31) % 31]


def _char_value(char: str) -> int:
    return int(char) if char.isdigit() else ord(char) - ord("A") + 10


# ------------------------------------------------------------------------------------ formats and buffers


class _Formats:
    """Dates and timestamps mostly ISO, now and then as another export tool writes them.

    When a value is to look different, the alternative styles take turns, so each one shows up.
    """

    def __init__(self, rng: random.Random, date_share: float, timestamp_share: float) -> None:
        self._rng = rng
        self._date_share = date_share
        self._timestamp_share = timestamp_share
        self._turn = 0

    def _next_style(self) -> int:
        self._turn += 1
        return self._turn

    def date(self, value: date) -> str:
        if self._rng.random() >= self._date_share:
            return value.isoformat()
        style = self._next_style() % 3
        if style == 0:
            return f"{value:%Y/%m/%d}"
        if style == 1:
            return f"{value:%Y%m%d}"
        return f"{value.year}年{value.month}月{value.day}日"

    def timestamp(self, value: datetime) -> str:
        if self._rng.random() >= self._timestamp_share:
            return value.isoformat(sep=" ")  # no microseconds are ever generated: YYYY-MM-DD HH:MM:SS
        if self._next_style() % 2:
            return f"{value:%Y/%m/%d %H:%M}"  # every generated timestamp is on a whole minute: lossless
        return f"{value:%Y-%m-%dT%H:%M:%S}"


@dataclass
class _Drop:
    """Rows per (drop-folder day, entity), sorted at the end by the key each row came with."""

    pending: dict[tuple[date, str], list[tuple[tuple, list[str]]]] = field(
        default_factory=lambda: defaultdict(list))

    def add(self, day: date, entity: str, row: list[str], key: tuple = ()) -> None:
        self.pending[(day, entity)].append((key, row))

    def files(self) -> dict[tuple[date, str], list[list[str]]]:
        return {slot: [row for _, row in sorted(rows, key=lambda item: item[0])]
                for slot, rows in sorted(self.pending.items())}


@dataclass(frozen=True)
class _Workbook:
    day: date
    vendor_id: str
    period: date
    values: tuple[object, ...]


@dataclass(frozen=True)
class _Vendor:
    vendor_id: str
    name: str
    service_type: str
    scenario: str | None
    hospitals: tuple[str, ...]
    credit_code: str
    contact_person: str
    contact_phone: str
    admitted_on: date
    contract_start: date

    @property
    def risk_tier(self) -> str:
        return _RISK_TIER.get(self.service_type, "medium")


@dataclass
class _Context:
    seed: int
    period: _Period
    vendors: tuple[_Vendor, ...]
    fmt: _Formats
    drop: _Drop = field(default_factory=_Drop)
    workbooks: list[_Workbook] = field(default_factory=list)
    encodings: dict[tuple[date, str], str] = field(default_factory=dict)
    scenarios: dict[str, dict] = field(default_factory=dict)
    volumes: dict[tuple[str, date], int] = field(default_factory=dict)  # log-based monthly service volume
    report_timeliness: dict[tuple[str, date], float] = field(default_factory=dict)

    def rng(self, *purpose: object) -> random.Random:
        return _rng(self.seed, *purpose)

    def vendor(self, scenario: str) -> _Vendor:
        return next(v for v in self.vendors if v.scenario == scenario)

    def of_types(self, types: Sequence[str]) -> list[_Vendor]:
        return [v for v in self.vendors if v.service_type in types]


def _relative(day: date, filename: str) -> str:
    return f"{SOURCE.name}/{day.isoformat()}/{filename}"


# ------------------------------------------------------------------------------------ vendors


def _plan_vendors(seed: int, count: int, hospitals: int, period: _Period) -> tuple[_Vendor, ...]:
    hospital_ids = tuple(f"H{i:02d}" for i in range(1, hospitals + 1))
    vendors = []
    for index, (service_type, scenario) in enumerate(planned_vendors(count).values(), start=1):
        name = (_SCENARIO_VENDORS[scenario][1] if scenario
                else _extra_vendor_name(index - len(SCENARIOS) - 1) + _NAME_SUFFIX[service_type])
        rng = _rng(seed, "vendor", index)
        admitted_on = period.start - timedelta(days=rng.randint(400, 2000))
        served = tuple(sorted(rng.sample(hospital_ids, rng.randint(1, min(3, len(hospital_ids))))))
        vendors.append(_Vendor(
            vendor_id=f"V{index:03d}", name=name, service_type=service_type, scenario=scenario,
            hospitals=served, credit_code=_credit_code(rng), contact_person=_person_name(rng),
            contact_phone=_mobile(rng), admitted_on=admitted_on,
            contract_start=admitted_on + timedelta(days=rng.randint(15, 90)),
        ))
    return tuple(vendors)


def planned_vendors(vendors: int) -> dict[str, tuple[str, str | None]]:
    """vendor_id → (service type, planted scenario or None) for `vendors` vendors, as
    `generate_vendor_source` plans them (ids and types do not depend on the seed). Other sources'
    generators use it to refer to the same vendors (e.g. the survey's vendor-served questionnaires)."""
    plan = {f"V{index:03d}": (_SCENARIO_VENDORS[name][0], name) for index, name in enumerate(SCENARIOS, start=1)}
    for extra in range(vendors - len(SCENARIOS)):
        plan[f"V{len(SCENARIOS) + extra + 1:03d}"] = (_EXTRA_TYPES[extra % len(_EXTRA_TYPES)], None)
    return plan


PATIENT_FACING_SERVICE_TYPES = _PATIENT_FACING  # services whose patients are surveyed 服务对象满意度


def _extra_vendor_name(index: int) -> str:
    prefix = _NAME_PREFIXES[index % len(_NAME_PREFIXES)]
    lap = index // len(_NAME_PREFIXES)
    if lap == 0:
        return prefix
    city = _CITIES[(lap - 1) % len(_CITIES)]
    return f"{city}{prefix}" + (str(lap) if lap > len(_CITIES) else "")


# ------------------------------------------------------------------------------------ registers


def _registers(ctx: _Context) -> None:
    """Full exports of the four registers on the first day and on the 1st of every month."""
    related = ctx.vendor("related_party")
    declared_from = ctx.period.months[2]  # declared at a mid-period annual re-review
    registry = {v.vendor_id: _registry_row(ctx, v) for v in ctx.vendors}
    contracts = [row for v in ctx.vendors for row in _contract_rows(ctx, v)]
    qualifications = [row for v in ctx.vendors for row in _qualification_rows(ctx, v)]
    prices = [price for v in ctx.vendors for price in _price_rows(ctx, v)]
    for export_day in ctx.period.months:
        for vendor_id, row in registry.items():
            flag = row[-1]
            if vendor_id == related.vendor_id:
                flag = "Y" if export_day >= declared_from else "N"
            ctx.drop.add(export_day, "registry", [*row[:-1], flag])
        for row in contracts:
            ctx.drop.add(export_day, "contracts", list(row))
        for row in qualifications:
            ctx.drop.add(export_day, "qualifications", list(row))
        for effective_from, row in prices:
            if effective_from <= export_day:
                ctx.drop.add(export_day, "price_list", list(row))
    gbk_day = ctx.period.months[1]
    ctx.encodings[(gbk_day, "registry")] = "gb18030"
    ctx.scenarios["related_party"] = {
        "vendor_id": related.vendor_id,
        "declared_from": declared_from.isoformat(),
        "note": "related_party_declared is N in earlier registry exports and Y from declared_from on",
    }


def _registry_row(ctx: _Context, vendor: _Vendor) -> list[str]:
    # the privacy-leak vendor never filled in the declaration: a blank optional bool
    related = "" if vendor.scenario == "privacy_leak" else "N"
    return [vendor.vendor_id, vendor.name, vendor.service_type, vendor.risk_tier, vendor.credit_code,
            vendor.contact_person, vendor.contact_phone, ctx.fmt.date(vendor.admitted_on), related]


def _contract_rows(ctx: _Context, vendor: _Vendor) -> list[list[str]]:
    rng = ctx.rng("contracts", vendor.vendor_id)
    end_date = date(ctx.period.end.year + rng.randint(1, 3), 12, 31)
    reports = vendor.service_type in _REPORT_TYPES
    rows = []
    for hospital_id in vendor.hospitals:
        start_date = vendor.contract_start + timedelta(days=rng.randint(0, 60))
        rows.append([
            f"HT{start_date:%Y}-{vendor.vendor_id}-{hospital_id}", vendor.vendor_id, hospital_id,
            vendor.service_type, ctx.fmt.date(start_date), ctx.fmt.date(end_date),
            "0.98" if vendor.service_type in _LAB_TYPES else "",
            "0.95" if reports else "",
            "0.95" if vendor.service_type == "logistics_delivery" else "",
            f"{_ANNUAL_VALUE[vendor.service_type] * rng.uniform(0.6, 1.4) / len(vendor.hospitals):.2f}",
        ])
    return rows


def _qualification_rows(ctx: _Context, vendor: _Vendor) -> list[list[str]]:
    rng = ctx.rng("qualifications", vendor.vendor_id)
    rows = []
    for certificate_type in ("business_licence", *_CERTIFICATES.get(vendor.service_type, ())):
        years = _CERT_YEARS[certificate_type]
        expires_on = ctx.period.end + timedelta(days=rng.randint(150, 1200))
        if vendor.scenario == "certificate_expiring" and certificate_type == "medical_institution_licence":
            expires_on = ctx.period.end + timedelta(days=rng.randint(10, 30))
        issued_on = min(_years_before(expires_on, years) + timedelta(days=1), ctx.period.start - timedelta(days=30))
        number = _certificate_no(rng, vendor, certificate_type, issued_on)
        rows.append([number, vendor.vendor_id, certificate_type, ctx.fmt.date(issued_on), ctx.fmt.date(expires_on)])
        if vendor.scenario == "certificate_expiring" and certificate_type == "medical_institution_licence":
            ctx.scenarios["certificate_expiring"] = {
                "vendor_id": vendor.vendor_id, "certificate_no": number, "certificate_type": certificate_type,
                "expires_on": expires_on.isoformat(), "days_after_end": (expires_on - ctx.period.end).days,
            }
    return rows


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def _certificate_no(rng: random.Random, vendor: _Vendor, certificate_type: str, issued_on: date) -> str:
    if certificate_type == "business_licence":
        return vendor.credit_code
    if certificate_type == "iso15189":
        return f"CNAS MT{rng.randrange(1, 2000):04d}"
    if certificate_type == "gsp":
        return f"沪-GSP-{issued_on:%Y}-{rng.randrange(10 ** 5):05d}"
    if certificate_type == "mlps_level3":
        return f"31011543{rng.randrange(1000):03d}-{issued_on:%y}{rng.randrange(1000):03d}"
    return f"PDY{rng.randrange(10 ** 5):05d}{vendor.credit_code[2:8]}{issued_on:%y}D{rng.randrange(10 ** 4):04d}"


def _price_rows(ctx: _Context, vendor: _Vendor) -> list[tuple[date, list[str]]]:
    """(effective_from, row) per contracted price; the CT scenario's price rises mid-period."""
    rng = ctx.rng("prices", vendor.vendor_id)
    rows = []
    for item_code, item_name, reference in _PRICE_ITEMS[vendor.service_type]:
        unit = round(reference * rng.uniform(0.90, 1.05), 2)
        rows.append((vendor.contract_start, [vendor.vendor_id, item_code, item_name, f"{unit:.2f}",
                                             f"{reference:.2f}", ctx.fmt.date(vendor.contract_start)]))
        if vendor.scenario == "price_above_reference" and item_code == "CT-001":
            raised_from = ctx.period.months[1]
            raised = round(reference * 1.30, 2)
            rows.append((raised_from, [vendor.vendor_id, item_code, item_name, f"{raised:.2f}", f"{reference:.2f}",
                                       ctx.fmt.date(raised_from)]))
            ctx.scenarios["price_above_reference"] = {
                "vendor_id": vendor.vendor_id, "item_code": item_code, "item_name": item_name,
                "unit_price_cny": raised, "reference_price_cny": reference,
                "deviation": round(raised / reference - 1, 4), "effective_from": raised_from.isoformat(),
                "previous_unit_price_cny": unit,
            }
    return rows


# ------------------------------------------------------------------------------------ planted rates


def _late_share(ctx: _Context, vendor: _Vendor, metric: str, month: date) -> float:
    """The exact share of bad events (QC out of tolerance, late report, late delivery) in a month."""
    period = ctx.period
    scenario = vendor.scenario
    jitter = ctx.rng("jitter", vendor.vendor_id, metric, month).uniform(-0.003, 0.003)
    healthy = {"qc_fail": _HEALTHY_QC_FAIL, "report_late": _HEALTHY_REPORT_LATE,
               "delivery_late": _HEALTHY_DELIVERY_LATE}[metric] + jitter
    settled = period.settled_months
    if metric == "delivery_late" and scenario == "delivery_delay_climb":
        if month in settled:  # 5% in the first full month, 20% in the anchor month, linear between
            return 0.05 + 0.15 * settled.index(month) / (len(settled) - 1)
        return 0.20
    if metric == "qc_fail" and scenario == "lab_accuracy_yellow":
        return 0.04 if month >= settled[-2] else 0.01
    if metric == "report_late" and scenario == "report_delay_blue":
        return 0.15 if month >= period.anchor else 0.02
    if metric == "report_late" and scenario == "three_months_below_standard":
        return 0.08 if month >= settled[-3] else 0.03
    if metric == "report_late" and scenario == "volume_surge_timeliness_drop":
        return 0.08 if month >= period.anchor else 0.02
    return healthy


def _daily_counts(rng: random.Random, days: Sequence[date], per_day: float, weekend: float) -> list[int]:
    return [max(1, round(per_day * (weekend if day.weekday() >= 5 else 1.0) * rng.uniform(0.88, 1.12)))
            for day in days]


def _rescale(rng: random.Random, counts: list[int], target: int) -> list[int]:
    """Daily counts with the same shape summing exactly to target."""
    total = sum(counts)
    scaled = [max(1, round(count * target / total)) for count in counts]
    diff = target - sum(scaled)
    while diff:
        index = rng.randrange(len(scaled))
        step = 1 if diff > 0 else -1
        if scaled[index] + step >= 1:
            scaled[index] += step
            diff -= step
    return scaled


def _bad_indices(rng: random.Random, total: int, share: float) -> set[int]:
    return set(rng.sample(range(total), round(total * share)))


def _at(day: date, minute: int) -> datetime:
    return datetime(day.year, day.month, day.day) + timedelta(minutes=minute)


# ------------------------------------------------------------------------------------ daily logs


def _lab_qc(ctx: _Context) -> None:
    """~20 QC runs a day per lab and pathology vendor, an exact share out of tolerance per month."""
    for vendor in ctx.of_types(_LAB_TYPES):
        rng = ctx.rng("lab_qc", vendor.vendor_id)
        analytes = _LAB_ANALYTES if vendor.service_type == "lab_testing" else _PATHOLOGY_ANALYTES
        accuracy: dict[str, float] = {}
        for month in ctx.period.months:
            days = ctx.period.days(month)
            counts = [20 + rng.randint(-2, 2) for _ in days]
            bad = _bad_indices(rng, sum(counts), _late_share(ctx, vendor, "qc_fail", month))
            accuracy[_month_label(month)] = round(1 - len(bad) / sum(counts), 4)
            index = 0
            for day, count in zip(days, counts, strict=False):
                minutes = sorted(rng.randrange(6 * 60, 22 * 60) for _ in range(count))
                for seq, minute in enumerate(minutes, start=1):
                    name, levels, allowed = rng.choice(analytes)
                    expected = rng.choice(levels)
                    if index in bad:
                        deviation = rng.uniform(1.2, 2.0) * allowed * rng.choice((-1, 1))
                    else:
                        deviation = rng.uniform(-0.75, 0.75) * allowed
                    measured = expected * (1 + deviation / 100)
                    run_at = _at(day, minute)
                    ctx.drop.add(day, "lab_qc_results", [
                        f"QC-{vendor.vendor_id}-{day:%Y%m%d}-{seq:03d}", vendor.vendor_id, ctx.fmt.timestamp(run_at),
                        name, f"{expected:g}", f"{measured:.2f}", f"{allowed:g}",
                    ], (run_at, vendor.vendor_id))
                    index += 1
        if vendor.scenario == "lab_accuracy_yellow":
            settled = ctx.period.settled_months
            months = [_month_label(m) for m in settled[-2:]]
            ctx.scenarios["lab_accuracy_yellow"] = {
                "vendor_id": vendor.vendor_id, "months": months,
                "accuracy": {m: accuracy[m] for m in months},
                "accuracy_before": {_month_label(m): accuracy[_month_label(m)] for m in settled[:-2]},
            }


def _turnaround(ctx: _Context) -> None:
    """~30-40 reports a day per lab, pathology and imaging vendor; each lands where it was issued."""
    for vendor in ctx.of_types(_REPORT_TYPES):
        rng = ctx.rng("turnaround", vendor.vendor_id)
        per_day = rng.uniform(30, 40)
        surge = vendor.scenario == "volume_surge_timeliness_drop"
        for month in ctx.period.months:
            days = ctx.period.days(month)
            surging = surge and month >= ctx.period.anchor
            counts = _daily_counts(rng, days, per_day * (1.65 if surging else 1.0), weekend=0.7)
            if surging and month == ctx.period.anchor:
                previous = ctx.volumes[(vendor.vendor_id, _add_months(month, -1))]
                counts = _rescale(rng, counts, round(previous * 1.65))
            late = _bad_indices(rng, sum(counts), _late_share(ctx, vendor, "report_late", month))
            ctx.volumes[(vendor.vendor_id, month)] = sum(counts)
            ctx.report_timeliness[(vendor.vendor_id, month)] = round(1 - len(late) / sum(counts), 4)
            index = 0
            for day, count in zip(days, counts, strict=False):
                for seq in range(1, count + 1):
                    _report_row(ctx, rng, vendor, day, seq, index in late)
                    index += 1
    _report_scenarios(ctx)


def _report_row(ctx: _Context, rng: random.Random, vendor: _Vendor, day: date, seq: int, late: bool) -> None:
    hour_band = rng.random()
    start, stop = (7 * 60, 12 * 60) if hour_band < 0.7 else (12 * 60, 18 * 60) if hour_band < 0.95 else (18 * 60, 1440)
    received = _at(day, rng.randrange(start, stop))
    options = _PROMISES[vendor.service_type]
    promised = rng.choices([hours for hours, _ in options], weights=[w for _, w in options])[0]
    if late:
        minutes = promised * 60 + max(10, round(promised * 60 * rng.uniform(0.05, 0.8)))
    else:
        minutes = max(1, math.floor(promised * 60 * rng.uniform(0.35, 0.95)))
    issued = received + timedelta(minutes=minutes)
    open_at_end = issued.date() > ctx.period.end
    folder = ctx.period.end if open_at_end else issued.date()
    report_id = f"RPT-{vendor.vendor_id}-{day:%Y%m%d}-{seq:04d}"
    ctx.drop.add(folder, "report_turnaround", [
        report_id, vendor.vendor_id, ctx.fmt.timestamp(received), "" if open_at_end else ctx.fmt.timestamp(issued),
        str(promised),
    ], (issued, report_id))


def _report_scenarios(ctx: _Context) -> None:
    period = ctx.period
    settled = period.settled_months

    def timeliness(vendor: _Vendor, months: Sequence[date]) -> dict[str, float]:
        return {_month_label(m): ctx.report_timeliness[(vendor.vendor_id, m)] for m in months}

    blue = ctx.vendor("report_delay_blue")
    ctx.scenarios["report_delay_blue"] = {
        "vendor_id": blue.vendor_id, "month": _month_label(period.anchor),
        "delay_rate": round(1 - ctx.report_timeliness[(blue.vendor_id, period.anchor)], 4),
        "delay_rate_before": {m: round(1 - t, 4) for m, t in timeliness(blue, settled[:-1]).items()},
    }
    below = ctx.vendor("three_months_below_standard")
    ctx.scenarios["three_months_below_standard"] = {
        "vendor_id": below.vendor_id, "months": [_month_label(m) for m in settled[-3:]],
        "timeliness": timeliness(below, settled[-3:]),
    }
    surge = ctx.vendor("volume_surge_timeliness_drop")
    previous, month = settled[-2], period.anchor
    ctx.scenarios["volume_surge_timeliness_drop"] = {
        "vendor_id": surge.vendor_id, "month": _month_label(month), "previous_month": _month_label(previous),
        "service_volume": ctx.volumes[(surge.vendor_id, month)],
        "previous_service_volume": ctx.volumes[(surge.vendor_id, previous)],
        "growth": round(ctx.volumes[(surge.vendor_id, month)] / ctx.volumes[(surge.vendor_id, previous)] - 1, 4),
        "timeliness": ctx.report_timeliness[(surge.vendor_id, month)],
        "previous_timeliness": ctx.report_timeliness[(surge.vendor_id, previous)],
    }


def _deliveries(ctx: _Context) -> None:
    """~20-30 deliveries a day per logistics vendor; each lands on the day it was delivered."""
    for vendor in ctx.of_types(("logistics_delivery",)):
        rng = ctx.rng("deliveries", vendor.vendor_id)
        per_day = rng.uniform(20, 30)
        delay: dict[str, float] = {}
        for month in ctx.period.months:
            days = ctx.period.days(month)
            counts = _daily_counts(rng, days, per_day, weekend=0.6)
            late = _bad_indices(rng, sum(counts), _late_share(ctx, vendor, "delivery_late", month))
            ctx.volumes[(vendor.vendor_id, month)] = sum(counts)
            delay[_month_label(month)] = round(len(late) / sum(counts), 4)
            index = 0
            for day, count in zip(days, counts, strict=False):
                for seq in range(1, count + 1):
                    _delivery_row(ctx, rng, vendor, day, seq, index in late)
                    index += 1
        if vendor.scenario == "delivery_delay_climb":
            months = [_month_label(m) for m in ctx.period.settled_months]
            ctx.scenarios["delivery_delay_climb"] = {
                "vendor_id": vendor.vendor_id, "months": months, "delay_rates": {m: delay[m] for m in months},
                "first_month": months[0], "last_month": months[-1],
            }


def _delivery_row(ctx: _Context, rng: random.Random, vendor: _Vendor, day: date, seq: int, late: bool) -> None:
    promised = _at(day, rng.randrange(7 * 60, 21 * 60) // 5 * 5)
    delivered = promised + timedelta(minutes=rng.randint(10, 240)) if late else promised - timedelta(minutes=rng.randint(0, 45))
    open_at_end = delivered.date() > ctx.period.end
    folder = ctx.period.end if open_at_end else delivered.date()
    delivery_id = f"DLV-{vendor.vendor_id}-{day:%Y%m%d}-{seq:03d}"
    ctx.drop.add(folder, "deliveries", [
        delivery_id, vendor.vendor_id, rng.choice(vendor.hospitals), rng.choice(_ITEM_CATEGORIES),
        ctx.fmt.timestamp(promised), "" if open_at_end else ctx.fmt.timestamp(delivered),
    ], (delivered, delivery_id))


def _cold_chain(ctx: _Context) -> None:
    """Two loggers per logistics vendor, a reading every 15 minutes, 2-8 °C but for one excursion."""
    excursion_vendor = ctx.vendor("cold_chain_excursion")
    plan_rng = ctx.rng("cold_chain", "excursion")
    excursion_day = ctx.period.anchor + timedelta(days=plan_rng.randint(4, 24))
    excursion_slot = plan_rng.randint(40, 64)  # 10:00 .. 16:00
    excursion_temps = [round(t + plan_rng.uniform(-0.2, 0.2), 1) for t in (9.4, 10.5, 11.3, 11.8, 11.2, 10.2, 9.3)]
    excursion_device = f"TL-{excursion_vendor.vendor_id}-01"
    daily_wave = [0.6 * math.sin(2 * math.pi * (slot - 32) / 96) for slot in range(96)]
    for vendor in ctx.of_types(("logistics_delivery",)):
        for number in (1, 2):
            device_id = f"TL-{vendor.vendor_id}-{number:02d}"
            rng = ctx.rng("cold_chain", device_id)
            mean = rng.uniform(4.2, 5.5)
            for day in ctx.period.days():
                for slot in range(96):
                    temperature = min(7.7, max(2.3, mean + daily_wave[slot] + rng.gauss(0, 0.25)))
                    offset = slot - excursion_slot
                    if device_id == excursion_device and day == excursion_day and 0 <= offset < len(excursion_temps):
                        temperature = excursion_temps[offset]
                    reading_at = _at(day, slot * 15)
                    ctx.drop.add(day, "cold_chain_readings", [
                        device_id, vendor.vendor_id, ctx.fmt.timestamp(reading_at), f"{temperature:.1f}",
                    ], (device_id, reading_at))
    first = _at(excursion_day, excursion_slot * 15)
    ctx.scenarios["cold_chain_excursion"] = {
        "vendor_id": excursion_vendor.vendor_id, "device_id": excursion_device, "date": excursion_day.isoformat(),
        "month": _month_label(excursion_day), "started_at": first.isoformat(sep=" "),
        "ended_at": (first + timedelta(minutes=15 * (len(excursion_temps) - 1))).isoformat(sep=" "),
        "readings": len(excursion_temps), "max_temperature_c": max(excursion_temps),
    }


def _inspections(ctx: _Context) -> None:
    """A few spot checks and patrols per vendor per month, ~97% of the month's items passed."""
    for vendor in ctx.vendors:
        rng = ctx.rng("inspections", vendor.vendor_id)
        for month in ctx.period.months:
            weekdays = [day for day in ctx.period.days(month) if day.weekday() < 5]
            chosen = sorted(rng.sample(weekdays, min(len(weekdays), rng.randint(2, 4))))
            kinds = [rng.choice(("spot_check", "patrol")) for _ in chosen]
            checked = [rng.randint(12, 30) if kind == "spot_check" else rng.randint(8, 16) for kind in kinds]
            failed_items = _bad_indices(rng, sum(checked), _HEALTHY_SPOT_FAIL + rng.uniform(-0.01, 0.01))
            first_item = 0
            for number, (day, kind, items) in enumerate(zip(chosen, kinds, checked, strict=False), start=1):
                failed = sum(first_item <= item < first_item + items for item in failed_items)
                first_item += items
                inspection_id = f"INS-{day:%Y%m%d}-{vendor.vendor_id}-{number}"
                ctx.drop.add(day, "inspections", [
                    inspection_id, vendor.vendor_id, ctx.fmt.date(day), kind, str(items), str(items - failed),
                ], (inspection_id,))


def _incidents(ctx: _Context) -> None:
    """One privacy leak 隐私泄露 in the anchor month, reported the next day; no other incidents."""
    vendor = ctx.vendor("privacy_leak")
    rng = ctx.rng("incidents")
    occurred_on = ctx.period.anchor + timedelta(days=rng.randint(7, 21))
    reported_on = min(occurred_on + timedelta(days=1), ctx.period.end)
    incident_id = f"INC-{occurred_on:%Y%m%d}-001"
    ctx.drop.add(reported_on, "incidents", [
        incident_id, vendor.vendor_id, ctx.fmt.date(occurred_on), "privacy_leak",
        "驻场运维人员违规导出门诊患者信息约1,200条并经个人网盘外传，已上报信息安全管理部门",
    ])
    ctx.scenarios["privacy_leak"] = {
        "vendor_id": vendor.vendor_id, "incident_id": incident_id, "occurred_on": occurred_on.isoformat(),
        "month": _month_label(occurred_on), "file": _relative(reported_on, _FILE_NAMES["incidents"]),
    }


# ------------------------------------------------------------------------------------ staff roster


@dataclass
class _Staff:
    staff_id: str
    name: str
    national_id: str
    phone: str
    role: str
    certified: bool
    hours_per_month: float
    joined_on: date
    left_on: date | None = None

    def hours_ytd(self, as_of_month: date) -> float:
        """Training hours from January (or joining) to the end of as_of_month (or leaving)."""
        stop = _add_months(as_of_month, 1)
        if self.left_on is not None:
            stop = min(stop, self.left_on)
        begin = max(date(as_of_month.year, 1, 1), self.joined_on)
        if stop <= begin:
            return 0.0
        return round(self.hours_per_month * (stop - begin).days / 30.44 * 2) / 2


def _new_staff(rng: random.Random, vendor: _Vendor, number: int, joined_on: date, role: str | None = None) -> _Staff:
    birth = date(rng.randint(1968, 2003), rng.randint(1, 12), rng.randint(1, 28))
    slow = rng.random() < 0.1
    return _Staff(
        staff_id=f"{vendor.vendor_id}-S{number:04d}", name=_person_name(rng), national_id=_national_id(rng, birth),
        phone=_mobile(rng), role=role or rng.choice(_ROLES[vendor.service_type]),
        certified=role is not None or rng.random() < 0.9,
        hours_per_month=rng.uniform(1.5, 3.0) if slow else rng.uniform(3.8, 5.5), joined_on=joined_on,
    )


def _staff_roster(ctx: _Context) -> None:
    """Monthly full roster on the 1st describing the end of the month before, leavers kept."""
    exports = ctx.period.months  # the 1st of every month from start to end's month
    for vendor in ctx.vendors:
        rng = ctx.rng("staff", vendor.vendor_id)
        hired_until = ctx.period.start - timedelta(days=45)
        span = max(1, (hired_until - vendor.admitted_on).days)
        staff = [_new_staff(rng, vendor, 1, vendor.admitted_on + timedelta(days=rng.randrange(30)), "项目经理")]
        staff += [_new_staff(rng, vendor, n, vendor.admitted_on + timedelta(days=rng.randrange(span)))
                  for n in range(2, _HEADCOUNT[vendor.service_type] + 1)]
        for export_day in exports:
            as_of = _add_months(export_day, -1)
            _simulate_turnover(rng, vendor, staff, as_of)
            for person in staff:
                if person.joined_on < export_day:
                    ctx.drop.add(export_day, "staff_roster", _staff_row(ctx, person, vendor, as_of),
                                 (person.staff_id,))


def _simulate_turnover(rng: random.Random, vendor: _Vendor, staff: list[_Staff], month: date) -> None:
    """About 1.5% of active staff leave during `month`; each is replaced by a joiner in that month."""
    days = (_add_months(month, 1) - month).days
    active = [p for p in staff if p.left_on is None and p.joined_on < month and p.role != "项目经理"]
    leavers = [p for p in active if rng.random() < 0.015]
    for person in leavers:
        person.left_on = month + timedelta(days=rng.randrange(days))
        joined = month + timedelta(days=rng.randrange(days))
        staff.append(_new_staff(rng, vendor, len(staff) + 1, joined))


def _staff_row(ctx: _Context, person: _Staff, vendor: _Vendor, as_of: date) -> list[str]:
    left = person.left_on if person.left_on and person.left_on < _add_months(as_of, 1) else None
    return [
        person.staff_id, vendor.vendor_id, person.name, person.national_id, person.phone, person.role,
        "Y" if person.certified else "N", f"{person.hours_ytd(as_of):.1f}", ctx.fmt.date(person.joined_on),
        ctx.fmt.date(left) if left else "",
    ]


# ------------------------------------------------------------------------------------ service reports


def _service_reports(ctx: _Context) -> None:
    """One workbook per vendor per full month, arriving on the 3rd of the next month (when by end)."""
    low = ctx.vendor("satisfaction_low")
    anchor = ctx.period.anchor
    for vendor in ctx.vendors:
        rng = ctx.rng("service_report", vendor.vendor_id)
        for month in ctx.period.full_months:
            arrives = _add_months(month, 1).replace(day=_REPORT_DAY)
            volume = ctx.volumes.get((vendor.vendor_id, month)) or _synthetic_volume(rng, vendor, month)
            complaints = rng.randint(0, 3)
            surveyed = satisfied = None
            if vendor.service_type in _PATIENT_FACING:
                surveyed = rng.randint(180, 320)
                rate = _HEALTHY_SATISFACTION + rng.uniform(-0.02, 0.02)
                if vendor is low:
                    # low from the anchor month on (a full month still settling stays low too)
                    rate = 0.75 if month >= anchor else 0.89 + rng.uniform(-0.01, 0.01)
                    complaints = rng.randint(9, 14) if month >= anchor else rng.randint(2, 5)
                satisfied = min(surveyed, round(surveyed * rate))
            if vendor is low and month == anchor:
                ctx.scenarios["satisfaction_low"] = {
                    "vendor_id": vendor.vendor_id, "month": _month_label(month), "patients_surveyed": surveyed,
                    "patients_satisfied": satisfied, "satisfaction": round(satisfied / surveyed, 4),
                    "file": _relative(arrives, _workbook_name(vendor.vendor_id, month)),
                    "arrives_on": arrives.isoformat(),  # on or before end: the anchor month is settled
                }
            if arrives > ctx.period.end:
                continue
            # some vendors type the submission date as text rather than an Excel date
            submitted: object = f"{arrives.year}年{arrives.month}月{arrives.day}日" if int(
                vendor.vendor_id[1:]) % 5 == 3 else arrives
            ctx.workbooks.append(_Workbook(arrives, vendor.vendor_id, month, (
                vendor.vendor_id, _month_label(month), 1, submitted, volume, complaints, surveyed, satisfied)))
    _corrected_report(ctx)


def _synthetic_volume(rng: random.Random, vendor: _Vendor, month: date) -> int:
    days = (_add_months(month, 1) - month).days
    return round(_MONTHLY_VOLUME[vendor.service_type] * days / 30 * rng.uniform(0.95, 1.05))


def _workbook_name(vendor_id: str, month: date) -> str:
    return f"service_report_{vendor_id}_{_month_label(month)}.xlsx"


def _corrected_report(ctx: _Context) -> None:
    """The anchor month's report re-sent with revision 2 on end - 1, the night before the end.

    The anchor rule guarantees the original (the 3rd of the month after the anchor) arrived at least a
    day before, so an incremental night run on end - 1 sees the correction after the original.
    """
    vendor = ctx.vendor("corrected_report")
    resent_on = ctx.period.end - timedelta(days=1)
    original = next(w for w in ctx.workbooks if w.vendor_id == vendor.vendor_id and w.period == ctx.period.anchor)
    if not original.day < resent_on:  # pragma: no cover - guaranteed by _settled_month
        raise RuntimeError(f"the correction on {resent_on} would not follow the original of {original.day}")
    values = list(original.values)
    volume, complaints = int(values[4]), int(values[5])
    values[2], values[3] = 2, resent_on
    values[4], values[5] = volume - max(1, round(volume * 0.04)), complaints + 2
    ctx.workbooks.append(_Workbook(resent_on, vendor.vendor_id, original.period, tuple(values)))
    name = _workbook_name(vendor.vendor_id, original.period)
    ctx.scenarios["corrected_report"] = {
        "vendor_id": vendor.vendor_id, "month": _month_label(original.period),
        "revision_1": {"file": _relative(original.day, name), "service_volume": volume,
                       "complaints_received": complaints},
        "revision_2": {"file": _relative(resent_on, name), "service_volume": values[4],
                       "complaints_received": values[5]},
    }


# ------------------------------------------------------------------------------------ defects


@dataclass
class _Defects:
    """Plants the real-world defects into the sorted files, on rows no scenario depends on."""

    ctx: _Context
    files: dict[tuple[date, str], list[list[str]]]
    rng: random.Random
    record: dict[str, object] = field(default_factory=dict)

    def columns(self, entity: str) -> list[str]:
        return [c.name for c in SOURCE.entity(entity).columns]

    def pick(self, entity: str, vendor_id: str, used: set[date]) -> tuple[date, list[list[str]], list[int]]:
        """A file of `entity` in a full month, not yet used, holding rows of `vendor_id`."""
        full_days = [d for (d, e) in self.files
                     if e == entity and self.ctx.period.start < d < self.ctx.period.end.replace(day=1) and d not in used]
        position = self.columns(entity).index("vendor_id")
        for day in self.rng.sample(full_days, len(full_days)):
            rows = self.files[(day, entity)]
            hits = [i for i, row in enumerate(rows) if row[position] == vendor_id]
            if hits:
                used.add(day)
                return day, rows, hits
        raise RuntimeError(f"no {entity} file holds rows of {vendor_id}")  # pragma: no cover

    def where(self, day: date, entity: str) -> str:
        return _relative(day, _FILE_NAMES[entity])

    def plant(self) -> dict[str, object]:
        hosts = {  # per entity, a vendor whose scenario does not read that entity
            "deliveries": self.ctx.vendor("cold_chain_excursion").vendor_id,
            "lab_qc_results": self.ctx.vendor("volume_surge_timeliness_drop").vendor_id,
            "report_turnaround": self.ctx.vendor("price_above_reference").vendor_id,
            "cold_chain_readings": self.ctx.vendor("delivery_delay_climb").vendor_id,
            "inspections": self.ctx.vendor("related_party").vendor_id,
            "staff_roster": self.ctx.vendor("certificate_expiring").vendor_id,
        }
        used: dict[str, set[date]] = defaultdict(set)
        self.duplicates(hosts, used)
        self.unknown_vendors(hosts, used)
        self.malformed(hosts, used)
        self.sensor_fault(hosts, used)
        self.blanks(hosts, used)
        gbk_day = next(day for (day, entity), enc in self.ctx.encodings.items() if entity == "registry")
        self.record["gbk_file"] = {"file": self.where(gbk_day, "registry"), "encoding": "gb18030"}
        self.record["mixed_date_formats"] = {
            "share_of_date_values": _MIXED_DATE_SHARE,
            "share_of_timestamp_values": _MIXED_TIMESTAMP_SHARE,
            "date_formats": ["2026-05-03", "2026/05/03", "20260503", "2026年5月3日"],
            "timestamp_formats": ["2026-05-03 14:05:00", "2026/05/03 14:05", "2026-05-03T14:05:00"],
            "service_report_text_dates": sorted({w.vendor_id for w in self.ctx.workbooks
                                                 if isinstance(w.values[3], str)}),
        }
        return self.record

    def duplicates(self, hosts: dict[str, str], used: dict[str, set[date]]) -> None:
        found = []
        for entity, copies in (("deliveries", 2), ("lab_qc_results", 1), ("report_turnaround", 2)):
            day, rows, hits = self.pick(entity, hosts[entity], used[entity])
            for index in sorted(self.rng.sample(hits, copies), reverse=True):
                rows.insert(index + 1, list(rows[index]))
                found.append({"file": self.where(day, entity), "id": rows[index][0]})
        self.record["duplicate_rows"] = sorted(found, key=lambda item: (item["file"], item["id"]))

    def unknown_vendors(self, hosts: dict[str, str], used: dict[str, set[date]]) -> None:
        found = []
        for entity, copies in (("deliveries", 2), ("report_turnaround", 1), ("lab_qc_results", 1)):
            day, rows, hits = self.pick(entity, hosts[entity], used[entity])
            for number, index in enumerate(sorted(self.rng.sample(hits, copies)), start=1):
                row = list(rows[index])
                row[0] = re.sub(r"V\d{3}", UNKNOWN_VENDOR_ID, row[0]) + f"-X{number}"
                row[1] = UNKNOWN_VENDOR_ID
                rows.append(row)
                found.append({"file": self.where(day, entity), "id": row[0]})
        self.record["unknown_vendor_rows"] = found

    def malformed(self, hosts: dict[str, str], used: dict[str, set[date]]) -> None:
        found = []
        for entity, column, value in (("lab_qc_results", "measured_value", "N/A"),
                                      ("report_turnaround", "promised_hours", "N/A"),
                                      ("deliveries", "promised_at", ""),
                                      ("inspections", "items_checked", "")):
            day, rows, hits = self.pick(entity, hosts[entity], used[entity])
            row = rows[self.rng.choice(hits)]
            row[self.columns(entity).index(column)] = value
            found.append({"file": self.where(day, entity), "id": row[0], "column": column, "value": value})
        self.record["malformed_rows"] = found

    def sensor_fault(self, hosts: dict[str, str], used: dict[str, set[date]]) -> None:
        day, rows, hits = self.pick("cold_chain_readings", hosts["cold_chain_readings"], used["cold_chain_readings"])
        row = rows[self.rng.choice(hits)]
        columns = self.columns("cold_chain_readings")
        row[columns.index("temperature_c")] = "999"
        self.record["sensor_fault"] = {"file": self.where(day, "cold_chain_readings"), "device_id": row[0],
                                       "reading_at": row[columns.index("reading_at")], "temperature_c": "999"}

    def blanks(self, hosts: dict[str, str], used: dict[str, set[date]]) -> None:
        day, rows, hits = self.pick("deliveries", hosts["deliveries"], used["deliveries"])
        undelivered = rows[self.rng.choice(hits)]
        undelivered[self.columns("deliveries").index("delivered_at")] = ""
        day_roster, roster, staff_hits = self.pick("staff_roster", hosts["staff_roster"], used["staff_roster"])
        spaced = [roster[i] for i in sorted(self.rng.sample(staff_hits, 3))]
        for row in spaced:
            row[self.columns("staff_roster").index("phone")] = "   "
        self.record["blank_values"] = {
            "undelivered_item": {"file": self.where(day, "deliveries"), "id": undelivered[0], "column": "delivered_at"},
            "space_only_phones": {"file": self.where(day_roster, "staff_roster"), "ids": [r[0] for r in spaced]},
            "blank_related_party_declared": self.ctx.vendor("privacy_leak").vendor_id,
            "open_at_end": "reports and deliveries still open on the last day have issued_at/delivered_at blank",
            "optional_columns": "SLA columns blank where not relevant; left_on blank for active staff; "
                                "patients_surveyed/satisfied empty cells for non patient-facing vendors",
        }


# ------------------------------------------------------------------------------------ writing


def _write_all(ctx: _Context, files: dict[tuple[date, str], list[list[str]]], vendor_dir: Path) -> tuple[int, int]:
    written = rows = 0
    for (day, entity_name), entity_rows in files.items():
        if not entity_rows:
            continue
        folder = vendor_dir / day.isoformat()
        folder.mkdir(exist_ok=True)
        entity = SOURCE.entity(entity_name)
        _write_csv(folder / _FILE_NAMES[entity_name], entity, entity_rows,
                   ctx.encodings.get((day, entity_name), "utf-8"))
        written += 1
        rows += len(entity_rows)
    reports = SOURCE.entity("service_reports")
    for book in ctx.workbooks:
        folder = vendor_dir / book.day.isoformat()
        folder.mkdir(exist_ok=True)
        _write_workbook(folder / _workbook_name(book.vendor_id, book.period), reports, book.values, book.day)
        written += 1
        rows += 1
    for day in ctx.period.days():  # one folder per business day, even a quiet one
        (vendor_dir / day.isoformat()).mkdir(exist_ok=True)
    return written, rows


def _check_file_names() -> None:
    for entity_name, filename in _FILE_NAMES.items():
        pattern = SOURCE.entity(entity_name).file_pattern
        if not fnmatch(filename, pattern):  # pragma: no cover - guards against a spec change
            raise RuntimeError(f"{filename} does not match the spec pattern {pattern} of {entity_name}")


# ------------------------------------------------------------------------------------ public API


def generate_vendor_source(inbox_dir: Path, *, end: date, months: int = 6, vendors: int = 14,
                           hospitals: int = 3, seed: int = 20261123) -> VendorGenerationResult:
    """Write `months` full months plus end's month of vendor source data into `<inbox_dir>/vendor/`.

    Start is the first day of the month `months` months before end's month (end 2026-11-22 and
    months 6 → start 2026-05-01). Scenarios are planted on the last settled month (see the module
    docstring). Raises ValueError when there are too few vendors to give every scenario its own
    (< 12), too few months for three settled months up to the anchor (< 3, or < 4 when end is on the
    1st-4th of its month) or no hospital.
    """
    if vendors < MIN_VENDORS:
        raise ValueError(f"vendors must be at least {MIN_VENDORS} (one per planted scenario), got {vendors}")
    if vendors > MAX_VENDORS:
        raise ValueError(f"vendors must be at most {MAX_VENDORS} ({UNKNOWN_VENDOR_ID} is the unknown id)")
    if months < MIN_MONTHS:
        raise ValueError(f"months must be at least {MIN_MONTHS} (three consecutive full months), got {months}")
    period = _Period.ending(end, months)
    if len(period.settled_months) < MIN_MONTHS:
        needed = months + MIN_MONTHS - len(period.settled_months)
        raise ValueError(
            f"months must be at least {needed} for end {end}: the last month settled by then is "
            f"{_month_label(period.anchor)} (a month's service reports arrive on day {_REPORT_DAY} of the next "
            f"month and its reports are all due by day {_SETTLED_DAY}), and the three-month scenario needs "
            f"{MIN_MONTHS} full months up to it; got {months}")
    if not 1 <= hospitals <= 99:
        raise ValueError(f"hospitals must be between 1 and 99, got {hospitals}")
    _check_file_names()
    began = time.perf_counter()
    inbox_dir = Path(inbox_dir)
    ctx = _Context(seed=seed, period=period, vendors=_plan_vendors(seed, vendors, hospitals, period),
                   fmt=_Formats(_rng(seed, "formats"), _MIXED_DATE_SHARE, _MIXED_TIMESTAMP_SHARE))
    _registers(ctx)
    _lab_qc(ctx)
    _turnaround(ctx)
    _deliveries(ctx)
    _cold_chain(ctx)
    _inspections(ctx)
    _incidents(ctx)
    _staff_roster(ctx)
    _service_reports(ctx)
    files = ctx.drop.files()
    ctx.scenarios["defects"] = _Defects(ctx, files, ctx.rng("defects")).plant()

    vendor_dir = inbox_dir / SOURCE.name
    prepare_source_dir(vendor_dir)
    written, rows = _write_all(ctx, files, vendor_dir)
    scenarios = {name: ctx.scenarios[name] for name in (*SCENARIOS, "defects")}
    (vendor_dir / SCENARIO_FILE).write_text(
        json.dumps(scenarios, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    log.info("vendor source %s..%s: %d vendors, %d files, %d rows into %s in %.1fs", period.start, end, vendors,
             written, rows, vendor_dir, time.perf_counter() - began)
    return VendorGenerationResult(inbox_dir=inbox_dir, start=period.start, end=end, files_written=written,
                                  scenarios=scenarios, rows_written=rows)
