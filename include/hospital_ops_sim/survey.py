"""Synthetic survey and service-centre platform data 满意度/客服, built on the simulated HIS.

`generate_survey(his_url, out_file, end=…)` reads the simulated HIS (`hospital_ops_sim.his`,
read-only: hospitals, departments, patients, outpatient visits, inpatient stays) and writes the records
the survey platform holds, as the JSON file `SurveyApiServer.from_file` serves
(`hospital_ops_sim.survey_api`), with what was planted in `_scenarios` beside them:

- questionnaires 问卷 after a share of outpatient visits (`outpatient`) and discharges (`inpatient`),
  submitted 1–72 h later by the visit's patient (national ID and phone from the HIS) about the visit's
  hospital and department; and `vendor_service` questionnaires about the patient-facing third-party
  vendors (ids and service types from `hospital_ops_sim.vendor.planned_vendors`), `vendor_sample` per vendor
  and month, from that month's outpatient visits;
- answers 答案 per questionnaire: one score 1–5 per service stage 服务环节 and dimension 评分维度, with
  the platform's `satisfied` flag (score ≥ 4);
- complaints 投诉 per department and month, moving through received → handled → tracked → feedback
  (the record's `updated_at` is its latest step; a complaint still open at `end` stops where it is);
- follow-ups 随访 of a share of discharges, scheduled 7 days after discharge;
- window ratings 窗口评价 at the registration, payment, pharmacy and inquiry windows of every hospital.

The satisfied share of answers is planted exactly per cell (hospital department × month of the visit
date, and vendor × month for vendor-served questionnaires): k satisfied answers out of the cell's n,
k = round(n × rate), so a scenario's magnitude can be recomputed from the records.

Planted (in `_scenarios`), "latest month" being the last full month before `end`'s month:
- `department_satisfaction_drop`: one clinical department of the lead hospital falls from the usual
  ~92% to 70% satisfied in the latest month;
- `complaint_spike`: one department receives five times its usual complaints in the latest month
  (exactly 5 × the usual monthly mean rounded up; other months are Poisson around that mean);
- `vendor_satisfaction_below_80`: the vendor generator's `satisfaction_low` vendor (its self-reported
  service reports say 75%) also scores 74% in the hospital's own survey in the last two full months;
- `vendor_satisfaction_below_70`: the `related_party` cleaning vendor, whose self-reported service
  reports look healthy (~92%), scores 62% in the hospital's survey in the latest month.
  The two measures are kept apart on purpose: `vendor__service_reports.patients_surveyed/satisfied` is
  what the vendor declares, the survey is what the hospital measured; a mart may show both and flag
  a vendor whose declaration is far above the hospital's measurement.
- defects: comments and complaint descriptions with phone and national-ID numbers (scrubbed by the
  extractor), and one answer with an out-of-range score (quarantined by the loader).

Same arguments and the same HIS give the same file: every random draw comes from a `random.Random`
seeded from `seed` and a purpose.
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from hospital_ops_sim import month_start
from hospital_ops_sim.his import HIS_SCHEMA
from hospital_ops_sim.vendor import PATIENT_FACING_SERVICE_TYPES, planned_vendors

log = logging.getLogger(__name__)

HOSPITAL_TZ = ZoneInfo("Asia/Shanghai")
SCENARIO_KEY = "_scenarios"
HEALTHY_SATISFACTION = 0.92
DEPARTMENT_DROP_RATE = 0.70
VENDOR_BELOW_80_RATE = 0.74
VENDOR_BELOW_70_RATE = 0.62
COMPLAINT_SPIKE_FACTOR = 5
SATISFIED_MIN_SCORE = 4  # the platform's rule for the satisfied flag

_STAGES = {
    "outpatient": (("registration", ("waiting_time", "attitude")), ("consultation", ("professionalism", "communication")),
                   ("examination", ("waiting_time",)), ("payment", ("waiting_time",)), ("pharmacy", ("attitude",))),
    "inpatient": (("admission", ("waiting_time", "attitude")), ("nursing", ("attitude", "professionalism")),
                  ("consultation", ("communication", "professionalism")), ("discharge", ("communication",)),
                  ("nursing", ("environment",))),
    "vendor_service": (("third_party_service", ("attitude", "professionalism", "waiting_time")),),
}
_GOOD_COMMENTS = ("医生很耐心，解释得很清楚", "护士服务态度好", "环境干净整洁", "流程顺畅，等候时间短", "导医热情")
_BAD_COMMENTS = ("排队时间太长", "医生问诊太匆忙", "收费窗口态度差", "检查预约要等好几天", "病房卫生需要改进")
_COMPLAINT_TEXTS = {
    "attitude": "工作人员态度生硬", "waiting_time": "候诊时间超过两小时", "medical_quality": "对诊疗效果有异议",
    "billing": "收费明细与实际不符", "environment": "卫生间不清洁", "third_party_service": "导医/保洁人员服务不到位",
}
_WINDOWS = (("registration", "MEDA"), ("payment", "FINA"), ("pharmacy", "PHAR"), ("inquiry", "MEDA"))
_MOBILE = ("138", "139", "186", "135", "152")


class SurveyGenerationError(RuntimeError):
    """The survey data cannot be generated as asked (bad arguments, an empty HIS)."""


@dataclass
class SurveyGenerationResult:
    out_file: Path
    start: date
    end: date
    counts: dict[str, int]
    scenarios: dict[str, object] = field(default_factory=dict)


def _rng(seed: int, *purpose: object) -> random.Random:
    return random.Random("|".join(str(part) for part in ("survey", seed, *purpose)))


def _iso(value: datetime) -> str:
    """An API timestamp: ISO 8601 with the hospital's +08:00 offset, to the second."""
    return value.replace(microsecond=0, tzinfo=HOSPITAL_TZ).isoformat()


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    limit, k, product = math.exp(-lam), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


