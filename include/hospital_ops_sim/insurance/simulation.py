"""Synthetic medical-insurance settlement files 医保结算 built from the simulated HIS.

`generate_insurance(his_url, inbox_dir, end=…)` reads the discharged inpatient stays of the simulated
HIS (`hospital_ops_sim.his`; read-only) with their primary and secondary diagnoses, surgeries and
charge totals, settles them the way a medical-insurance platform does, and writes what the platform
sends, in the formats of `hospital_ops.sources.insurance.SOURCE`:

    <inbox>/insurance/<YYYY-MM-DD>/settlement_<YYYY-MM-DD>.csv        cases settled that day
    <inbox>/insurance/<first folder>/drg_catalogue_CHS-DRG-1.1-<Y>.csv the catalogue of the first year
    <inbox>/insurance/<Y+1>-01-01/drg_catalogue_CHS-DRG-1.1-<Y+1>.csv  a new version for each new year
    <inbox>/insurance/_scenarios.json                                  what was planted, for humans/tests

Grouping 分组. Each case is grouped by a small curated grouper (`assign_drg`): an operated case goes to
the surgical ADRG of its main procedure (ICD-9-CM-3), any other case to the medical ADRG of its
primary diagnosis (ICD-10; an unlisted code falls back to its chapter's "other" ADRG). The final digit
follows the secondary diagnoses: one on the MCC list → 1, on the CC list → 3, none → 5, taking the
nearest split the ADRG has (an ADRG split only into 1/5 puts a CC case in 5; one split 3/5 puts an MCC
case in 3; an unsplit ADRG is 9), as CHS-DRG does. A secondary diagnosis in the same ICD-10 category as
the primary one does not count (a rough stand-in for the CC exclusion table). Every code the grouper
can produce is a real CHS-DRG 1.1 group with its real name (the tests check this against the
published catalogue) — but the grouping logic is a sketch, not the national grouper.

Weights, payment, points. The catalogue of year Y gives every group settled in Y its relative weight
RW = the group's mean case cost / the mean cost of all cases settled in Y (so the case-weighted mean RW
is 1 and RW can be recomputed exactly from the files; a real catalogue is computed from earlier years'
regional data — a simplification). The base rate 费率 of Y is set per insurance type from that
year's mean cost (`BASE_RATE_FACTORS`: the employee fund pays above the mean, the poorer resident fund
below), so a case's DRG payment standard is RW × base rate of its insurance type. The patient pays a
share of the actual cost (`COPAY_RATES`) and the fund pays the hospital the standard minus what the
patient paid (never below zero):

    patient_copay_cny   = case_cost × copay rate (insurance type)
    insurer_payment_cny = max(RW × base rate (insurance type) − patient_copay_cny, 0)
    profit or loss      = insurer_payment_cny + patient_copay_cny − case_cost_cny

Children are insured as residents, so paediatric groups tend to lose and employee-heavy adult groups
to gain. DIP points = RW × 100 (the DIP group `dip_group` is the primary ICD-10 code, with `:` and
the main procedure code for an operated case); a DIP payment would be points × the year's point value.

Timing. A case settles 3–15 days after discharge (`SETTLEMENT_LAG_DAYS`); what would settle after
`end` is not written yet (`pending`). A share of stays are self-paying (no settlement). Each
settlement's version is the catalogue of its `settled_on` year.

Planted on top (all recorded in the result's facts and `_scenarios.json`):
- unmatched stays: `unmatched_share` of the settlements carry a stay_id the HIS does not have (a
  mis-keyed id, never another real stay), to show that the share that does not join is reported;
- `gbk_share` of the settlement files are GB18030 (GBK) encoded;
- defects on other cases: duplicated lines, blank strings (in an optional column: a NULL; in
  insurance_type: quarantined), dates in other formats (2026/01/05, 20260105, 2026年1月5日) and one
  implausible negative insurer payment (quarantined).

Same arguments and the same HIS give byte-identical files: every random draw comes from a
`random.Random` seeded from `seed` and a purpose (per stay where it concerns one stay).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import sqlalchemy as sa

from hospital_ops.sources.insurance import SOURCE
from hospital_ops.sources.spec import Entity
from hospital_ops_sim import SCENARIO_FILE, prepare_source_dir
from hospital_ops_sim.his import HIS_SCHEMA
from hospital_ops_sim.insurance.grouper import ADRGS, SURGICAL_ADRG, assign_drg, check_grouper

log = logging.getLogger(__name__)

DEFAULT_SEED = 20260301
CATALOGUE_RELEASE = "CHS-DRG-1.1"

SETTLEMENT_LAG_DAYS = (3, 15)  # a case settles this many days after discharge (inclusive)
SELF_PAY_SHARE = 0.03  # discharged stays without insurance: never settled
CHILD_AGE = 18  # children are insured as residents 城乡居民
ADULT_EMPLOYEE_SHARE = 0.62  # adults insured as employees 城镇职工 (incl. retirees)
BASE_RATE_FACTORS = {"employee": Decimal("1.06"), "resident": Decimal("0.90")}  # × the year's mean cost
COPAY_RATES = {"employee": Decimal("0.15"), "resident": Decimal("0.30")}  # patient's share of the cost
DIP_POINTS_PER_RW = 100

# defects: share of settlement rows (at least one of each when there are enough cases)
_DUPLICATE_SHARE = 0.004
_BLANK_OPTIONAL_SHARE = 0.005
_MIXED_DATE_SHARE = 0.05
_DATE_FORMATS = ("{d:%Y/%m/%d}", "{d:%Y%m%d}", "{d.year}年{d.month}月{d.day}日")

_CENT = Decimal("0.01")
_RW_PLACES = 4

# ==================================================================================== result


@dataclass
class InsuranceGenerationResult:
    """What was written, and the facts tests and humans need to find what was planted."""

    inbox_dir: Path
    end: date
    seed: int
    counts: dict[str, int]
    facts: dict[str, object] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def unmatched_case_ids(self) -> list[str]:
        return sorted(self.facts["unmatched"])  # type: ignore[arg-type]

    @property
    def gbk_files(self) -> list[str]:
        return list(self.facts["gbk_files"])  # type: ignore[arg-type]

    @property
    def expected_quarantined(self) -> int:
        """Rows the loader must quarantine: duplicated lines, blank insurance_type, negative payment."""
        defects = self.facts["defects"]
        return sum(len(defects[kind]) for kind in ("duplicate_line", "blank_required", "negative_payment"))  # type: ignore[index]


# ==================================================================================== reading the HIS


@dataclass
class HisStay:
    """A discharged HIS stay with what settlement needs."""

    stay_id: str
    hospital_id: str
    admitted_on: date
    discharged_on: date
    birth_date: date | None
    primary: str | None = None
    secondaries: list[str] = field(default_factory=list)
    procedures: list[str] = field(default_factory=list)  # main (highest grade, then first) first
    cost: Decimal = Decimal("0.00")


def read_his(his_url: str) -> tuple[list[HisStay], set[str]]:
    """Discharged stays (ordered by stay_id) and the ids of all stays, in one read-only transaction."""
    engine = sa.create_engine(his_url)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("set transaction read only")
            return _read_stays(conn)
    finally:
        engine.dispose()


def _read_stays(conn: sa.Connection) -> tuple[list[HisStay], set[str]]:
    schema = HIS_SCHEMA
    all_ids = {row[0] for row in conn.execute(sa.text(f"select stay_id from {schema}.inpatient_stays"))}
    stays = {row.stay_id: HisStay(row.stay_id, row.hospital_id, row.admitted_at.date(), row.discharged_at.date(),
                                  row.birth_date)
             for row in conn.execute(sa.text(
                 f"select s.stay_id, d.hospital_id, s.admitted_at, s.discharged_at, p.birth_date "
                 f"from {schema}.inpatient_stays s join {schema}.departments d using (department_id) "
                 f"left join {schema}.patients p using (patient_id) "
                 f"where s.discharged_at is not null order by s.stay_id"))}
    for row in conn.execute(sa.text(f"select stay_id, icd10_code, is_primary from {schema}.diagnoses "
                                    f"order by stay_id, seq_no")):
        stay = stays.get(row.stay_id)
        if stay is None:
            continue
        if row.is_primary and stay.primary is None:
            stay.primary = row.icd10_code
        else:
            stay.secondaries.append(row.icd10_code)
    for row in conn.execute(sa.text(f"select stay_id, procedure_code from {schema}.surgeries "
                                    f"order by stay_id, grade desc, performed_at, surgery_id")):
        if row.stay_id in stays:
            stays[row.stay_id].procedures.append(row.procedure_code)
    for row in conn.execute(sa.text(f"select stay_id, sum(amount_cny) as cost from {schema}.charges "
                                    f"where stay_id is not null group by stay_id")):
        if row.stay_id in stays:
            stays[row.stay_id].cost = Decimal(row.cost).quantize(_CENT)
    return list(stays.values()), all_ids


# ==================================================================================== settling


@dataclass
class Settlement:
    """One settled case, true values (defects are applied only when rows are written)."""

    case_id: str
    stay_id: str  # as sent: a mis-keyed id for an unmatched case
    true_stay_id: str
    hospital_id: str
    insurance_type: str
    settled_on: date
    discharge_date: date
    drg_code: str
    drg_name: str
    dip_group: str
    case_cost: Decimal
    los_days: int
    relative_weight: Decimal = Decimal(0)
    insurer_payment: Decimal = Decimal(0)
    patient_copay: Decimal = Decimal(0)

    @property
    def version(self) -> str:
        return catalogue_version(self.settled_on.year)

    @property
    def dip_points(self) -> Decimal:
        return (self.relative_weight * DIP_POINTS_PER_RW).quantize(_CENT)

    def cells(self) -> dict[str, str]:
        return {
            "case_id": self.case_id, "stay_id": self.stay_id, "hospital_id": self.hospital_id,
            "insurance_type": self.insurance_type, "settled_on": self.settled_on.isoformat(),
            "discharge_date": self.discharge_date.isoformat(), "drg_code": self.drg_code, "drg_name": self.drg_name,
            "relative_weight": str(self.relative_weight), "dip_group": self.dip_group,
            "dip_points": str(self.dip_points), "insurer_payment_cny": str(self.insurer_payment),
            "patient_copay_cny": str(self.patient_copay), "case_cost_cny": str(self.case_cost),
            "los_days": str(self.los_days),
        }


def catalogue_version(year: int) -> str:
    return f"{CATALOGUE_RELEASE}-{year}"


def _rng(seed: int, *purpose: object) -> random.Random:
    """An independent, reproducible stream per purpose (str seeds hash with SHA-512, not PYTHONHASHSEED)."""
    return random.Random("|".join(str(part) for part in ("insurance", seed, *purpose)))


def _age(birth: date | None, on: date) -> int | None:
    if birth is None:
        return None
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def _insurance_type(rng: random.Random, stay: HisStay) -> str:
    age = _age(stay.birth_date, stay.admitted_on)
    if age is not None and age < CHILD_AGE:
        return "resident"
    return "employee" if rng.random() < ADULT_EMPLOYEE_SHARE else "resident"


def _settle(stays: Sequence[HisStay], *, end: date, seed: int, self_pay_share: float,
            facts: dict) -> list[Settlement]:
    """The cases settled by `end`, in (settled_on, hospital, stay) order, with case ids."""
    drafts: list[tuple[date, HisStay, str]] = []
    for stay in stays:
        rng = _rng(seed, "stay", stay.stay_id)
        lag = rng.randint(*SETTLEMENT_LAG_DAYS)
        insured = rng.random() >= self_pay_share
        insurance_type = _insurance_type(rng, stay)
        if stay.primary is None:
            facts["ungroupable"].append(stay.stay_id)
            continue
        if not insured:
            facts["self_pay"].append(stay.stay_id)
            continue
        settled_on = stay.discharged_on + timedelta(days=lag)
        if settled_on > end:
            facts["pending"].append(stay.stay_id)
            continue
        drafts.append((settled_on, stay, insurance_type))
    drafts.sort(key=lambda d: (d[0], d[1].hospital_id, d[1].stay_id))
    settlements: list[Settlement] = []
    sequence: dict[tuple[str, date], int] = defaultdict(int)
    for settled_on, stay, insurance_type in drafts:
        sequence[(stay.hospital_id, settled_on)] += 1
        code, name = assign_drg(stay.primary, stay.secondaries, stay.procedures)  # type: ignore[arg-type]
        operated = next((p for p in stay.procedures if SURGICAL_ADRG.get(p)), None)
        settlements.append(Settlement(
            case_id=f"{stay.hospital_id}JS{settled_on:%Y%m%d}{sequence[(stay.hospital_id, settled_on)]:04d}",
            stay_id=stay.stay_id, true_stay_id=stay.stay_id, hospital_id=stay.hospital_id,
            insurance_type=insurance_type, settled_on=settled_on, discharge_date=stay.discharged_on,
            drg_code=code, drg_name=name, dip_group=f"{stay.primary}:{operated}" if operated else stay.primary,
            case_cost=stay.cost, los_days=max(1, (stay.discharged_on - stay.admitted_on).days),
        ))
    return settlements


def _round_half_up(value: Fraction, places: int) -> Decimal:
    scaled = math.floor(value * 10 ** places + Fraction(1, 2))
    return Decimal(scaled).scaleb(-places)


def relative_weights(costs_by_group: dict[str, list[Decimal]]) -> dict[str, Decimal]:
    """RW per group = group mean cost / mean cost of all cases, exact, rounded half up to 4 places."""
    total = sum((sum(costs, Decimal(0)) for costs in costs_by_group.values()), Decimal(0))
    cases = sum(len(costs) for costs in costs_by_group.values())
    if cases == 0 or total <= 0:
        raise ValueError("relative weights need cases with a positive total cost")
    overall = Fraction(total) / cases
    return {code: _round_half_up(Fraction(sum(costs, Decimal(0))) / len(costs) / overall, _RW_PLACES)
            for code, costs in sorted(costs_by_group.items())}


def _base_rates(costs: Sequence[Decimal]) -> dict[str, Decimal]:
    mean = sum(costs, Decimal(0)) / len(costs)
    return {kind: ((mean * factor) / 10).quantize(Decimal(1)) * 10 for kind, factor in BASE_RATE_FACTORS.items()}


def _price(settlements: Sequence[Settlement], facts: dict) -> dict[str, dict[str, Decimal]]:
    """Weights per catalogue version, then each case's RW, copay and insurer payment."""
    by_version: dict[str, dict[str, list[Decimal]]] = defaultdict(lambda: defaultdict(list))
    for case in settlements:
        by_version[case.version][case.drg_code].append(case.case_cost)
    weights = {version: relative_weights(groups) for version, groups in sorted(by_version.items())}
    base_rates = {version: _base_rates([c for costs in groups.values() for c in costs])
                  for version, groups in sorted(by_version.items())}
    for case in settlements:
        case.relative_weight = weights[case.version][case.drg_code]
        standard = (case.relative_weight * base_rates[case.version][case.insurance_type]).quantize(_CENT)
        case.patient_copay = (case.case_cost * COPAY_RATES[case.insurance_type]).quantize(_CENT)
        case.insurer_payment = max(standard - case.patient_copay, Decimal("0.00"))
        if case.insurer_payment == 0:
            facts["zero_payment"].append(case.case_id)
    facts["base_rates"] = {v: {k: str(r) for k, r in rates.items()} for v, rates in base_rates.items()}
    return weights


