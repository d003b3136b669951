"""Synthetic referral-platform exports 合作渠道转诊 for the drop-folder inbox, built on the simulated HIS.

`generate_referral(his_url, inbox_dir, end=…)` reads the simulated HIS (`hospital_ops_sim.his`,
read-only: hospitals, departments, patients with national ID and phone, outpatient visits, inpatient
admissions) and writes what the referral platform / CRM exports, in the formats of
`hospital_ops.sources.referral.SOURCE`:

    <inbox>/referral/<first day>/referral_channels.csv          the channel register (full export)
    <inbox>/referral/<latest quarter's first day>/referral_channels.csv   re-sent: a channel joined
    <inbox>/referral/<YYYY-MM-DD>/referrals_<YYYY-MM-DD>.csv     the referrals sent that day
    <inbox>/referral/_scenarios.json                             what was planted, for humans/tests

Every referral is decided first: converted (the patient has an HIS visit or admission within
`window_days` after the referral), late (the patient's next encounter comes after the window) or
never (a HIS patient with no encounter in the window, or a person the HIS does not know). A converted
referral is built backwards from a real encounter: a random HIS encounter on one of the window's days
(a day up to `end`) gives the patient, target hospital and department, and the referral is placed
before it. So the referral source never carries the visit; dbt finds it by the pseudonymized
national ID, as it would with real data. The share converted is the channel's rate in the referral's
quarter (`CHANNEL_PLAN`), planted per channel-quarter as exactly round(n × rate) referrals:

- `low_conversion`: an online health platform converting ~20% all along;
- `conversion_drop`: a community health station converting ~65% until the latest quarter (the
  quarter of `end`), then ~25%, so a quarterly downgrade alert can fire;
- other channels 45–70%.

The facts in `_scenarios.json` are the generator's own classification (encounter times compared with
`referred_at` + `window_days`, the same rule as dbt's `referral_visit_window_days`), per channel and
quarter; tests recompute them from the HIS.

Defects, recorded under `defects`: GB18030 (GBK) files (the channel register always, with its Chinese
names; a share of the referral files, which are ASCII, so the encoding does not change their bytes), blank and space-only cells for nulls,
duplicated lines, referrals from an unknown channel id, unparseable `referred_at` values
(quarantined), and dates in other formats (2026/01/05 10:20, parsed).

Same arguments and the same HIS give byte-identical files (`random.Random` seeded per purpose).
"""

from __future__ import annotations

import bisect
import csv
import json
import logging
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path

import sqlalchemy as sa

from hospital_ops.sources.referral import SOURCE
from hospital_ops_sim import SCENARIO_FILE, month_start, prepare_source_dir
from hospital_ops_sim.his import HIS_SCHEMA

log = logging.getLogger(__name__)

DEFAULT_WINDOW_DAYS = 30  # the same default as dbt's referral_visit_window_days
UNKNOWN_CHANNEL_ID = "CH99"
GBK_SHARE = 0.3
LATE_SHARE_OF_MISSED = 0.3  # of the referrals that do not convert, the share whose visit comes too late


@dataclass(frozen=True)
class ChannelPlan:
    channel_id: str
    name: str
    channel_type: str
    tier: str
    per_day: float  # referrals a day
    conversion: float  # share converting within the window
    latest_quarter_conversion: float | None = None  # a different rate in the latest quarter
    scenario: str | None = None
    exports_minutes: bool = False  # the CRM exports response minutes instead of the first-contact time
    joins_latest_quarter: bool = False  # a channel that joins at the start of the latest quarter


CHANNEL_PLAN: tuple[ChannelPlan, ...] = (
    ChannelPlan("CH01", "市体检中心", "physical_exam_centre", "A", 3.0, 0.62),
    ChannelPlan("CH02", "美年健康体检(城东店)", "physical_exam_centre", "B", 2.0, 0.55),
    ChannelPlan("CH03", "城东社区卫生服务站", "community_health_station", "A", 2.5, 0.68),
    ChannelPlan("CH04", "北郊社区卫生服务站", "community_health_station", "B", 2.0, 0.65, 0.25,
                scenario="conversion_drop"),
    ChannelPlan("CH05", "区医联体转诊中心", "referral_institution", "A", 2.0, 0.70),
    ChannelPlan("CH06", "康复专科医院转诊部", "referral_institution", "C", 1.0, 0.48),
    ChannelPlan("CH07", "好大夫在线", "online_health_platform", "B", 2.5, 0.45, exports_minutes=True),
    ChannelPlan("CH08", "健康云问诊平台", "online_health_platform", "C", 2.0, 0.20, scenario="low_conversion",
                exports_minutes=True),
    ChannelPlan("CH09", "南湖社区卫生服务站", "community_health_station", "C", 1.0, 0.55, joins_latest_quarter=True),
)


