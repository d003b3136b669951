"""A simulated hospital information system 医院信息系统 (HIS) for a medical consortium 医联体.

`generate_his(url, end=…)` creates the HIS database's schema (`create_his_database`, in
`hospital_ops_sim.his.database`) and fills it with `months` months of consistent patient journeys up
to `end`, drawn from the catalogues of `hospital_ops_sim.his.catalogue`:

- master data: hospitals (one tertiary lead hospital, secondary members), departments 科室 per
  hospital (clinical, medical-technical 医技, admin), staff 人员 with titles 职称 (hires and leavers
  during the period), open beds 床位 (some opened or closed mid-period), equipment 设备 with purchase
  values (some acquired or retired mid-period);
- outpatient and emergency visits 门急诊 with seasonal and weekday volume (winter peaks in respiratory
  medicine and paediatrics, the Spring Festival dip), by doctors of the department (specialist
  clinics for senior titles), and their charges per category;
- inpatient stays 住院 drawn from a curated catalogue of case types per department (real ICD-10
  codes, typical length of stay, surgical share, mortality): admissions never exceed the open beds
  of a night (a full ward turns patients away), pre-operative waits 术前等待 from admission to
  surgery, surgeries 手术 (ICD-9-CM-3) with grade 1–4, minimally invasive share and a surgeon whose
  title allows the grade, complications arising during the stay, deaths, transfers and discharges
  against advice, and 31-day readmissions: planned ones (chemotherapy cycles, staged procedures,
  flagged "是否有出院31天内再住院计划" on the index discharge) and unplanned ones (more likely after a
  complication), plus some beyond 31 days;
- charges 费用 per stay per category (drug 药品, consumables 耗材, medical service 医疗服务, exam/lab
  检查检验) per calendar month of the stay, surgery fees and implants on the surgery's month;
- a planted DRG cost jump 病种费用突增: every charge of the stays of one department discharged in the
  last month that has fully settled with insurance by `end` is COST_JUMP_FACTOR (1.8) times its usual
  amount, so the department's DRG groups jump in cost per case (facts["cost_jump"]: department,
  month, factor, stays);
- late corrections: now and then rows of past months are corrected days later (a discharge
  disposition, a secondary diagnosis code, a surgery grade, a charge amount, a patient's phone):
  the value changes and `updated_at` moves forward. `apply_late_corrections` does the same on a later
  day, so a test or demo can watch the next night pick them up.

The wards are not empty when the history starts: patients admitted in the weeks before the first
day fill them to their usual occupancy (their stays and those weeks' charges are in the data).
Everything a stay knows is decided at admission, but only what has happened by the end of `end` is
written: a stay still open then has no discharge, later surgeries and diagnoses do not exist yet.
Every random draw comes from a `random.Random` seeded from `seed` and a purpose (never the wall
clock, never the global generator), so the same arguments give the same database.

`hospital_ops_sim.his.fhir_export.write_fhir_bulk` exports the same data as HL7 FHIR R4 Bulk Data
NDJSON in the profile of `hospital_ops.extract.fhir_profile`; `hospital_ops.extract.fhir_r4`, the one
FHIR reader, reads it back.
"""

from __future__ import annotations

import logging
import math
import random
import time as stopwatch
from array import array
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from hospital_ops.sources.his import SENIOR_TITLE_GRADES, SOURCE
from hospital_ops_sim.his.catalogue import (
    _AREA_CODES,
    _COMORBIDITIES,
    _DEPARTMENTS,
    _EQUIPMENT,
    _GENERIC_EQUIPMENT,
    _GIVEN,
    _HOSPITALS,
    _ID_WEIGHTS,
    _INITIAL_OCCUPANCY,
    _MEDICAL_COMPLICATIONS,
    _MEMBER_BEDS,
    _MEMBER_DEPARTMENTS,
    _MEMBER_OUTPATIENT,
    _MOBILE_PREFIXES,
    _MONTH_FACTOR,
    _POSTOP_MIN_DAYS,
    _PROFILES,
    _QUIET_DAYS,
    _SURGEON_GRADES,
    _SURGERY_FEE,
    _SURGICAL_COMPLICATIONS,
    _SURNAMES,
    _TARGET_OCCUPANCY,
    _TITLE_NAMES,
    _TITLE_SHARES,
    _WEEKDAY_ADMISSION,
    _WEEKDAY_OUTPATIENT,
    _WINTER_FACTOR,
    CHEMOTHERAPY,
    _Case,
    _Procedure,
    _Profile,
)
from hospital_ops_sim.his.database import (
    HIS_SCHEMA,
    TABLE_ORDER,
    TABLES,
    HisGenerationError,
    _copy_rows,
    _require_empty,
    create_his_database,
)

log = logging.getLogger(__name__)

DEFAULT_SEED = 20260101
DEFAULT_MONTHS = 6
# Planted DRG cost jump (see _World.cost_jump): the factor, and the days after a month's end by which
# all its discharges have settled with insurance (the insurance generator's longest settlement lag).
COST_JUMP_FACTOR = Decimal("1.8")
COST_JUMP_SETTLED_DAYS = 15
DEFAULT_HOSPITALS = 3
MAX_HOSPITALS = 9


# ===================================================================================== result


@dataclass(frozen=True)
class Correction:
    """One late correction: a row of `table` (business key `key`) whose `column` changed at `updated_at`."""

    table: str
    key: tuple[object, ...]
    column: str
    old: object
    new: object
    updated_at: datetime


@dataclass
class HisGenerationResult:
    url: str  # without password
    start: date
    end: date
    seed: int
    counts: dict[str, int]
    facts: dict[str, object] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def corrections(self) -> list[Correction]:
        return list(self.facts.get("corrections", []))  # type: ignore[call-overload]


# ===================================================================================== helpers


def _rng(seed: int, *purpose: object) -> random.Random:
    """An independent, reproducible stream per purpose (str seeds hash with SHA-512, not PYTHONHASHSEED)."""
    return random.Random("|".join(str(part) for part in ("his", seed, *purpose)))