# ------------------------------------------------------------------------------------ the HIS


@dataclass
class _His:
    hospitals: list[str]
    departments: dict[str, tuple[str, str, str]]  # id -> (hospital_id, code, kind)
    patients: dict[str, tuple[str | None, str | None]]  # id -> (national_id, phone)
    visits: list[tuple[str, str, datetime]]  # (patient_id, department_id, visit_at)
    discharges: list[tuple[str, str, datetime]]  # (patient_id, department_id, discharged_at)


def _read_his(his_url: str, start: datetime, horizon: datetime) -> _His:
    engine = sa.create_engine(his_url)
    s = HIS_SCHEMA
    try:
        with engine.connect() as conn:
            hospitals = [r[0] for r in conn.execute(sa.text(f"select hospital_id from {s}.hospitals order by 1"))]
            departments = {r[0]: (r[1], r[0].split("-", 1)[-1], r[2]) for r in conn.execute(
                sa.text(f"select department_id, hospital_id, kind from {s}.departments order by 1"))}
            patients = {r[0]: (r[1], r[2]) for r in conn.execute(
                sa.text(f"select patient_id, national_id, phone from {s}.patients order by 1"))}
            window = {"start": start, "horizon": horizon}
            visits = [tuple(r) for r in conn.execute(sa.text(
                f"select patient_id, department_id, visit_at from {s}.outpatient_visits "
                "where visit_at >= :start and visit_at < :horizon order by visit_id"), window)]
            discharges = [tuple(r) for r in conn.execute(sa.text(
                f"select patient_id, department_id, discharged_at from {s}.inpatient_stays "
                "where discharged_at >= :start and discharged_at < :horizon order by stay_id"), window)]
    finally:
        engine.dispose()
    if not hospitals or not visits:
        raise SurveyGenerationError(f"the HIS at {engine.url.render_as_string(hide_password=True)} has no "
                                    f"hospitals or no visits from {start:%Y-%m-%d}: generate the HIS first")
    return _His(hospitals, departments, patients, visits, discharges)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------ generation


@dataclass
class _Answer:
    record: dict
    cell: tuple[str, date]