class ReferralGenerationError(RuntimeError):
    """The referral exports cannot be generated as asked (bad arguments, an empty HIS)."""


@dataclass
class ReferralGenerationResult:
    inbox_dir: Path
    start: date
    end: date
    files_written: int
    rows_written: int
    scenarios: dict[str, object] = field(default_factory=dict)


def _rng(seed: int, *purpose: object) -> random.Random:
    return random.Random("|".join(str(part) for part in ("referral", seed, *purpose)))


def quarter_of(day: date) -> str:
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


def _quarter_start(day: date) -> date:
    return date(day.year, (day.month - 1) // 3 * 3 + 1, 1)


# ------------------------------------------------------------------------------------ the HIS


@dataclass
class _Encounter:
    at: datetime
    patient_id: str
    department_id: str


@dataclass
class _His:
    hospitals: list[str]
    department_hospital: dict[str, str]
    patients: dict[str, tuple[str, str | None]]  # patient_id -> (national_id, phone)
    by_day: dict[date, list[_Encounter]]
    times_by_patient: dict[str, list[datetime]]  # sorted encounter times


def read_his_encounters(his_url: str) -> _His:
    """Patients, and their outpatient visits and inpatient admissions (the encounters that convert)."""
    engine = sa.create_engine(his_url)
    s = HIS_SCHEMA
    try:
        with engine.connect() as conn:
            hospitals = [r[0] for r in conn.execute(sa.text(f"select hospital_id from {s}.hospitals order by 1"))]
            departments = dict(conn.execute(sa.text(f"select department_id, hospital_id from {s}.departments")).all())
            patients = {r[0]: (r[1], r[2]) for r in conn.execute(sa.text(
                f"select patient_id, national_id, phone from {s}.patients where national_id is not null order by 1"))}
            rows = conn.execute(sa.text(
                f"select visit_at, patient_id, department_id, visit_id from {s}.outpatient_visits "
                f"union all select admitted_at, patient_id, department_id, stay_id from {s}.inpatient_stays "
                "order by 1, 4")).all()
    finally:
        engine.dispose()
    by_day: dict[date, list[_Encounter]] = defaultdict(list)
    times: dict[str, list[datetime]] = defaultdict(list)
    for at, patient_id, department_id, _ in rows:
        if patient_id not in patients:
            continue
        by_day[at.date()].append(_Encounter(at, patient_id, department_id))
        times[patient_id].append(at)
    if not hospitals or not by_day:
        raise ReferralGenerationError("the HIS has no hospitals or no encounters: generate the HIS first")
    return _His(hospitals, departments, patients, dict(by_day), {p: sorted(t) for p, t in times.items()})


def converts(his_times: list[datetime], referred_at: datetime, window_days: int) -> bool:
    """The rule dbt applies: an encounter with referred_at <= at < referred_at + window."""
    first = bisect.bisect_left(his_times, referred_at)
    return first < len(his_times) and his_times[first] < referred_at + timedelta(days=window_days)


# ------------------------------------------------------------------------------------ generation


def _national_id(rng: random.Random) -> str:
    """A resident ID the HIS does not know (a referred person who never came)."""
    birth = date(1950, 1, 1) + timedelta(days=rng.randrange(60 * 365))
    body = f"{rng.choice(('310112', '320205', '330102'))}{birth:%Y%m%d}{rng.randrange(1000):03d}"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=False)) % 11]