def _plant_unmatched(settlements: Sequence[Settlement], his_ids: set[str], share: float,
                     rng: random.Random) -> dict[str, dict[str, str]]:
    """Give `share` of the cases a stay id the HIS does not have (a mis-keyed id)."""
    count = round(share * len(settlements))
    chosen = sorted(rng.sample(range(len(settlements)), count))
    planted: dict[str, dict[str, str]] = {}
    taken = set(his_ids)
    for index in chosen:
        case = settlements[index]
        case.stay_id = _miskeyed(case.true_stay_id, taken, rng)
        taken.add(case.stay_id)
        planted[case.case_id] = {"stay_id_sent": case.stay_id, "stay_id_true": case.true_stay_id}
    return planted


def _miskeyed(stay_id: str, taken: set[str], rng: random.Random) -> str:
    """A typo of `stay_id` (two adjacent digits swapped, or one digit changed) that names no HIS stay."""
    digits = [i for i, ch in enumerate(stay_id) if ch.isdigit()]
    for _ in range(200):
        chars = list(stay_id)
        i = rng.choice(digits)
        if i + 1 in digits and chars[i] != chars[i + 1] and rng.random() < 0.5:
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
        else:
            chars[i] = rng.choice([d for d in "0123456789" if d != chars[i]])
        candidate = "".join(chars)
        if candidate not in taken:
            return candidate
    raise RuntimeError(f"cannot find a free mis-keyed variant of stay id {stay_id!r}")