class _Builder:
    def __init__(self, seed: int, his: _His, start: date, end: date, vendors: int,
                 outpatient_share: float, inpatient_share: float, vendor_sample: int) -> None:
        self.seed, self.his, self.start, self.end = seed, his, start, end
        self.horizon = datetime.combine(end + timedelta(days=1), time())
        self.latest = month_start(end, -1)
        self.records: dict[str, list[dict]] = defaultdict(list)
        self.answers: list[_Answer] = []
        self.scenarios: dict[str, object] = {}
        self.outpatient_share, self.inpatient_share = outpatient_share, inpatient_share
        self.vendor_sample = vendor_sample
        lead = his.hospitals[0]
        clinical = [d for d, (h, _, kind) in his.departments.items() if h == lead and kind == "clinical"]
        by_volume = defaultdict(int)
        for _, department, _ in his.visits:
            by_volume[department] += 1
        ranked = sorted(clinical, key=lambda d: (-by_volume[d], d))
        if len(ranked) < 2:
            raise SurveyGenerationError(f"the lead hospital {lead} needs at least two clinical departments")
        self.drop_department, self.spike_department = ranked[1], ranked[0]
        plan = planned_vendors(vendors)
        self.vendors = sorted(v for v, (kind, _) in plan.items() if kind in PATIENT_FACING_SERVICE_TYPES)
        by_scenario = {scenario: v for v, (_, scenario) in plan.items() if scenario}
        self.vendor_below_80, self.vendor_below_70 = by_scenario["satisfaction_low"], by_scenario["related_party"]
        self.comment_numbers = 0
        self._phone_rng = _rng(seed, "typed numbers")

    # -- planted rates ------------------------------------------------------------------------

    def rate(self, cell: tuple[str, date], rng: random.Random) -> float:
        subject, month = cell
        if subject == self.drop_department and month == self.latest:
            return DEPARTMENT_DROP_RATE
        if subject == self.vendor_below_80 and month >= month_start(self.latest, -1):
            return VENDOR_BELOW_80_RATE
        if subject == self.vendor_below_70 and month == self.latest:
            return VENDOR_BELOW_70_RATE
        return HEALTHY_SATISFACTION + rng.uniform(-0.03, 0.03)

    # -- records ------------------------------------------------------------------------------

    def typed_number(self, patient_id: str) -> str:
        """What a patient types into a comment: their phone or their ID number."""
        national_id, phone = self.his.patients.get(patient_id, (None, None))
        self.comment_numbers += 1
        if self._phone_rng.random() < 0.5 and national_id:
            return f"，我的身份证号{national_id}"
        return f"，请回电{phone or self._phone_rng.choice(_MOBILE) + '12345678'}"

    def questionnaires(self) -> None:
        rng = _rng(self.seed, "questionnaires")
        encounters = [("outpatient", p, d, t) for p, d, t in self.his.visits if rng.random() < self.outpatient_share]
        encounters += [("inpatient", p, d, t) for p, d, t in self.his.discharges if rng.random() < self.inpatient_share]
        # vendor-served patients: a fixed sample per vendor and month (enough answers for a monthly rate)
        vendor_rng = _rng(self.seed, "vendor questionnaires")
        visits_by_month: dict[date, list[tuple[str, str, datetime]]] = defaultdict(list)
        for visit in self.his.visits:
            visits_by_month[month_start(visit[2].date())].append(visit)
        for month in sorted(visits_by_month):
            for vendor_id in self.vendors:
                for patient_id, department_id, at in vendor_rng.sample(
                        visits_by_month[month], min(self.vendor_sample, len(visits_by_month[month]))):
                    encounters.append(("vendor_service", patient_id, department_id, at, vendor_id))
        for kind, patient_id, department_id, at, *vendor in sorted(encounters, key=lambda e: (e[3], e[0], e[1])):
            self.questionnaire(rng, kind, patient_id, department_id, at, vendor[0] if vendor else None)

    def questionnaire(self, rng: random.Random, kind: str, patient_id: str, department_id: str, at: datetime,
                      vendor_id: str | None) -> None:
        submitted = at + timedelta(minutes=rng.randint(60, 72 * 60))
        if submitted >= self.horizon:
            return
        number = len(self.records["questionnaires"]) + 1
        questionnaire_id = f"Q{number:08d}"
        national_id, phone = self.his.patients[patient_id]
        comment = None
        if rng.random() < 0.25:
            comment = rng.choice(_GOOD_COMMENTS + _BAD_COMMENTS)
            if rng.random() < 0.1:
                comment += self.typed_number(patient_id)
        updated = _iso(submitted)
        self.records["questionnaires"].append({
            "questionnaire_id": questionnaire_id, "questionnaire_type": kind,
            "hospital_id": self.his.departments[department_id][0], "department_id": department_id,
            "vendor_id": vendor_id, "patient_national_id": national_id, "patient_phone": phone,
            "visit_date": at.date().isoformat(), "submitted_at": updated,
            "channel": rng.choice(("wechat", "wechat", "sms", "kiosk", "phone")), "comment": comment,
            "updated_at": updated,
        })
        cell = (vendor_id or department_id, month_start(at.date()))
        sequence = 0
        for stage, dimensions in _STAGES[kind]:
            for dimension in dimensions:
                sequence += 1
                self.answers.append(_Answer({
                    "answer_id": f"{questionnaire_id}-{sequence:02d}", "questionnaire_id": questionnaire_id,
                    "service_stage": stage, "dimension": dimension, "score": None, "satisfied": None,
                    "updated_at": updated}, cell))

    def score_answers(self) -> None:
        """Exactly round(n × rate) satisfied answers per cell (see the module doc)."""
        cells: dict[tuple[str, date], list[dict]] = defaultdict(list)
        for answer in self.answers:
            cells[answer.cell].append(answer.record)
        for cell in sorted(cells):
            rng = _rng(self.seed, "answers", *cell)
            answers = cells[cell]
            satisfied = set(rng.sample(range(len(answers)), round(len(answers) * self.rate(cell, rng))))
            for index, record in enumerate(answers):
                score = rng.choice((4, 5, 5)) if index in satisfied else rng.choice((1, 2, 3, 3))
                record["score"], record["satisfied"] = score, score >= SATISFIED_MIN_SCORE
        self.records["answers"] = [answer.record for answer in self.answers]
        watched = {self.drop_department: "department_satisfaction_drop",
                   self.vendor_below_80: "vendor_satisfaction_below_80",
                   self.vendor_below_70: "vendor_satisfaction_below_70"}
        for subject, name in watched.items():
            by_month = {month.isoformat()[:7]: round(sum(r["satisfied"] for r in rows) / len(rows), 4)
                        for (s, month), rows in sorted(cells.items()) if s == subject and rows}
            self.scenarios[name] = {("department_id" if name.startswith("department") else "vendor_id"): subject,
                                    "latest_month": self.latest.isoformat()[:7],
                                    "satisfied_share_by_month": by_month}

    def complaints(self) -> None:
        rng = _rng(self.seed, "complaints")
        clinical = sorted(d for d, (_, _, kind) in self.his.departments.items() if kind == "clinical")
        month = month_start(self.start)
        by_month: dict[str, int] = {}
        while month <= self.end:
            last = min(self.end, month_start(month, 1) - timedelta(days=1))
            days = (last - month).days + 1
            for department_id in clinical:
                usual = 1.2 if self.his.departments[department_id][0] == self.his.hospitals[0] else 0.5
                lam = usual * days / 30
                count = _poisson(rng, lam)
                if department_id == self.spike_department and month == self.latest:
                    count = COMPLAINT_SPIKE_FACTOR * math.ceil(lam)  # planted exactly, not left to chance
                if department_id == self.spike_department:
                    by_month[month.isoformat()[:7]] = count
                for _ in range(count):
                    received = datetime.combine(month + timedelta(days=rng.randrange(days)), time(8)) + timedelta(
                        minutes=rng.randint(0, 600))
                    self.complaint(rng, received, department_id, None)
            for vendor_id in self.vendors:
                lam = (3.0 if vendor_id == self.vendor_below_80 and month >= month_start(self.latest, -1) else 0.4) * days / 30
                for _ in range(_poisson(rng, lam)):
                    received = datetime.combine(month + timedelta(days=rng.randrange(days)), time(9)) + timedelta(
                        minutes=rng.randint(0, 480))
                    department_id = rng.choice([d for d in clinical if d.startswith(self.his.hospitals[0])])
                    self.complaint(rng, received, department_id, vendor_id)
            month = month_start(month, 1)
        self.scenarios["complaint_spike"] = {"department_id": self.spike_department,
                                             "latest_month": self.latest.isoformat()[:7],
                                             "factor": COMPLAINT_SPIKE_FACTOR, "complaints_by_month": by_month}

    def complaint(self, rng: random.Random, received: datetime, department_id: str, vendor_id: str | None) -> None:
        if received >= self.horizon:
            return
        category = "third_party_service" if vendor_id else rng.choice(
            ("attitude", "waiting_time", "medical_quality", "billing", "environment"))
        steps = {"received": received}
        handled = received + timedelta(hours=rng.uniform(1, 48))
        tracked = handled + timedelta(days=rng.uniform(1, 5))
        feedback = tracked + timedelta(days=rng.uniform(1, 7))
        for name, at in (("handled", handled), ("tracked", tracked), ("feedback", feedback)):
            if at >= self.horizon:
                break
            steps[name] = at
        status = list(steps)[-1]
        patient_id = rng.choice(list(self.his.patients))
        description = _COMPLAINT_TEXTS[category]
        if rng.random() < 0.15:
            description += self.typed_number(patient_id)
        self.records["complaints"].append({
            "complaint_id": f"C{len(self.records['complaints']) + 1:07d}", "received_at": _iso(received),
            "hospital_id": self.his.departments[department_id][0], "department_id": department_id,
            "vendor_id": vendor_id, "complainant_phone": self.his.patients[patient_id][1],
            "channel": rng.choice(("hotline", "hotline", "wechat", "onsite", "letter")), "category": category,
            "description": description, "status": status,
            "handled_at": _iso(steps["handled"]) if "handled" in steps else None,
            "tracked_at": _iso(steps["tracked"]) if "tracked" in steps else None,
            "feedback_at": _iso(steps["feedback"]) if "feedback" in steps else None,
            "feedback_result": rng.choice(("satisfied", "satisfied", "basically_satisfied", "unsatisfied"))
            if "feedback" in steps else None,
            "updated_at": _iso(steps[status]),
        })

    def follow_ups(self) -> None:
        rng = _rng(self.seed, "follow_ups")
        for patient_id, department_id, discharged in self.his.discharges:
            if rng.random() >= 0.3:
                continue
            scheduled = discharged.date() + timedelta(days=7)
            if scheduled > self.end:
                continue
            created = discharged + timedelta(hours=2)
            completed = datetime.combine(scheduled, time(9)) + timedelta(minutes=rng.randint(0, 3 * 24 * 60))
            done = completed < self.horizon
            outcome = rng.choices(("reached", "not_reached", "declined"), (0.85, 0.12, 0.03))[0] if done else None
            note = "恢复良好" if outcome == "reached" else None
            if note and rng.random() < 0.05:
                note += self.typed_number(patient_id)
            self.records["follow_ups"].append({
                "follow_up_id": f"F{len(self.records['follow_ups']) + 1:07d}", "follow_up_type": "post_discharge",
                "hospital_id": self.his.departments[department_id][0], "department_id": department_id,
                "patient_national_id": self.his.patients[patient_id][0], "scheduled_on": scheduled.isoformat(),
                "completed_at": _iso(completed) if done else None, "outcome": outcome,
                "satisfied": (rng.random() < HEALTHY_SATISFACTION) if outcome == "reached" else None,
                "note": note, "updated_at": _iso(completed if done else created),
            })

    def window_ratings(self, per_day: float) -> None:
        rng = _rng(self.seed, "window_ratings")
        day = self.start
        while day <= self.end:
            for hospital_id in self.his.hospitals:
                for service, code in _WINDOWS:
                    department_id = f"{hospital_id}-{code}"
                    if department_id not in self.his.departments:
                        continue
                    for _ in range(_poisson(rng, per_day)):
                        rated = datetime.combine(day, time(8)) + timedelta(minutes=rng.randint(0, 540))
                        score = rng.choices((5, 4, 3, 2, 1), (0.62, 0.28, 0.06, 0.03, 0.01))[0]
                        self.records["window_ratings"].append({
                            "rating_id": f"W{len(self.records['window_ratings']) + 1:08d}", "hospital_id": hospital_id,
                            "department_id": department_id, "window_no": f"{service[:3].upper()}-{rng.randint(1, 6):02d}",
                            "window_service": service, "rated_at": _iso(rated), "score": score,
                            "updated_at": _iso(rated)})
            day += timedelta(days=1)

    def malformed_answer(self) -> None:
        """One answer the platform stored with an impossible score, outside any planted cell."""
        planted = {self.drop_department, self.vendor_below_80, self.vendor_below_70}
        rng = _rng(self.seed, "malformed")
        candidates = [a.record for a in self.answers if a.cell[0] not in planted]
        record = rng.choice(candidates)
        record["score"] = 6
        self.scenarios["defects"] = {
            "malformed_answer": {"answer_id": record["answer_id"], "field": "score", "value": 6},
            "free_text_with_numbers": self.comment_numbers,
        }