class _Builder:
    def __init__(self, seed: int, his: _His, start: date, end: date, window_days: int) -> None:
        self.seed, self.his, self.start, self.end, self.window = seed, his, start, end, window_days
        self.latest_quarter = _quarter_start(end)
        self.referrals: dict[date, list[dict[str, str]]] = defaultdict(list)
        self.outcomes: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.patient_ids = sorted(his.patients)
        self.days_with_encounters = sorted(his.by_day)

    def rate(self, plan: ChannelPlan, day: date) -> float:
        if plan.latest_quarter_conversion is not None and day >= self.latest_quarter:
            return plan.latest_quarter_conversion
        return plan.conversion

    def channel_rows(self, rng: random.Random, joined: bool) -> list[list[str]]:
        rows = []
        for plan in CHANNEL_PLAN:
            if plan.joins_latest_quarter and not joined:
                continue
            started = self.latest_quarter if plan.joins_latest_quarter else self.start - timedelta(
                days=rng.randint(200, 1500))
            rows.append([plan.channel_id, plan.name, plan.channel_type, plan.tier, started.isoformat(),
                         self.his.hospitals[int(plan.channel_id[2:]) % len(self.his.hospitals)],
                         rng.choice("王李张刘陈") + rng.choice("伟芳娜敏静强"),
                         f"1{rng.choice('3589')}{rng.randrange(10 ** 9):09d}"])
        return rows

    def plan_referrals(self) -> None:
        for plan in CHANNEL_PLAN:
            rng = _rng(self.seed, "referrals", plan.channel_id)
            first = self.latest_quarter if plan.joins_latest_quarter else self.start
            days = [first + timedelta(days=i) for i in range((self.end - first).days + 1)]
            by_quarter: dict[str, list[datetime]] = defaultdict(list)
            for day in days:
                for _ in range(max(0, round(rng.gauss(plan.per_day, plan.per_day ** 0.5)))):
                    by_quarter[quarter_of(day)].append(datetime.combine(day, time(8)) + timedelta(
                        minutes=rng.randint(0, 11 * 60)))
            for _quarter, moments in sorted(by_quarter.items()):
                moments.sort()
                rate = self.rate(plan, moments[0].date())
                converted = set(rng.sample(range(len(moments)), round(len(moments) * rate)))
                for index, referred_at in enumerate(moments):
                    self.referral(rng, plan, referred_at, index in converted)

    def _converting_encounter(self, rng: random.Random, referred_at: datetime) -> _Encounter | None:
        last_day = min(self.end, (referred_at + timedelta(days=self.window - 1)).date())
        lo = bisect.bisect_left(self.days_with_encounters, referred_at.date())
        hi = bisect.bisect_right(self.days_with_encounters, last_day)
        for _ in range(20):
            day = self.days_with_encounters[rng.randrange(lo, hi)] if hi > lo else None
            if day is None:
                return None
            choices = [e for e in self.his.by_day[day]
                       if referred_at <= e.at < referred_at + timedelta(days=self.window)]
            if choices:
                return rng.choice(choices)
        return None

    def _missed_patient(self, rng: random.Random, referred_at: datetime) -> tuple[str | None, str]:
        """(HIS patient or None, outcome) for a referral that does not convert."""
        late = rng.random() < LATE_SHARE_OF_MISSED
        for _ in range(50):
            patient_id = rng.choice(self.patient_ids)
            times = self.his.times_by_patient.get(patient_id, [])
            if converts(times, referred_at, self.window):
                continue
            later = [t for t in times if t >= referred_at]
            if late == bool(later):
                return patient_id, "late" if later else "never"
        return None, "never"

    def referral(self, rng: random.Random, plan: ChannelPlan, referred_at: datetime, converted: bool) -> None:
        encounter = self._converting_encounter(rng, referred_at) if converted else None
        if encounter is not None:
            patient_id: str | None = encounter.patient_id
            outcome = "converted"
            department_id = encounter.department_id
            hospital_id = self.his.department_hospital[department_id]
        else:
            patient_id, outcome = self._missed_patient(rng, referred_at)
            hospital_id = self.his.hospitals[int(plan.channel_id[2:]) % len(self.his.hospitals)]
            department_id = rng.choice([d for d, h in sorted(self.his.department_hospital.items()) if h == hospital_id])
        if patient_id is not None:
            national_id, phone = self.his.patients[patient_id]
        else:
            national_id, phone = _national_id(rng), f"1{rng.choice('3589')}{rng.randrange(10 ** 9):09d}"
        minutes = round(rng.lognormvariate(4.2, 0.8))  # median ~65 min
        contacted = referred_at + timedelta(minutes=minutes)
        never_contacted = rng.random() < 0.04 or contacted >= datetime.combine(self.end + timedelta(days=1), time())
        first_contact = "" if never_contacted or plan.exports_minutes else contacted.strftime("%Y-%m-%d %H:%M:%S")
        response = "" if never_contacted or not plan.exports_minutes else str(minutes)
        day = referred_at.date()
        number = sum(len(rows) for rows in self.referrals.values()) + 1
        self.referrals[day].append({
            "referral_id": f"RF{number:07d}", "channel_id": plan.channel_id,
            "referred_at": referred_at.strftime("%Y-%m-%d %H:%M:%S"), "target_hospital_id": hospital_id,
            "target_department_id": "" if rng.random() < 0.05 else department_id,
            "patient_national_id": national_id, "patient_phone": phone or "",
            "first_contact_at": first_contact, "response_minutes": response,
        })
        self.outcomes[(plan.channel_id, quarter_of(day))][outcome] += 1


@dataclass
class _File:
    folder: date
    name: str
    header: list[str]
    rows: list[list[str]]
    encoding: str = "utf-8"