# ==================================================================================== writing


@dataclass
class _File:
    folder: date
    name: str
    entity: Entity
    rows: list[list[str]]
    encoding: str = "utf-8"

    @property
    def relative_path(self) -> str:
        return f"{SOURCE.name}/{self.folder.isoformat()}/{self.name}"


def _settlement_files(settlements: Sequence[Settlement]) -> dict[date, list[dict[str, str]]]:
    by_day: dict[date, list[dict[str, str]]] = defaultdict(list)
    for case in settlements:
        by_day[case.settled_on].append(case.cells())
    return dict(sorted(by_day.items()))


def _plant_defects(files: dict[date, list[dict[str, str]]], unmatched: set[str],
                   rng: random.Random) -> dict[str, list[dict[str, object]]]:
    """Modify cells in place and mark duplicated lines; return what was planted where."""
    where = {cells["case_id"]: day for day, rows in files.items() for cells in rows}
    candidates = sorted(case_id for case_id in where if case_id not in unmatched)
    cases = len(where)
    wanted = {
        "duplicate_line": max(1, round(_DUPLICATE_SHARE * cases)),
        "blank_optional": max(1, round(_BLANK_OPTIONAL_SHARE * cases)),
        "mixed_date_format": max(1, round(_MIXED_DATE_SHARE * cases)),
        "blank_required": 1,
        "negative_payment": 1,
    }
    cells_of = {cells["case_id"]: cells for rows in files.values() for cells in rows}
    # a negative payment needs a positive one to negate ("-0.00" is not below zero)
    paid = [case_id for case_id in candidates if Decimal(cells_of[case_id]["insurer_payment_cny"]) > 0]
    negative = rng.sample(paid, min(len(paid), wanted["negative_payment"]))
    pool = rng.sample([c for c in candidates if c not in negative],
                      min(len(candidates) - len(negative), sum(wanted.values()) - wanted["negative_payment"]))
    planted: dict[str, list[dict[str, object]]] = {kind: [] for kind in wanted}
    for kind, count in wanted.items():
        if kind == "negative_payment":
            chosen = sorted(negative)
        else:
            chosen, pool = sorted(pool[:count]), pool[count:]
        for case_id in chosen:
            cells = cells_of[case_id]
            record: dict[str, object] = {"case_id": case_id,
                                         "file": f"{SOURCE.name}/{where[case_id].isoformat()}/"
                                                 f"{_settlement_name(where[case_id])}"}
            if kind == "duplicate_line":
                cells["_duplicate"] = "1"
            elif kind == "blank_optional":
                column = rng.choice(("drg_name", "dip_group"))
                cells[column] = rng.choice(("", " ", "  "))
                record["column"] = column
            elif kind == "blank_required":
                cells["insurance_type"] = " "
                record["column"] = "insurance_type"
            elif kind == "negative_payment":
                cells["insurer_payment_cny"] = f"-{cells['insurer_payment_cny']}"
                record["value"] = cells["insurer_payment_cny"]
            else:
                fmt = rng.choice(_DATE_FORMATS)
                for column in ("settled_on", "discharge_date"):
                    cells[column] = fmt.format(d=date.fromisoformat(cells[column]))
                record["settled_on"] = cells["settled_on"]
            planted[kind].append(record)
    return planted