def _first_of_month(day: date, months_later: int = 0) -> date:
    index = day.year * 12 + day.month - 1 + months_later
    return date(index // 12, index % 12 + 1, 1)


def _at(day: date, minute: int) -> datetime:
    return datetime.combine(day, time()) + timedelta(minutes=minute)


def _poisson(rng: random.Random, lam: float) -> int:
    """Poisson draw (Knuth for small means, a rounded normal for large ones); `random` has none."""
    if lam <= 0:
        return 0
    if lam > 40:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, product = math.exp(-lam), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


def _lognormal(rng: random.Random, mean: float, sigma: float) -> float:
    return rng.lognormvariate(math.log(mean) - sigma * sigma / 2, sigma)


def _money(value: float) -> Decimal:
    return Decimal(value).quantize(Decimal("0.01"))


def _weighted(rng: random.Random, items: Sequence, weights: Sequence[float]):  # type: ignore[no-untyped-def]
    return rng.choices(items, weights=weights)[0]


def _person_name(rng: random.Random) -> str:
    return rng.choice(_SURNAMES) + "".join(rng.choice(_GIVEN) for _ in range(rng.choice((1, 2, 2))))


def _mobile(rng: random.Random) -> str:
    return rng.choice(_MOBILE_PREFIXES) + f"{rng.randrange(10 ** 8):08d}"


def _national_id(rng: random.Random, birth: date, gender: str) -> str:
    """18-character PRC resident ID: area, birth date, sequence (odd for men), ISO 7064 MOD 11-2 check."""
    sequence = rng.randrange(500) * 2 + (1 if gender == "1" else 0)
    body = f"{rng.choice(_AREA_CODES)}{birth:%Y%m%d}{sequence:03d}"
    total = sum(int(digit) * weight for digit, weight in zip(body, _ID_WEIGHTS, strict=False))
    return body + "10X98765432"[total % 11]


def _safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


# ===================================================================================== the world


@dataclass
class _Doctor:
    staff_id: str
    grade: str
    hired_on: date
    left_on: date | None

    def active(self, day: date) -> bool:
        return self.hired_on <= day and (self.left_on is None or day <= self.left_on)


@dataclass
class _Dept:
    department_id: str
    hospital_id: str
    profile: _Profile
    beds: int
    outpatient_rate: float
    doctors: list[_Doctor] = field(default_factory=list)
    capacity: list[int] = field(default_factory=list)  # open beds per day of the period
    occupied: list[int] = field(default_factory=list)  # patients in a bed per night of the period
    admission_rate: float = 0.0
    today: list[_Doctor] = field(default_factory=list)  # doctors at work on the current day

    def pick_doctor(self, rng: random.Random, grades: Sequence[str] | None = None,
                    day: date | None = None) -> _Doctor | None:
        """A doctor at work (today, or on `day`), preferring `grades` when any of them is."""
        pool = self.today if day is None else [d for d in self.doctors if d.active(day)]
        preferred = [d for d in pool if d.grade in grades] if grades else pool
        pool = preferred or pool
        return rng.choice(pool) if pool else None


class _Patients:
    """The patient register: one entry per patient ever registered, in typed arrays of about 17
    bytes a patient (an object per patient took some 270), since the register is the one part of
    the simulation's state that grows with the history (a few million patients at the largest
    sizes). `register[i]` is a view of patient i, whose id is P + i + 1 (`next_id`'s counter)."""

    def __init__(self) -> None:
        self.hospital, self.group, self.gender = array("H"), array("B"), array("B")
        self.birth, self.busy_until, self.last_discharge = array("i"), array("i"), array("i")  # date ordinals; 0 none
        self.dead = array("B")
        self.groups: list[str] = []

    def __len__(self) -> int:
        return len(self.hospital)

    def __getitem__(self, index: int) -> _Patient:
        return _Patient(self, index)

    def add(self, hospital_id: str, group: str, gender: str, birth: date) -> int:
        if group not in self.groups:
            self.groups.append(group)
        self.hospital.append(int(hospital_id[1:]))
        self.group.append(self.groups.index(group))
        self.gender.append(int(gender))
        self.birth.append(birth.toordinal())
        self.busy_until.append(date.min.toordinal())
        self.last_discharge.append(0)
        self.dead.append(0)
        return len(self.hospital) - 1


class _Patient:
    """One patient of the register, read and written in place."""

    __slots__ = ("_index", "_register")

    def __init__(self, register: _Patients, index: int) -> None:
        self._register, self._index = register, index

    @property
    def patient_id(self) -> str:
        return f"P{self._index + 1:08d}"

    @property
    def hospital_id(self) -> str:
        return f"H{self._register.hospital[self._index]:02d}"

    @property
    def group(self) -> str:
        return self._register.groups[self._register.group[self._index]]

    @property
    def gender(self) -> str:
        return str(self._register.gender[self._index])

    @property
    def birth(self) -> date:
        return date.fromordinal(self._register.birth[self._index])

    @property
    def dead(self) -> bool:
        return bool(self._register.dead[self._index])

    @dead.setter
    def dead(self, value: bool) -> None:
        self._register.dead[self._index] = int(value)

    @property
    def busy_until(self) -> date:
        """In hospital (or booked for a planned return) up to this day."""
        return date.fromordinal(self._register.busy_until[self._index])

    @busy_until.setter
    def busy_until(self, day: date) -> None:
        self._register.busy_until[self._index] = day.toordinal()

    @property
    def last_discharge(self) -> date | None:
        ordinal = self._register.last_discharge[self._index]
        return date.fromordinal(ordinal) if ordinal else None

    @last_discharge.setter
    def last_discharge(self, day: date) -> None:
        self._register.last_discharge[self._index] = day.toordinal()


@dataclass(slots=True)  # one per booked return: kept small
class _Booking:
    department: _Dept
    patient: int
    case: _Case
    planned: bool
    attempts: int = 0


class _World:
    """The consortium being simulated: master data, patients, the bed census and the rows written."""

    def __init__(self, seed: int, end: date, months: int, hospitals: int, scale: float) -> None:
        self.seed, self.end, self.scale = seed, end, scale
        self.start = _first_of_month(end, -months)
        self.horizon = datetime.combine(end + timedelta(days=1), time())
        self.days = [self.start + timedelta(days=i) for i in range((end - self.start).days + 1)]
        self.go_live = datetime.combine(self.start - timedelta(days=3 * 365), time(8))
        self.hospital_count = hospitals
        # rows simulated since the last flush (written month by month, see `flush`), and rows written
        self.rows: dict[str, list[list[object]]] = {name: [] for name in TABLE_ORDER}
        self.written: dict[str, int] = dict.fromkeys(TABLE_ORDER, 0)
        self.departments: list[_Dept] = []
        self.patients = _Patients()
        self.pools: dict[tuple[str, str], array[int]] = defaultdict(lambda: array("i"))
        self.new_today: list[int] = []
        self.bookings: dict[date, list[_Booking]] = defaultdict(list)
        self.counters: dict[str, int] = defaultdict(int)
        self.facts: dict[str, int] = defaultdict(int)
        self.r_master = _rng(seed, "master")
        self.r_people = _rng(seed, "people")
        self.r_visits = _rng(seed, "visits")
        self.r_stays = _rng(seed, "stays")
        # planted DRG cost jump 病种费用突增 (_plant_cost_jump): the month is the last one whose
        # discharges have all settled by `end` (see insurance.SETTLEMENT_LAG_DAYS)
        anchor = _first_of_month(end, -1)
        if _first_of_month(anchor, 1) + timedelta(days=COST_JUMP_SETTLED_DAYS) > end:
            anchor = _first_of_month(end, -2)
        self.cost_jump: dict[str, object] = {"month": anchor.isoformat(), "factor": str(COST_JUMP_FACTOR)}
        self.cost_jump_month = anchor
        # the stays discharged in the cost-jump month (stay → department), their primary diagnoses per
        # department and code, and their charges, held back until the department is known
        self.jump_stays: dict[str, str] = {}
        self.jump_cells: dict[tuple[str, str], int] = defaultdict(int)
        self.jump_charges: list[list[object]] = []

    def flush(self, write: Callable[[dict[str, list[list[object]]]], None]) -> None:
        """Hand the rows simulated since the last flush to `write` (in TABLE_ORDER, parents before
        children) and forget them: what the simulation keeps is its state, never the rows it wrote."""
        write(self.rows)
        for name, rows in self.rows.items():
            self.written[name] += len(rows)
        self.rows = {name: [] for name in TABLE_ORDER}

    def next_id(self, kind: str, prefix: str, width: int) -> str:
        self.counters[kind] += 1
        return f"{prefix}{self.counters[kind]:0{width}d}"

    def index(self, day: date) -> int:
        return (day - self.start).days

    def clamp(self, value: datetime, floor: datetime | None = None) -> datetime:
        """Keep a derived time inside the simulated past (before the horizon) and after `floor`."""
        if floor is not None and value <= floor:
            value = floor + timedelta(minutes=1)
        return min(value, self.horizon - timedelta(seconds=1))


# ----------------------------------------------------------------------------------- master data


def _master_data(world: _World) -> None:
    rng = world.r_master
    for number in range(1, world.hospital_count + 1):
        name, level, role = _HOSPITALS[number - 1]
        hospital_id = f"H{number:02d}"
        lead = role == "lead"
        world.rows["hospitals"].append([hospital_id, name, "本部", level, role, world.go_live, world.go_live])
        codes = [p.code for p in _DEPARTMENTS] if lead else list(_MEMBER_DEPARTMENTS)
        for code in codes:
            profile = _PROFILES[code]
            beds = 0 if profile.beds == 0 else max(4, round(profile.beds * world.scale * (1 if lead else _MEMBER_BEDS)))
            outpatient = profile.outpatient * world.scale * (1 if lead else _MEMBER_OUTPATIENT)
            dept = _Dept(f"{hospital_id}-{code}", hospital_id, profile, beds, outpatient)
            world.departments.append(dept)
            world.rows["departments"].append([dept.department_id, hospital_id, profile.name, profile.kind,
                                              world.go_live, world.go_live])
    for dept in world.departments:
        _staff(world, rng, dept)
        _beds(world, rng, dept)
        _equipment(world, rng, dept)
    _bed_changes(world, rng)
    for dept in world.departments:
        _census(world, dept)


def _headcount(dept: _Dept, rng: random.Random) -> dict[str, int]:
    kind = dept.profile.kind
    if kind == "clinical":
        nurses = dept.beds * 0.6 + dept.outpatient_rate / 8
        return {"doctor": max(3, round(dept.beds * 0.3 + dept.outpatient_rate / 10)), "nurse": max(3, round(nurses)),
                "technician": 0, "admin": 1}
    if kind == "medical_technical":
        return {"doctor": rng.randint(2, 4), "nurse": 0, "technician": rng.randint(6, 16), "admin": 1}
    return {"doctor": 0, "nurse": 0, "technician": 0, "admin": rng.randint(4, 10)}


def _staff(world: _World, rng: random.Random, dept: _Dept) -> None:
    period_days = len(world.days)
    for role, count in _headcount(dept, rng).items():
        grades, weights = zip(*_TITLE_SHARES[role], strict=False)
        for number in range(count):
            staff_id = world.next_id("staff", "S", 6)
            grade = _weighted(rng, grades, weights)
            roll = rng.random()
            if role == "doctor" and dept.profile.kind == "clinical" and number < 2:
                # the head 科主任 and a deputy: senior titles, in post all along, so every ward has
                # surgeons authorised for grade-4 operations 四级手术
                grade, roll = SENIOR_TITLE_GRADES[number], 1.0
            # joined during the period, or long before it
            hired_on = (world.days[rng.randrange(period_days)] if roll < 0.04
                        else world.start - timedelta(days=rng.randint(60, 25 * 365)))
            left_on = world.days[rng.randrange(period_days - 1)] if 0.04 <= roll < 0.07 else None
            if left_on is not None and left_on < hired_on:
                left_on = None
            created = datetime.combine(hired_on, time(9))
            updated = datetime.combine(left_on, time(17, 30)) if left_on else created
            world.rows["staff"].append([staff_id, dept.department_id, _person_name(rng), role,
                                        _TITLE_NAMES[role].get(grade), grade, hired_on, left_on, created, updated])
            if role == "doctor":
                dept.doctors.append(_Doctor(staff_id, grade, hired_on, left_on))


def _beds(world: _World, rng: random.Random, dept: _Dept) -> None:
    wards = max(1, math.ceil(dept.beds / 40))
    for number in range(1, dept.beds + 1):
        ward = f"{dept.profile.name}{'一二三四五'[min(4, (number - 1) * wards // dept.beds)]}病区" if wards > 1 \
            else f"{dept.profile.name}病区"
        world.rows["beds"].append([f"{dept.department_id}-{number:03d}", dept.department_id, ward, f"{number:02d}",
                                   world.go_live.date(), None, world.go_live, world.go_live])


def _bed_changes(world: _World, rng: random.Random) -> None:
    """Per hospital one ward opens extra beds mid-period and another closes two (both in the data)."""
    with_beds = [d for d in world.departments if d.beds > 0]
    for hospital_id in sorted({d.hospital_id for d in with_beds}):
        candidates = [d for d in with_beds if d.hospital_id == hospital_id]
        opened, closed = rng.sample(candidates, 2) if len(candidates) > 1 else (candidates[0], None)
        day = world.days[len(world.days) // 3 + rng.randrange(max(1, len(world.days) // 3))]
        extra = rng.randint(3, 6)
        for number in range(opened.beds + 1, opened.beds + extra + 1):
            stamp = datetime.combine(day, time(8))
            world.rows["beds"].append([f"{opened.department_id}-{number:03d}", opened.department_id,
                                       f"{opened.profile.name}加床区", f"{number:02d}", day, None, stamp, stamp])
        if closed is not None and closed.beds > 6:
            last_day = world.days[len(world.days) // 2 + rng.randrange(max(1, len(world.days) // 3))]
            for row in world.rows["beds"]:
                if row[1] == closed.department_id and row[3] in (f"{closed.beds:02d}", f"{closed.beds - 1:02d}"):
                    row[5], row[7] = last_day, datetime.combine(last_day, time(18))


def _census(world: _World, dept: _Dept) -> None:
    beds = [row for row in world.rows["beds"] if row[1] == dept.department_id]
    dept.capacity = [sum(1 for row in beds if row[4] <= day and (row[5] is None or day <= row[5]))
                     for day in world.days]
    dept.occupied = [0] * len(world.days)
    if dept.beds and dept.profile.cases:
        weights = [case.weight for case in dept.profile.cases]
        mean_los = sum(c.los * c.weight for c in dept.profile.cases) / sum(weights)
        dept.admission_rate = dept.beds * _TARGET_OCCUPANCY / mean_los


def _equipment(world: _World, rng: random.Random, dept: _Dept) -> None:
    items = (_GENERIC_EQUIPMENT if dept.profile.kind == "clinical" and dept.beds else ()) \
        + _EQUIPMENT.get(dept.profile.code, ())
    for name, category, low, high, (fewest, most) in items:
        for _ in range(rng.randint(fewest, most)):
            roll = rng.random()
            acquired = world.days[rng.randrange(len(world.days))] if roll < 0.03 \
                else world.start - timedelta(days=rng.randint(30, 10 * 365))
            retired = world.days[rng.randrange(len(world.days) - 1)] if 0.03 <= roll < 0.05 else None
            if retired is not None and retired <= acquired:
                retired = None
            created = datetime.combine(acquired, time(10))
            updated = datetime.combine(retired, time(16)) if retired else created
            value = Decimal(round(rng.uniform(low, high), -2)).quantize(Decimal("0.01"))
            world.rows["equipment"].append([world.next_id("equipment", "E", 6), dept.department_id, name, category,
                                            value, acquired, retired, created, updated])


# ------------------------------------------------------------------------------------- patients


def _new_patient(world: _World, hospital_id: str, group: str, when: datetime, gender: str | None) -> int:
    rng = world.r_people
    day = when.date()
    if group == "child":
        birth = day - timedelta(days=rng.randint(30, 13 * 365))
        gender = gender or rng.choice("12")
    elif group == "woman":
        birth = day - timedelta(days=rng.randint(20 * 365, 45 * 365))
        gender = "2"
    else:
        birth = day - timedelta(days=round(rng.triangular(15, 92, 60) * 365.25))
        gender = gender or rng.choice("12")
    patient_id = world.next_id("patient", "P", 8)
    registered = when - timedelta(minutes=rng.randint(5, 40))
    world.rows["patients"].append([patient_id, _person_name(rng), _national_id(rng, birth, gender), _mobile(rng),
                                   f"{world.counters['patient'] + 10_000_000}", gender, birth, registered,
                                   registered])
    index = world.patients.add(hospital_id, group, gender, birth)
    world.new_today.append(index)
    return index


def _pick_patient(world: _World, dept: _Dept, group: str, when: datetime, *, new_share: float,
                  gender: str | None = None, quiet_days: int = 0) -> int:
    """A returning patient of the hospital (now and then one known at another consortium member), or a new one.

    `quiet_days`: skip patients discharged that recently, so readmissions come only from `_book_return`.
    """
    rng = world.r_people
    day = when.date()
    hospital_id = dept.hospital_id
    if world.hospital_count > 1 and rng.random() < 0.05:  # referred within the consortium 医联体转诊
        hospital_id = f"H{rng.randint(1, world.hospital_count):02d}"
    pool = world.pools.get((hospital_id, group))
    if pool and rng.random() >= new_share:
        for _ in range(4):
            index = pool[rng.randrange(len(pool))]
            patient = world.patients[index]
            recent = patient.last_discharge is not None and (day - patient.last_discharge).days <= quiet_days
            if not patient.dead and patient.busy_until < day and not recent \
                    and (gender is None or patient.gender == gender):
                return index
    return _new_patient(world, dept.hospital_id, group, when, gender)


def _end_of_day(world: _World) -> None:
    for index in world.new_today:  # new patients are returning patients from the next day on
        patient = world.patients[index]
        world.pools[(patient.hospital_id, patient.group)].append(index)
    world.new_today = []


# ----------------------------------------------------------------------------------- outpatient


def _outpatient_day(world: _World, day: date) -> None:
    rng = world.r_visits
    for dept in world.departments:
        if dept.outpatient_rate <= 0:
            continue
        emergency = dept.profile.code == "EMER"
        factor = _MONTH_FACTOR[day.month] * (1.0 if emergency else _WEEKDAY_OUTPATIENT[day.weekday()])
        if dept.profile.winter:
            factor *= _WINTER_FACTOR.get(day.month, 1.0)
        for _ in range(_poisson(rng, dept.outpatient_rate * factor)):
            _visit(world, rng, dept, day, emergency)


def _visit(world: _World, rng: random.Random, dept: _Dept, day: date, emergency: bool) -> None:
    if emergency:
        minute = rng.randrange(24 * 60)
        group = "child" if rng.random() < 0.15 else "adult"
    else:
        minute = rng.randrange(8 * 60, 11 * 60 + 30) if rng.random() < 0.6 else rng.randrange(13 * 60 + 30, 17 * 60)
        group = dept.profile.group
    visit_at = _at(day, minute)
    patient = _pick_patient(world, dept, group, visit_at, new_share=0.3)
    doctor = dept.pick_doctor(rng)
    doctor_id = doctor.staff_id if doctor else None
    senior = doctor is not None and doctor.grade in SENIOR_TITLE_GRADES
    visit_type = "emergency" if emergency else ("specialist" if senior else "general")
    visit_id = world.next_id("visit", "OV", 9)
    closed = world.clamp(visit_at + timedelta(minutes=rng.randint(5, 40)), visit_at)
    world.rows["outpatient_visits"].append([visit_id, world.patients[patient].patient_id, dept.department_id,
                                            doctor_id, visit_at, visit_type, visit_at, closed])
    charged = world.clamp(visit_at + timedelta(minutes=rng.randint(5, 45)), visit_at)
    drug, exam = dept.profile.outpatient_cost
    fee = {"general": 25.0, "specialist": rng.choice((60.0, 80.0, 100.0)), "emergency": 40.0}[visit_type]
    amounts = {"medical_service": fee + (_lognormal(rng, 80, 0.6) if rng.random() < 0.3 else 0.0)}
    if rng.random() < 0.75:
        amounts["drug"] = _lognormal(rng, drug, 0.7)
    if rng.random() < 0.45:
        amounts["exam_lab"] = _lognormal(rng, exam, 0.6)
    if rng.random() < 0.15:
        amounts["consumables"] = _lognormal(rng, 40, 0.6)
    for category, amount in amounts.items():
        world.rows["charges"].append([world.next_id("charge", "C", 10), visit_id, None, dept.department_id, category,
                                      _money(amount), charged, charged, charged])


# ------------------------------------------------------------------------------------ inpatient


@dataclass
class _Stay:
    """What happens during one stay, decided at admission (written only as far as the horizon)."""

    case: _Case
    admitted_at: datetime
    los: int
    procedure: _Procedure | None = None
    wait: int = 0
    complication_day: int | None = None
    disposition: str = "home"
    emergency: bool = False

    @property
    def discharge_day(self) -> date:
        return self.admitted_at.date() + timedelta(days=self.los)


def _inpatient_day(world: _World, day: date) -> None:
    rng = world.r_stays
    for booking in world.bookings.pop(day, []):
        if not _admit(world, booking.department, day, booking.patient, booking.case, planned=booking.planned):
            tomorrow = day + timedelta(days=1)
            if booking.attempts < 3 and tomorrow <= world.end:  # ward full: come back tomorrow
                booking.attempts += 1
                world.bookings[tomorrow].append(booking)
                world.patients[booking.patient].busy_until = tomorrow
            else:
                world.facts["readmissions_cancelled"] += 1
    weekday = _WEEKDAY_ADMISSION[day.weekday()]
    for dept in world.departments:
        if dept.admission_rate <= 0:
            continue
        cases = dept.profile.cases
        for _ in range(_poisson(rng, dept.admission_rate * weekday)):
            case = _weighted(rng, cases, [c.weight for c in cases])
            when = _at(day, 8 * 60)
            patient = _pick_patient(world, dept, dept.profile.group, when, new_share=0.35, gender=case.gender,
                                    quiet_days=_QUIET_DAYS)
            if not _admit(world, dept, day, patient, case, planned=None):
                world.facts["admissions_turned_away"] += 1


def _initial_census(world: _World) -> None:
    """Fill each ward to its usual occupancy with patients admitted in the weeks before the history starts
    (their stays, and their charges of those weeks, are in the data like any other)."""
    rng = world.r_stays
    for dept in world.departments:
        if dept.admission_rate <= 0:
            continue
        cases = dept.profile.cases
        for _ in range(round(dept.capacity[0] * _INITIAL_OCCUPANCY)):
            case = _weighted(rng, cases, [c.weight for c in cases])
            day = world.start - timedelta(days=rng.randint(1, max(1, round(case.los))))
            dept.today = [d for d in dept.doctors if d.active(day)]
            patient = _pick_patient(world, dept, dept.profile.group, _at(day, 8 * 60), new_share=1.0,
                                    gender=case.gender)
            _admit(world, dept, day, patient, case, planned=None, still_in_on=world.start)
    _end_of_day(world)


def _plan_stay(rng: random.Random, dept: _Dept, day: date, case: _Case) -> _Stay:
    emergency = case.emergency and rng.random() < 0.75
    minute = rng.randrange(24 * 60) if emergency else rng.randrange(8 * 60, 16 * 60 + 30)
    stay = _Stay(case, _at(day, minute), max(1, round(rng.gammavariate(3.0, case.los / 3.0))), emergency=emergency)
    if case.procedures and rng.random() < case.surgery_share:
        stay.procedure = _weighted(rng, case.procedures, [p.weight for p in case.procedures])
        stay.wait = rng.randint(0, 1) if emergency else rng.randint(*dept.profile.preop_wait)
        stay.los = max(stay.los, stay.wait + _POSTOP_MIN_DAYS[stay.procedure.grade])
    risk = 0.015 + 0.008 * stay.procedure.grade if stay.procedure else 0.012
    if rng.random() < risk:
        stay.complication_day = stay.wait + rng.randint(1, 2) if stay.procedure else rng.randint(1, max(1, stay.los - 1))
        stay.los = max(stay.los, stay.complication_day + 1) + rng.randint(2, 6)
    mortality = case.mortality * (4 if stay.complication_day is not None else 1)
    roll = rng.random()
    if roll < mortality:
        stay.disposition = "death"
    elif roll < mortality + 0.02:
        stay.disposition = "transfer"
    elif roll < mortality + 0.035:
        stay.disposition = "against_advice"
    return stay


def _admit(world: _World, dept: _Dept, day: date, patient_index: int, case: _Case, *, planned: bool | None,
           still_in_on: date | None = None) -> bool:
    """Admit a patient if the ward has a free bed every night of the planned stay; write what has happened.

    `still_in_on`: the stay lasts past this day (patients already in the ward when the history starts).
    """
    rng = world.r_stays
    stay = _plan_stay(rng, dept, day, case)
    if still_in_on is not None and stay.discharge_day <= still_in_on:
        stay.los = (still_in_on - day).days + rng.randint(1, 3)
    first, last = max(0, world.index(day)), min(world.index(stay.discharge_day), len(world.days))
    if any(dept.occupied[i] >= dept.capacity[i] for i in range(first, last)):
        return False
    for i in range(first, last):
        dept.occupied[i] += 1
    patient = world.patients[patient_index]
    minute = rng.randrange(24 * 60) if stay.disposition == "death" else rng.randrange(9 * 60, 16 * 60)
    discharged_at: datetime | None = _at(stay.discharge_day, minute)
    if discharged_at >= world.horizon:
        discharged_at = None
    stay_id = world.next_id("stay", "IP", 8)
    attending = dept.pick_doctor(rng, ("正高", "副高", "中级"))
    if planned is not None:
        world.facts["readmissions_planned" if planned else "readmissions_unplanned"] += 1
    plan_return = discharged_at is not None and stay.disposition == "home" and rng.random() < case.planned_return
    patient.busy_until = patient.last_discharge = stay.discharge_day
    if discharged_at is not None and stay.disposition == "home":
        _book_return(world, rng, dept, patient_index, stay, plan_return)
    if stay.disposition == "death":
        patient.dead = True
    row = [stay_id, patient.patient_id, dept.department_id, attending.staff_id if attending else None,
           stay.admitted_at, discharged_at,
           stay.disposition if discharged_at else None, plan_return if discharged_at else None,
           stay.admitted_at, discharged_at or stay.admitted_at]
    world.rows["inpatient_stays"].append(row)
    if discharged_at is not None and discharged_at.date().replace(day=1) == world.cost_jump_month:
        world.jump_stays[stay_id] = dept.department_id
        world.jump_cells[(dept.department_id, stay.case.icd10)] += 1  # its primary diagnosis (_diagnoses)
    surgery_day = _surgery(world, rng, dept, stay_id, stay, discharged_at)
    complication_day = _diagnoses(world, rng, dept, stay_id, stay, patient, discharged_at)
    _stay_charges(world, rng, dept, stay_id, stay, discharged_at, surgery_day, complication_day)
    return True


def _book_return(world: _World, rng: random.Random, dept: _Dept, patient_index: int, stay: _Stay,
                 planned: bool) -> None:
    """Planned returns (chemotherapy cycles, staged care) and unplanned readmissions, some beyond 31 days."""
    case = stay.case
    if planned:
        if rng.random() < 0.1:  # the plan is dropped
            return
        gap = rng.randint(14, 28)
        case = CHEMOTHERAPY if case.icd10.startswith(("C", "Z51")) else case
    elif rng.random() < 0.03 + (0.12 if stay.complication_day is not None else 0.0):
        gap = min(31, 1 + int(rng.expovariate(1 / 9)))
    elif rng.random() < 0.01:
        gap = rng.randint(35, 70)
    else:
        return
    day = stay.discharge_day + timedelta(days=gap)
    if day > world.end:
        return
    world.bookings[day].append(_Booking(dept, patient_index, case, planned))
    world.patients[patient_index].busy_until = day


def _surgery(world: _World, rng: random.Random, dept: _Dept, stay_id: str, stay: _Stay,
             discharged_at: datetime | None) -> date | None:
    procedure = stay.procedure
    if procedure is None:
        return None
    if stay.wait == 0:
        performed = stay.admitted_at + timedelta(minutes=rng.randint(60, 300))
    else:
        performed = _at(stay.admitted_at.date() + timedelta(days=stay.wait), rng.randint(8 * 60, 17 * 60))
    if performed >= world.horizon or (discharged_at is not None and performed >= discharged_at):
        return None
    surgeon = dept.pick_doctor(rng, _SURGEON_GRADES.get(procedure.grade), performed.date())
    noted = world.clamp(performed + timedelta(minutes=rng.randint(60, 240)), performed)
    world.rows["surgeries"].append([world.next_id("surgery", "OP", 8), stay_id,
                                    surgeon.staff_id if surgeon else None, procedure.code,
                                    procedure.name, procedure.grade, procedure.minimally_invasive, performed,
                                    performed, noted])
    return performed.date()


def _diagnoses(world: _World, rng: random.Random, dept: _Dept, stay_id: str, stay: _Stay, patient: _Patient,
               discharged_at: datetime | None) -> date | None:
    """Primary diagnosis at admission, comorbidities during the first day, a complication when it arises."""
    limit = min(discharged_at or world.horizon, world.horizon)
    recorded = world.clamp(stay.admitted_at + timedelta(minutes=rng.randint(30, 180)), stay.admitted_at)
    if discharged_at is not None:  # a death in the first night: the diagnosis is on record before it
        recorded = min(recorded, discharged_at - timedelta(minutes=1))
    rows = [[stay_id, 1, stay.case.icd10, stay.case.name, True, False, recorded, recorded]]
    age = (stay.admitted_at.date() - patient.birth).days / 365.25
    wanted = 0 if age < 40 else rng.choice((0, 1, 1, 2)) if age < 65 else rng.choice((1, 1, 2, 3))
    for code, name in rng.sample(_COMORBIDITIES, wanted):
        at = stay.admitted_at + timedelta(minutes=rng.randint(120, 20 * 60))
        if code != stay.case.icd10 and at < limit:
            rows.append([stay_id, len(rows) + 1, code, name, False, False, at, at])
    complication_day = None
    if stay.complication_day is not None:
        day = stay.admitted_at.date() + timedelta(days=stay.complication_day)
        at = max(_at(day, rng.randint(8 * 60, 20 * 60)), stay.admitted_at + timedelta(hours=1))
        if at < limit:
            options = _SURGICAL_COMPLICATIONS if stay.procedure else _MEDICAL_COMPLICATIONS
            code, name = rng.choice([o for o in options if o[0] != stay.case.icd10])
            rows.append([stay_id, len(rows) + 1, code, name, False, True, at, at])
            complication_day = day
    world.rows["diagnoses"].extend(rows)
    return complication_day


def _stay_charges(world: _World, rng: random.Random, dept: _Dept, stay_id: str, stay: _Stay,
                  discharged_at: datetime | None, surgery_day: date | None, complication_day: date | None) -> None:
    """Daily costs summed per category per calendar month of the stay; operation and complication extras."""
    first = stay.admitted_at.date()
    last = stay.discharge_day - timedelta(days=1) if discharged_at else world.end
    days = [first + timedelta(days=i) for i in range(max(1, (last - first).days + 1))]
    months: dict[date, int] = defaultdict(int)
    for day in days:
        months[day.replace(day=1)] += 1
    categories = ("drug", "consumables", "exam_lab", "medical_service")
    noise = {c: _lognormal(rng, 1.0, 0.25) for c in categories}
    amounts = {month: {c: rate * count * noise[c] for c, rate in zip(categories, dept.profile.daily_cost, strict=False)}
               for month, count in months.items()}
    final = max(amounts)
    target = world.jump_charges if stay_id in world.jump_stays else world.rows["charges"]
    if surgery_day is not None and stay.procedure is not None:
        extra = amounts.get(surgery_day.replace(day=1), amounts[final])
        extra["consumables"] += _lognormal(rng, stay.procedure.consumables, 0.2)
        extra["medical_service"] += _SURGERY_FEE[stay.procedure.grade] * rng.uniform(0.9, 1.2)
    if complication_day is not None:
        amounts.get(complication_day.replace(day=1), amounts[final])["drug"] += rng.uniform(1500, 6000)
    for month, by_category in sorted(amounts.items()):
        if month == final:
            charged = discharged_at - timedelta(minutes=rng.randint(10, 60)) if discharged_at \
                else _at(world.end, 23 * 60)
        else:
            charged = _at(_first_of_month(month, 1) - timedelta(days=1), 23 * 60)
        charged = world.clamp(charged, stay.admitted_at)
        for category in categories:
            target.append([world.next_id("charge", "C", 10), None, stay_id, dept.department_id,
                           category, _money(by_category[category]), charged, charged, charged])


# ===================================================================================== corrections


@dataclass(frozen=True)
class _CorrectionKind:
    table: str
    column: str
    event_column: str  # the row's own time: it must lie in a month before the correction
    condition: str
    change: Callable[[random.Random, object], dict[str, object]]


def _swap_disposition(rng: random.Random, old: object) -> dict[str, object]:
    return {"discharge_disposition": "transfer" if old == "home" else "home"}


def _recode_diagnosis(rng: random.Random, old: object) -> dict[str, object]:
    code, name = rng.choice([c for c in _COMORBIDITIES if c[0] != old])
    return {"icd10_code": code, "diagnosis_name": name}


def _regrade(rng: random.Random, old: object) -> dict[str, object]:
    return {"grade": int(old) + 1}  # type: ignore[call-overload]


def _adjust_amount(rng: random.Random, old: object) -> dict[str, object]:
    factor = rng.choice((rng.uniform(0.8, 0.95), rng.uniform(1.05, 1.2)))
    return {"amount_cny": _money(float(old) * factor)}  # type: ignore[arg-type]


def _new_phone(rng: random.Random, old: object) -> dict[str, object]:
    return {"phone": _mobile(rng)}


_CORRECTION_KINDS = (
    _CorrectionKind("inpatient_stays", "discharge_disposition", "discharged_at",
                    "discharge_disposition in ('home', 'transfer')", _swap_disposition),
    _CorrectionKind("diagnoses", "icd10_code", "created_at", "not is_primary and not is_complication",
                    _recode_diagnosis),
    _CorrectionKind("surgeries", "grade", "performed_at", "grade < 3", _regrade),
    _CorrectionKind("charges", "amount_cny", "charged_at", "true", _adjust_amount),
    _CorrectionKind("patients", "phone", "created_at", "phone is not null", _new_phone),
)


def _correct(conn: sa.Connection, rng: random.Random, kind: _CorrectionKind, at: datetime, count: int,
             salt: str, exclude: set[tuple[str, tuple]]) -> list[Correction]:
    """Correct `count` rows of past months (chosen by a seeded hash order, so reproducibly) at `at`."""
    table = TABLES[kind.table]
    keys = SOURCE.entity(kind.table).business_key
    key_sql = ", ".join(keys)
    candidates = conn.execute(sa.text(
        f"select {key_sql}, {kind.column} from {HIS_SCHEMA}.{kind.table} "
        f"where {kind.event_column} < :month_start and updated_at < :at and {kind.condition} "
        f"order by md5(concat_ws('|', {key_sql}, cast(:salt as text))) limit :limit"
    ), {"month_start": datetime.combine(at.date().replace(day=1), time()), "at": at, "salt": salt,
        "limit": count + len(exclude)}).all()
    corrections: list[Correction] = []
    for row in candidates:
        key, old = tuple(row[:-1]), row[-1]
        if (kind.table, key) in exclude or len(corrections) == count:
            continue
        changes = kind.change(rng, old)
        stamp = at + timedelta(minutes=rng.randrange(600))
        conn.execute(table.update().where(*(table.c[k] == v for k, v in zip(keys, key, strict=False)))
                     .values(**changes, updated_at=stamp))
        exclude.add((kind.table, key))
        corrections.append(Correction(kind.table, key, kind.column, old, changes[kind.column], stamp))
    return corrections


def _correct_all(conn: sa.Connection, seed: int, day: date, per_kind: int,
                 exclude: set[tuple[str, tuple]]) -> list[Correction]:
    rng = _rng(seed, "corrections", day.isoformat())
    at = datetime.combine(day, time(9))
    corrections: list[Correction] = []
    for kind in _CORRECTION_KINDS:
        corrections += _correct(conn, rng, kind, at, per_kind, f"{seed}|{day.isoformat()}|{kind.table}", exclude)
    return corrections


def apply_late_corrections(url: str, on: date, *, seed: int = DEFAULT_SEED, per_kind: int = 2) -> list[Correction]:
    """Correct a few rows of months before `on`'s month during `on` (09:00–19:00), as a HIS does days later.

    Per kind (stay disposition, secondary diagnosis code, surgery grade, charge amount, patient
    phone) `per_kind` rows; returns what changed. Deterministic for the database state, `on` and `seed`.
    """
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            corrections = _correct_all(conn, seed, on, per_kind, set())
    finally:
        engine.dispose()
    log.info("HIS late corrections on %s: %d rows", on, len(corrections))
    return corrections


def _history_corrections(conn: sa.Connection, world: _World, per_kind: int) -> list[Correction]:
    """Corrections inside the history: every 11 days from the second month on, of earlier months' rows."""
    corrections: list[Correction] = []
    exclude: set[tuple[str, tuple]] = set()
    day = _first_of_month(world.start, 1) + timedelta(days=7)
    while day <= world.end:
        corrections += _correct_all(conn, world.seed, day, per_kind, exclude)
        day += timedelta(days=11)
    return corrections


# ===================================================================================== generate


def generate_his(
    url: str,
    *,
    end: date,
    months: int = DEFAULT_MONTHS,
    hospitals: int = DEFAULT_HOSPITALS,
    seed: int = DEFAULT_SEED,
    scale: float = 1.0,
    corrections_per_kind: int = 2,
) -> HisGenerationResult:
    """Fill the empty HIS database at `url` with `months` months of a consortium's activity up to `end`.

    `scale` multiplies beds and outpatient volume. The defaults (six months, three hospitals, scale
    1.0) give about 165,000 visits, 19,000 stays and 480,000 charge rows in some 15 s; `months=2,
    hospitals=2, scale=0.12` gives a few thousand rows in under a second. `corrections_per_kind` is how
    many rows of each correction kind are corrected at each correction moment (every 11 days).

    The rows are written month by month as the simulation reaches each month's end (one transaction
    for the whole history), so memory holds one month's rows and the simulation's state (patients,
    bed census), not the history: it does not grow with the rows written.
    """
    if not 1 <= hospitals <= MAX_HOSPITALS:
        raise HisGenerationError(f"hospitals must be 1..{MAX_HOSPITALS}, got {hospitals}")
    if months < 1 or scale <= 0:
        raise HisGenerationError(f"months must be ≥ 1 and scale > 0 (got months={months}, scale={scale})")
    started = stopwatch.perf_counter()
    create_his_database(url)
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            _require_empty(conn)
            world = _simulate(seed, end, months, hospitals, scale, lambda rows: _copy_rows(conn, rows))
            corrections = _history_corrections(conn, world, corrections_per_kind)
    finally:
        engine.dispose()
    counts = dict(world.written)
    facts: dict[str, object] = {"horizon": world.horizon, "corrections": corrections, **dict(world.facts),
                                "cost_jump": world.cost_jump}
    result = HisGenerationResult(_safe_url(url), world.start, end, seed, counts, facts,
                                 round(stopwatch.perf_counter() - started, 1))
    log.info("HIS generated %s..%s (%d hospitals, seed %d) in %.1fs: %s; %d corrections", world.start, end, hospitals,
             seed, result.seconds, ", ".join(f"{k} {v}" for k, v in counts.items()), len(corrections))
    return result


def _simulate(seed: int, end: date, months: int, hospitals: int, scale: float,
              write: Callable[[dict[str, list[list[object]]]], None]) -> _World:
    """Simulate day by day, handing each month's rows to `write` when the month is over."""
    world = _World(seed, end, months, hospitals, scale)
    _master_data(world)
    _initial_census(world)
    for day in world.days:
        for dept in world.departments:
            dept.today = [d for d in dept.doctors if d.active(day)]
        _outpatient_day(world, day)
        _inpatient_day(world, day)
        _end_of_day(world)
        if (day + timedelta(days=1)).day == 1 and day != world.end:
            world.flush(write)
    _plant_cost_jump(world)
    world.flush(write)
    return world


def _plant_cost_jump(world: _World) -> None:
    """The planted DRG cost jump 病种费用突增: every charge of the stays of one department discharged
    in the cost-jump month is COST_JUMP_FACTOR times its amount. The department is the one whose most
    frequent primary diagnosis had the most discharges that month (so that its main DRG group has
    cases enough to be judged). No random draw: the rest of the data is as without the plant.

    Those stays' charges were held back (`_World.jump_charges`) since the stays were admitted; they
    join the last rows written."""
    if world.jump_cells:
        (department, _), _ = max(world.jump_cells.items(), key=lambda cell: (cell[1], cell[0]))
        stays = {stay for stay, dept in world.jump_stays.items() if dept == department}
        charge_columns = [c.name for c in TABLES["charges"].columns]
        csid, amount = charge_columns.index("stay_id"), charge_columns.index("amount_cny")
        for row in world.jump_charges:
            if row[csid] in stays:
                row[amount] = (row[amount] * COST_JUMP_FACTOR).quantize(Decimal("0.01"))  # type: ignore[operator]
        world.cost_jump.update({"department_id": department, "stays": len(stays)})
    world.rows["charges"].extend(world.jump_charges)
    world.jump_charges = []