def _plant_defects(files: list[_File], rng: random.Random) -> dict[str, object]:
    referral_files = [f for f in files if f.name.startswith("referrals_") and len(f.rows) > 3]
    defects: dict[str, list] = {"gbk_files": [], "duplicated_lines": [], "unknown_channel": [],
                                "bad_referred_at": [], "other_date_format": [], "space_for_null": []}
    header = referral_files[0].header
    at = {name: header.index(name) for name in ("referral_id", "channel_id", "referred_at", "patient_phone")}
    for file in files:  # the CRM exports its channel register in GBK
        if file.name.startswith("referral_channels"):
            file.encoding = "gb18030"
            defects["gbk_files"].append(f"{SOURCE.name}/{file.folder.isoformat()}/{file.name}")
    for file in referral_files:
        relative = f"{SOURCE.name}/{file.folder.isoformat()}/{file.name}"
        if rng.random() < GBK_SHARE:
            file.encoding = "gb18030"
            defects["gbk_files"].append(relative)
        if rng.random() < 0.2:  # first, so a duplicated line copies it whole
            row = rng.choice(file.rows)
            if row[at["patient_phone"]] != "":
                row[at["patient_phone"]] = " "
                defects["space_for_null"].append(row[at["referral_id"]])
        roll = rng.random()
        if roll < 0.10:
            row = rng.choice(file.rows)
            file.rows.insert(file.rows.index(row) + 1, list(row))
            defects["duplicated_lines"].append(row[at["referral_id"]])
        elif roll < 0.15:
            row = rng.choice(file.rows)
            row[at["channel_id"]] = UNKNOWN_CHANNEL_ID
            defects["unknown_channel"].append(row[at["referral_id"]])
        elif roll < 0.19:
            row = rng.choice(file.rows)
            day = row[at["referred_at"]][:10]
            row[at["referred_at"]] = f"{day[:8]}32 {row[at['referred_at']][11:]}"  # day 32: not a date
            defects["bad_referred_at"].append(row[at["referral_id"]])
        elif roll < 0.30:
            row = rng.choice(file.rows)
            row[at["referred_at"]] = row[at["referred_at"]].replace("-", "/")[:16]  # 2026/01/05 10:20
            defects["other_date_format"].append(row[at["referral_id"]])
    return defects


def generate_referral(his_url: str, inbox_dir: Path, *, end: date, months: int = 6, seed: int = 20261123,
                      window_days: int = DEFAULT_WINDOW_DAYS) -> ReferralGenerationResult:
    """Write `months` months of referral exports up to `end` into `<inbox_dir>/referral/`."""
    if months < 3:
        raise ReferralGenerationError(f"months must be at least 3 (the latest quarter and the one before it), "
                                      f"got {months}")
    if window_days < 1:
        raise ReferralGenerationError(f"window_days must be at least 1, got {window_days}")
    start = month_start(end, -months)
    his = read_his_encounters(his_url)
    builder = _Builder(seed, his, start, end, window_days)
    builder.plan_referrals()
    channel_header = [c.name for c in SOURCE.entity("channels").columns]
    referral_header = [c.name for c in SOURCE.entity("referrals").columns]
    channel_rng = _rng(seed, "channels")
    files = [_File(start, "referral_channels.csv", channel_header, builder.channel_rows(channel_rng, False))]
    if builder.latest_quarter > start:
        files.append(_File(builder.latest_quarter, "referral_channels.csv", channel_header,
                           builder.channel_rows(_rng(seed, "channels"), True)))
    for day in sorted(builder.referrals):
        rows = [[row[name] for name in referral_header] for row in builder.referrals[day]]
        files.append(_File(day, f"referrals_{day.isoformat()}.csv", referral_header, rows))
    defects = _plant_defects(files, _rng(seed, "defects"))

    source_dir = Path(inbox_dir) / SOURCE.name
    prepare_source_dir(source_dir)
    rows_written = 0
    for file in files:
        folder = source_dir / file.folder.isoformat()
        folder.mkdir(exist_ok=True)
        with (folder / file.name).open("w", encoding=file.encoding, newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(file.header)
            writer.writerows(file.rows)
        rows_written += len(file.rows)
    scenarios: dict[str, object] = {
        "window_days": window_days,
        "latest_quarter": quarter_of(builder.latest_quarter),
        "channels": {plan.channel_id: {"scenario": plan.scenario, "channel_type": plan.channel_type,
                                       "planned_conversion": plan.conversion,
                                       "planned_latest_quarter_conversion": plan.latest_quarter_conversion}
                     for plan in CHANNEL_PLAN},
        "outcomes": {f"{channel}|{quarter}": dict(sorted(counts.items()))
                     for (channel, quarter), counts in sorted(builder.outcomes.items())},
        "defects": defects,
    }
    for plan in CHANNEL_PLAN:
        if plan.scenario:
            scenarios[plan.scenario] = {"channel_id": plan.channel_id}
    (source_dir / SCENARIO_FILE).write_text(json.dumps(scenarios, ensure_ascii=False, indent=2, sort_keys=True) + "\n",
                                            encoding="utf-8")
    log.info("referral exports %s..%s: %d files, %d rows into %s", start, end, len(files), rows_written, source_dir)
    return ReferralGenerationResult(Path(inbox_dir), start, end, len(files), rows_written, scenarios)