def _settlement_name(day: date) -> str:
    return f"settlement_{day.isoformat()}.csv"


def _catalogue_files(settlements: Sequence[Settlement], weights: dict[str, dict[str, Decimal]],
                     first_folder: date) -> list[_File]:
    entity = SOURCE.entity("drg_catalogue")
    names = {case.drg_code: ADRGS[case.drg_code[:3]].drg_name(case.drg_code) for case in settlements}
    files: list[_File] = []
    for version, groups in weights.items():
        year = int(version.rsplit("-", 1)[1])
        folder = max(first_folder, date(year, 1, 1))
        rows = [[version, str(year), code, names[code], code[0], code[:3], str(rw), ""]
                for code, rw in sorted(groups.items())]
        files.append(_File(folder, f"drg_catalogue_{version}.csv", entity, rows))
    return files


def _rows_of(cells_list: Sequence[dict[str, str]], entity: Entity) -> list[list[str]]:
    rows: list[list[str]] = []
    for cells in sorted(cells_list, key=lambda c: c["case_id"]):
        row = [cells[column.name] for column in entity.columns]
        rows.append(row)
        if cells.get("_duplicate"):
            rows.append(list(row))
    return rows


def _write(files: Sequence[_File], source_dir: Path) -> int:
    rows = 0
    for file in files:
        folder = source_dir / file.folder.isoformat()
        folder.mkdir(exist_ok=True)
        with (folder / file.name).open("w", encoding=file.encoding, newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow([c.name for c in file.entity.columns])
            writer.writerows(file.rows)
        rows += len(file.rows)
    return rows


def _group_totals(settlements: Sequence[Settlement]) -> dict[str, dict[str, dict[str, str | int]]]:
    totals: dict[str, dict[str, dict[str, Decimal | int]]] = defaultdict(dict)
    for case in settlements:
        group = totals[case.version].setdefault(case.drg_code, {
            "cases": 0, "cost_cny": Decimal(0), "insurer_payment_cny": Decimal(0),
            "patient_copay_cny": Decimal(0), "relative_weight": case.relative_weight})
        group["cases"] += 1  # type: ignore[operator]
        group["cost_cny"] += case.case_cost  # type: ignore[operator]
        group["insurer_payment_cny"] += case.insurer_payment  # type: ignore[operator]
        group["patient_copay_cny"] += case.patient_copay  # type: ignore[operator]
    return {version: {code: {key: value if isinstance(value, int) else str(value) for key, value in group.items()}
                      for code, group in sorted(groups.items())}
            for version, groups in sorted(totals.items())}


# ==================================================================================== public API


def generate_insurance(
    his_url: str,
    inbox_dir: Path,
    *,
    end: date,
    seed: int = DEFAULT_SEED,
    unmatched_share: float = 0.02,
    gbk_share: float = 0.2,
    self_pay_share: float = SELF_PAY_SHARE,
) -> InsuranceGenerationResult:
    """Settle the discharged stays of the simulated HIS at `his_url` and write the platform's files
    for every settlement day up to `end` into `<inbox_dir>/insurance/`.

    Raises ValueError for a share outside [0, 1) and when the HIS has no stay to settle by `end`.
    """
    for name, share in (("unmatched_share", unmatched_share), ("gbk_share", gbk_share),
                        ("self_pay_share", self_pay_share)):
        if not 0 <= share < 1:
            raise ValueError(f"{name} must be in [0, 1), got {share}")
    check_grouper()
    began = time.perf_counter()
    stays, his_ids = read_his(his_url)
    facts: dict[str, object] = {"ungroupable": [], "self_pay": [], "pending": [], "zero_payment": []}
    settlements = _settle(stays, end=end, seed=seed, self_pay_share=self_pay_share, facts=facts)
    if not settlements:
        raise ValueError(f"no discharged HIS stay settles by {end} (HIS has {len(stays)} discharged stays)")
    facts["unmatched"] = _plant_unmatched(settlements, his_ids, unmatched_share, _rng(seed, "unmatched"))
    weights = _price(settlements, facts)

    by_day = _settlement_files(settlements)
    facts["defects"] = _plant_defects(by_day, set(facts["unmatched"]), _rng(seed, "defects"))  # type: ignore[arg-type]
    entity = SOURCE.entity("settlements")
    files = [_File(day, _settlement_name(day), entity, _rows_of(cells, entity)) for day, cells in by_day.items()]
    gbk_count = min(len(files), max(1, round(gbk_share * len(files)))) if gbk_share > 0 else 0
    for index in sorted(_rng(seed, "encodings").sample(range(len(files)), gbk_count)):
        files[index].encoding = "gb18030"
    catalogues = _catalogue_files(settlements, weights, first_folder=files[0].folder)

    source_dir = Path(inbox_dir) / SOURCE.name
    prepare_source_dir(source_dir)
    rows_written = _write([*catalogues, *files], source_dir)
    facts.update({
        "gbk_files": [f.relative_path for f in files if f.encoding != "utf-8"],
        "catalogue_files": {f.name[len("drg_catalogue_"):-len(".csv")]: f.relative_path for f in catalogues},
        "groups": _group_totals(settlements),
        "settlement_days": [files[0].folder.isoformat(), files[-1].folder.isoformat()],
    })
    counts = {
        "his_discharged_stays": len(stays), "settlements": len(settlements), "settlement_files": len(files),
        "catalogue_files": len(catalogues), "catalogue_rows": sum(len(f.rows) for f in catalogues),
        "rows_written": rows_written, "gbk_files": gbk_count, "unmatched": len(facts["unmatched"]),  # type: ignore[arg-type]
        **{name: len(facts[name]) for name in ("self_pay", "pending", "ungroupable", "zero_payment")},  # type: ignore[arg-type]
    }
    result = InsuranceGenerationResult(Path(inbox_dir), end, seed, counts, facts,
                                       round(time.perf_counter() - began, 2))
    (source_dir / SCENARIO_FILE).write_text(
        json.dumps({"seed": seed, "end": end.isoformat(), "counts": counts, **facts}, ensure_ascii=False,
                   indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    log.info("insurance source up to %s: %d settlements in %d files (%d GBK), %d catalogue versions, "
             "%d unmatched stay ids, in %.1fs into %s", end, len(settlements), len(files), gbk_count,
             len(catalogues), counts["unmatched"], result.seconds, source_dir)
    return result