def generate_survey(his_url: str, out_file: Path, *, end: date, months: int = 6, vendors: int = 14,
                    seed: int = 20261123, outpatient_share: float = 0.02, inpatient_share: float = 0.2,
                    window_ratings_per_day: float = 6.0, vendor_sample: int = 30) -> SurveyGenerationResult:
    """Write the survey platform's records for `months` months up to `end` into `out_file` (JSON)."""
    if months < 2:
        raise SurveyGenerationError(f"months must be at least 2 (a latest month and one before it), got {months}")
    start = month_start(end, -months)
    his = _read_his(his_url, datetime.combine(start, time()), datetime.combine(end + timedelta(days=1), time()))
    builder = _Builder(seed, his, start, end, vendors, outpatient_share, inpatient_share, vendor_sample)
    builder.questionnaires()
    builder.score_answers()
    builder.complaints()
    builder.follow_ups()
    builder.window_ratings(window_ratings_per_day)
    builder.malformed_answer()
    records = dict(builder.records)
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(json.dumps({"records": records, SCENARIO_KEY: builder.scenarios}, ensure_ascii=False,
                                   sort_keys=True), encoding="utf-8")
    counts = {entity: len(rows) for entity, rows in records.items()}
    log.info("survey platform %s..%s: %s into %s", start, end, counts, out_file)
    return SurveyGenerationResult(out_file, start, end, counts, builder.scenarios)
