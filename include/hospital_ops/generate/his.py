"""A simulated hospital information system 医院信息系统 (HIS) for a medical consortium 医联体.

`create_his_database(url)` creates a normalized OLTP schema `his` in an existing, empty PostgreSQL
database (tables named like the entities of `hospital_ops.sources.his.SOURCE`, with primary and
foreign keys, checks, `created_at` and an indexed `updated_at`). `generate_his(url, end=…)` fills it
with `months` months of consistent patient journeys up to `end`:

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

`write_fhir_bulk` exports the same data as HL7 FHIR R4 Bulk Data NDJSON in the profile of
`hospital_ops.extract.fhir_profile`; `hospital_ops.extract.fhir_r4`, the one FHIR reader, reads it back.

Rows are bulk-loaded with PostgreSQL COPY through the SQLAlchemy engine's DBAPI connection: inserting
several hundred thousand rows with executemany would take minutes instead of seconds.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import random
import time as stopwatch
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from hospital_ops.extract import fhir_profile as F
from hospital_ops.sources.his import SENIOR_TITLE_GRADES, SOURCE
from hospital_ops.sources.spec import Entity

log = logging.getLogger(__name__)

HIS_SCHEMA = "his"
DEFAULT_SEED = 20260101
DEFAULT_MONTHS = 6
# Planted DRG cost jump (see _World.cost_jump): the factor, and the days after a month's end by which
# all its discharges have settled with insurance (the insurance generator's longest settlement lag).
COST_JUMP_FACTOR = Decimal("1.8")
COST_JUMP_SETTLED_DAYS = 15
DEFAULT_HOSPITALS = 3
MAX_HOSPITALS = 9


class HisGenerationError(RuntimeError):
    """The simulated HIS cannot be generated as asked (bad arguments, a database that is not empty)."""


# ===================================================================================== the schema

_SA_TYPES: dict[str, Callable[[], sa.types.TypeEngine]] = {
    "text": sa.Text,
    "int": sa.Integer,
    "decimal": lambda: sa.Numeric(14, 2),
    "date": sa.Date,
    "timestamp": sa.DateTime,
    "bool": sa.Boolean,
    "month": sa.Date,
}
_FOREIGN_KEYS: dict[tuple[str, str], str] = {
    ("departments", "hospital_id"): "hospitals.hospital_id",
    ("staff", "department_id"): "departments.department_id",
    ("beds", "department_id"): "departments.department_id",
    ("equipment", "department_id"): "departments.department_id",
    ("outpatient_visits", "patient_id"): "patients.patient_id",
    ("outpatient_visits", "department_id"): "departments.department_id",
    ("outpatient_visits", "doctor_id"): "staff.staff_id",
    ("inpatient_stays", "patient_id"): "patients.patient_id",
    ("inpatient_stays", "department_id"): "departments.department_id",
    ("inpatient_stays", "attending_doctor_id"): "staff.staff_id",
    ("diagnoses", "stay_id"): "inpatient_stays.stay_id",
    ("surgeries", "stay_id"): "inpatient_stays.stay_id",
    ("surgeries", "surgeon_id"): "staff.staff_id",
    ("charges", "visit_id"): "outpatient_visits.visit_id",
    ("charges", "stay_id"): "inpatient_stays.stay_id",
    ("charges", "department_id"): "departments.department_id",
}
_CHECKS: dict[str, tuple[str, ...]] = {
    "surgeries": ("grade between 1 and 4",),
    "charges": ("(visit_id is null) <> (stay_id is null)",),
    "inpatient_stays": ("discharged_at is null or discharged_at >= admitted_at",),
    "beds": ("open_to is null or open_to >= open_from",),
}
_UNIQUE: dict[str, tuple[str, ...]] = {"patients": ("mrn",)}


def _table(metadata: sa.MetaData, entity: Entity) -> sa.Table:
    """The HIS table of an entity: the spec's columns (updated_at last), created_at, keys and checks."""
    columns: list[sa.SchemaItem] = []
    for column in entity.columns:
        if column.name == "updated_at":
            columns.append(sa.Column("created_at", sa.DateTime, nullable=False))
        args: list[sa.SchemaItem] = []
        target = _FOREIGN_KEYS.get((entity.name, column.name))
        if target:
            args.append(sa.ForeignKey(f"{HIS_SCHEMA}.{target}"))
        columns.append(sa.Column(column.name, _SA_TYPES[column.type](), *args,
                                 nullable=not (column.required or column.name in entity.business_key)))
    columns.append(sa.PrimaryKeyConstraint(*entity.business_key, name=f"{entity.name}_pkey"))
    columns.extend(sa.CheckConstraint(check) for check in _CHECKS.get(entity.name, ()))
    columns.extend(sa.UniqueConstraint(name) for name in _UNIQUE.get(entity.name, ()))
    table = sa.Table(entity.name, metadata, *columns)
    sa.Index(f"{entity.name}__updated_at", table.c.updated_at)
    return table


METADATA = sa.MetaData(schema=HIS_SCHEMA)
TABLES: dict[str, sa.Table] = {entity.name: _table(METADATA, entity) for entity in SOURCE.entities}
TABLE_ORDER: tuple[str, ...] = tuple(e.name for e in sorted(SOURCE.entities, key=lambda e: e.load_order))


def create_his_database(url: str) -> None:
    """Create the `his` schema and its tables in the (existing) database at `url`; idempotent."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"create schema if not exists {HIS_SCHEMA}"))
            METADATA.create_all(conn, checkfirst=True)
    finally:
        engine.dispose()


# ===================================================================================== catalogue


@dataclass(frozen=True)
class _Procedure:
    code: str  # ICD-9-CM-3
    name: str
    grade: int  # 手术分级 1-4
    minimally_invasive: bool
    consumables: float  # implants and disposables of the operation, CNY (mean)
    weight: float = 1.0


@dataclass(frozen=True)
class _Case:
    icd10: str
    name: str
    weight: float
    los: float  # mean length of stay, days
    surgery_share: float = 0.0
    procedures: tuple[_Procedure, ...] = ()
    mortality: float = 0.0
    planned_return: float = 0.0  # share of home discharges planning a readmission within 31 days
    emergency: bool = False
    gender: str | None = None  # GB/T 2261.1 code when the condition belongs to one sex


@dataclass(frozen=True)
class _Profile:
    code: str
    name: str
    kind: str
    beds: int = 0  # at the lead hospital, scale 1
    outpatient: float = 0.0  # visits a day at the lead hospital, scale 1
    group: str = "adult"  # who the patients are: adult, child, woman
    cases: tuple[_Case, ...] = ()
    daily_cost: tuple[float, float, float, float] = (0, 0, 0, 0)  # drug, consumables, exam_lab, service a day
    outpatient_cost: tuple[float, float] = (160, 200)  # drug, exam_lab per visit that has them
    preop_wait: tuple[int, int] = (1, 3)
    winter: bool = False  # respiratory and paediatric winter peak

    @property
    def surgical(self) -> bool:
        return any(case.procedures for case in self.cases)


_P = _Procedure
_K = _Case
CHEMOTHERAPY = _K("Z51.1", "肿瘤化学治疗疗程", 0, 3, planned_return=0.75)

_DEPARTMENTS: tuple[_Profile, ...] = (
    _Profile("CARD", "心血管内科", "clinical", 45, 50, daily_cost=(450, 150, 350, 320), outpatient_cost=(260, 300), cases=(
        _K("I21.0", "急性前壁透壁性心肌梗死", 0.12, 8, 0.85, (_P("36.07", "药物洗脱冠状动脉支架置入术", 4, True, 22000, 3),
                                                    _P("00.66", "经皮冠状动脉腔内成形术", 4, True, 9000)), 0.05,
           emergency=True),
        _K("I20.0", "不稳定性心绞痛", 0.25, 6, 0.45, (_P("36.07", "药物洗脱冠状动脉支架置入术", 4, True, 20000),
                                              _P("88.56", "冠状动脉造影术", 3, True, 2500, 2)), 0.003),
        _K("I50.0", "充血性心力衰竭", 0.2, 9, mortality=0.03),
        _K("I48.9", "心房颤动和心房扑动", 0.15, 6, 0.15, (_P("37.34", "心脏射频消融术", 4, True, 30000),), 0.002),
        _K("I10", "特发性(原发性)高血压", 0.15, 5, mortality=0.0005),
        _K("I25.1", "动脉硬化性心脏病", 0.13, 6, 0.2, (_P("88.56", "冠状动脉造影术", 3, True, 2500),), 0.003),
    )),
    _Profile("RESP", "呼吸内科", "clinical", 40, 50, winter=True, daily_cost=(600, 80, 300, 260), cases=(
        _K("J18.9", "肺炎", 0.35, 9, mortality=0.01),
        _K("J44.1", "慢性阻塞性肺病伴急性加重", 0.3, 10, mortality=0.015),
        _K("J45.9", "哮喘", 0.1, 6, mortality=0.001),
        _K("C34.9", "支气管和肺恶性肿瘤", 0.15, 10, 0.1, (_P("33.27", "经支气管镜肺活组织检查", 2, True, 800),), 0.03,
           planned_return=0.6),
        _K("J20.9", "急性支气管炎", 0.1, 5),
    )),
    _Profile("GAST", "消化内科", "clinical", 40, 45, daily_cost=(500, 90, 320, 260), cases=(
        _K("K29.7", "胃炎", 0.15, 5),
        _K("K25.9", "胃溃疡", 0.1, 7, 0.3, (_P("44.43", "内镜下胃出血控制术", 3, True, 3000),)),
        _K("K92.2", "胃肠出血", 0.15, 8, 0.4, (_P("44.43", "内镜下胃出血控制术", 3, True, 3000),), 0.02, emergency=True),
        _K("K74.6", "肝硬化", 0.15, 12, mortality=0.03),
        _K("K85.9", "急性胰腺炎", 0.15, 11, mortality=0.02, emergency=True),
        _K("K63.5", "结肠息肉", 0.3, 4, 0.9, (_P("45.42", "内镜下结肠息肉切除术", 2, True, 1500),)),
    )),
    _Profile("NEUR", "神经内科", "clinical", 45, 40, daily_cost=(550, 80, 350, 260), cases=(
        _K("I63.9", "脑梗死", 0.5, 11, 0.05, (_P("39.74", "血管内脑血栓取出术", 4, True, 60000),), 0.025, emergency=True),
        _K("I61.9", "脑内出血", 0.1, 14, mortality=0.08, emergency=True),
        _K("G45.9", "短暂性脑缺血发作", 0.15, 6),
        _K("G40.9", "癫痫", 0.1, 7, mortality=0.002),
        _K("G20", "帕金森病", 0.15, 9),
    )),
    _Profile("GIM", "内科", "clinical", 40, 60, daily_cost=(400, 60, 250, 220), cases=(
        _K("E11.9", "2型糖尿病不伴有并发症", 0.25, 8),
        _K("J18.9", "肺炎", 0.25, 8, mortality=0.01),
        _K("I10", "特发性(原发性)高血压", 0.2, 6),
        _K("N39.0", "泌尿道感染", 0.15, 6),
        _K("D64.9", "贫血", 0.15, 6, mortality=0.002),
    )),
    _Profile("GSUR", "普通外科", "clinical", 50, 35, daily_cost=(350, 120, 250, 320), preop_wait=(1, 3), cases=(
        _K("K35.8", "急性阑尾炎", 0.2, 5, 0.95, (_P("47.01", "腹腔镜下阑尾切除术", 2, True, 1500, 4),
                                           _P("47.09", "阑尾切除术", 2, False, 300)), emergency=True),
        _K("K80.2", "胆囊结石不伴有胆囊炎", 0.2, 5, 0.95, (_P("51.23", "腹腔镜下胆囊切除术", 3, True, 2500, 4),
                                                 _P("51.22", "胆囊切除术", 3, False, 800))),
        _K("K40.9", "单侧腹股沟疝", 0.15, 4, 0.95, (_P("53.00", "单侧腹股沟疝修补术", 2, False, 3000),
                                             _P("17.11", "腹腔镜下单侧腹股沟直疝修补术", 3, True, 6000))),
        _K("C18.9", "结肠恶性肿瘤", 0.12, 14, 0.85, (_P("45.73", "右半结肠切除术", 4, False, 8000),
                                              _P("17.33", "腹腔镜下右半结肠切除术", 4, True, 15000, 2)), 0.01,
           planned_return=0.5),
        _K("C50.9", "乳房恶性肿瘤", 0.1, 9, 0.85, (_P("85.43", "单侧乳房改良根治术", 3, False, 3000),), 0.002,
           planned_return=0.5, gender="2"),
        _K("E04.1", "甲状腺单个结节", 0.13, 5, 0.9, (_P("06.2", "单侧甲状腺腺叶切除术", 3, False, 1500),)),
        _K("K56.7", "肠梗阻", 0.1, 9, 0.3, (_P("54.59", "腹腔粘连松解术", 3, False, 1000),), 0.01, emergency=True),
    )),
    _Profile("ORTH", "骨科", "clinical", 50, 40, daily_cost=(250, 110, 200, 300), preop_wait=(2, 5), cases=(
        _K("S72.0", "股骨颈骨折", 0.18, 12, 0.9, (_P("81.52", "人工股骨头置换术", 4, False, 25000),
                                            _P("79.35", "股骨骨折切开复位内固定术", 3, False, 12000)), 0.01,
           emergency=True),
        _K("M17.9", "膝关节病", 0.15, 10, 0.8, (_P("81.54", "全膝关节置换术", 4, False, 35000),
                                          _P("80.26", "膝关节镜检查", 1, True, 2000))),
        _K("M16.9", "髋关节病", 0.08, 11, 0.85, (_P("81.51", "全髋关节置换术", 4, False, 40000),)),
        _K("M51.2", "腰椎间盘移位", 0.2, 9, 0.6, (_P("80.51", "椎间盘切除术", 3, False, 5000),
                                            _P("80.59", "经皮椎间孔镜下髓核摘除术", 3, True, 6000))),
        _K("S82.1", "胫骨近端骨折", 0.12, 11, 0.85, (_P("79.36", "胫腓骨骨折切开复位内固定术", 3, False, 9000),),
           emergency=True),
        _K("S52.5", "桡骨下端骨折", 0.15, 6, 0.6, (_P("79.32", "桡尺骨骨折切开复位内固定术", 2, False, 5000),
                                             _P("79.02", "桡尺骨骨折闭合复位术", 1, False, 300))),
        _K("S42.0", "锁骨骨折", 0.12, 6, 0.7, (_P("79.39", "锁骨骨折切开复位内固定术", 2, False, 4000),)),
    )),
    _Profile("OBGY", "妇产科", "clinical", 40, 45, group="woman", daily_cost=(150, 90, 150, 300),
             outpatient_cost=(120, 220), preop_wait=(0, 2), cases=(
        _K("O80.0", "单胎顺产", 0.3, 3),
        _K("O82.0", "经选择性剖宫产术的分娩", 0.22, 5, 1.0, (_P("74.1", "子宫下段剖宫产术", 2, False, 800),)),
        _K("D25.9", "子宫平滑肌瘤", 0.15, 6, 0.9, (_P("68.41", "腹腔镜下全子宫切除术", 3, True, 5000),
                                             _P("68.49", "经腹全子宫切除术", 3, False, 1500),
                                             _P("68.29", "子宫肌瘤剔除术", 2, False, 1000))),
        _K("N83.2", "卵巢囊肿", 0.13, 4, 0.9, (_P("65.25", "腹腔镜下卵巢病损切除术", 2, True, 3000),)),
        _K("O14.9", "子痫前期", 0.05, 7, 0.6, (_P("74.1", "子宫下段剖宫产术", 2, False, 800),), 0.0005),
        _K("O00.9", "异位妊娠", 0.1, 4, 0.9, (_P("66.62", "输卵管切除伴输卵管妊娠物去除术", 2, True, 2500),),
           emergency=True),
    )),
    _Profile("PEDS", "儿科", "clinical", 35, 60, group="child", winter=True, daily_cost=(200, 40, 150, 200),
             outpatient_cost=(90, 150), cases=(
        _K("J18.9", "肺炎", 0.35, 6, mortality=0.0005),
        _K("J21.9", "急性细支气管炎", 0.15, 5),
        _K("A09.9", "胃肠炎和结肠炎", 0.2, 4),
        _K("J06.9", "急性上呼吸道感染", 0.15, 4),
        _K("A08.0", "轮状病毒性肠炎", 0.1, 5),
        _K("J45.9", "哮喘", 0.05, 5),
    )),
    _Profile("NSUR", "神经外科", "clinical", 30, 15, daily_cost=(700, 150, 400, 420), preop_wait=(1, 4), cases=(
        _K("S06.5", "创伤性硬脑膜下出血", 0.25, 16, 0.6, (_P("01.31", "硬脑膜下血肿清除术", 4, False, 8000),
                                                 _P("01.09", "颅骨钻孔引流术", 3, False, 2000)), 0.08,
           emergency=True),
        _K("I61.9", "脑内出血", 0.25, 18, 0.35, (_P("01.39", "脑内血肿清除术", 4, False, 9000),), 0.1, emergency=True),
        _K("D32.9", "脑膜良性肿瘤", 0.2, 15, 0.9, (_P("01.51", "脑膜病损切除术", 4, False, 15000),), 0.01),
        _K("C71.9", "脑恶性肿瘤", 0.1, 18, 0.8, (_P("01.59", "脑病损切除术", 4, False, 20000),), 0.04,
           planned_return=0.4),
        _K("S06.0", "脑震荡", 0.2, 6),
    )),
    _Profile("UROL", "泌尿外科", "clinical", 30, 25, daily_cost=(300, 110, 250, 300), cases=(
        _K("N20.0", "肾结石", 0.25, 6, 0.85, (_P("55.04", "经皮肾镜碎石取石术", 3, True, 6000),
                                         _P("98.51", "体外冲击波肾碎石术", 1, True, 500))),
        _K("N20.1", "输尿管结石", 0.25, 5, 0.9, (_P("56.0", "经尿道输尿管镜取石术", 2, True, 4000),)),
        _K("N40", "前列腺增生", 0.25, 8, 0.85, (_P("60.29", "经尿道前列腺电切术", 3, True, 3000),), gender="1"),
        _K("C67.9", "膀胱恶性肿瘤", 0.15, 9, 0.9, (_P("57.49", "经尿道膀胱病损切除术", 3, True, 4000),), 0.005,
           planned_return=0.5),
        _K("N39.0", "泌尿道感染", 0.1, 6),
    )),
    _Profile("OPHT", "眼科", "clinical", 15, 35, daily_cost=(150, 200, 200, 300), outpatient_cost=(80, 120),
             preop_wait=(1, 1), cases=(
        _K("H25.9", "老年性白内障", 0.6, 2, 0.98, (_P("13.41", "白内障超声乳化抽吸术", 3, True, 3500),)),
        _K("H40.9", "青光眼", 0.15, 5, 0.8, (_P("12.64", "小梁切除术", 3, False, 1000),)),
        _K("H33.0", "视网膜脱离伴视网膜裂孔", 0.15, 6, 0.9, (_P("14.74", "玻璃体切除术", 4, True, 6000),)),
        _K("H11.0", "翼状胬肉", 0.1, 2, 0.95, (_P("11.39", "翼状胬肉切除术", 1, False, 300),)),
    )),
    _Profile("EMER", "急诊科", "clinical", 0, 80, outpatient_cost=(150, 250)),
    _Profile("LAB", "检验科", "medical_technical"),
    _Profile("RADI", "放射科", "medical_technical"),
    _Profile("PHAR", "药剂科", "medical_technical"),
    _Profile("MEDA", "医务处", "admin"),
    _Profile("FINA", "财务处", "admin"),
)
_PROFILES = {profile.code: profile for profile in _DEPARTMENTS}
_MEMBER_DEPARTMENTS = ("GIM", "GSUR", "ORTH", "OBGY", "PEDS", "EMER", "LAB", "RADI", "PHAR", "MEDA", "FINA")
_MEMBER_BEDS = 0.55
_MEMBER_OUTPATIENT = 0.45

# name, level, role — the first hospital leads the consortium
_HOSPITALS = (
    ("市第一人民医院", "tertiary", "lead"), ("城东区人民医院", "secondary", "member"),
    ("城西区中心医院", "secondary", "member"), ("北郊人民医院", "secondary", "member"),
    ("南湖区人民医院", "secondary", "member"), ("江北区中医医院", "secondary", "member"),
    ("高新区人民医院", "secondary", "member"), ("滨海新区医院", "secondary", "member"),
    ("临港人民医院", "secondary", "member"),
)

_COMORBIDITIES = (("I10", "特发性(原发性)高血压"), ("E11.9", "2型糖尿病不伴有并发症"), ("E78.5", "高脂血症"),
                  ("I25.1", "动脉硬化性心脏病"), ("N18.9", "慢性肾脏病"), ("J44.9", "慢性阻塞性肺病"),
                  ("D64.9", "贫血"), ("K21.9", "胃食管反流病"), ("E03.9", "甲状腺功能减退症"),
                  ("M81.9", "骨质疏松"))
_SURGICAL_COMPLICATIONS = (("T81.4", "操作后感染"), ("T81.0", "操作并发出血和血肿"),
                           ("I80.2", "下肢深静脉血栓形成"), ("J18.9", "医院获得性肺炎"))
_MEDICAL_COMPLICATIONS = (("J18.9", "医院获得性肺炎"), ("N39.0", "泌尿道感染"), ("L89.9", "压疮"),
                          ("I26.9", "肺栓塞"))
_POSTOP_MIN_DAYS = {1: 1, 2: 1, 3: 2, 4: 3}
_SURGERY_FEE = {1: 600.0, 2: 1800.0, 3: 4000.0, 4: 8500.0}  # operation and anaesthesia, CNY
_SURGEON_GRADES = {4: SENIOR_TITLE_GRADES, 3: ("正高", "副高", "中级")}  # 手术分级授权
_TARGET_OCCUPANCY = 0.93
_INITIAL_OCCUPANCY = 0.85  # the wards are not empty when the history starts
_QUIET_DAYS = 60  # a random admission never picks someone discharged this recently (readmissions are booked)

# outpatient volume: month of year, weekday (Mon..Sun); respiratory/paediatric winter on top
_MONTH_FACTOR = {1: 1.08, 2: 0.82, 3: 1.02, 4: 1.0, 5: 0.97, 6: 0.96, 7: 1.0, 8: 0.98, 9: 1.0, 10: 0.9, 11: 1.04,
                 12: 1.1}
_WINTER_FACTOR = {12: 1.25, 1: 1.3, 2: 1.15, 3: 1.05, 6: 0.85, 7: 0.8, 8: 0.85}
_WEEKDAY_OUTPATIENT = (1.18, 1.08, 1.04, 1.03, 1.0, 0.68, 0.55)
_WEEKDAY_ADMISSION = (1.2, 1.12, 1.08, 1.05, 1.0, 0.8, 0.7)

# title grade shares and title names by role
_TITLE_SHARES = {
    "doctor": (("正高", 0.12), ("副高", 0.22), ("中级", 0.38), ("初级", 0.28)),
    "nurse": (("正高", 0.02), ("副高", 0.08), ("中级", 0.35), ("初级", 0.55)),
    "technician": (("正高", 0.03), ("副高", 0.1), ("中级", 0.4), ("初级", 0.47)),
    "admin": (("中级", 0.3), ("初级", 0.2), ("无", 0.5)),
}
_TITLE_NAMES = {
    "doctor": {"正高": "主任医师", "副高": "副主任医师", "中级": "主治医师", "初级": "住院医师"},
    "nurse": {"正高": "主任护师", "副高": "副主任护师", "中级": "主管护师", "初级": "护师"},
    "technician": {"正高": "主任技师", "副高": "副主任技师", "中级": "主管技师", "初级": "技师"},
    "admin": {"中级": "经济师", "初级": "助理经济师"},
}

# equipment: name, category, value range CNY, count range; generic items go to every clinical ward
_GENERIC_EQUIPMENT = (("多参数心电监护仪", "监护设备", 40_000, 120_000, (3, 8)),
                      ("输液泵", "治疗设备", 8_000, 20_000, (4, 10)),
                      ("除颤仪", "急救设备", 60_000, 150_000, (1, 2)))
_EQUIPMENT = {
    "CARD": (("数字减影血管造影机(DSA)", "影像设备", 8_000_000, 15_000_000, (1, 1)),
             ("心脏彩色多普勒超声诊断仪", "超声设备", 800_000, 2_000_000, (1, 2))),
    "RESP": (("有创呼吸机", "生命支持设备", 200_000, 450_000, (2, 4)), ("电子支气管镜", "内镜设备", 300_000, 600_000, (1, 2))),
    "GAST": (("电子胃肠镜系统", "内镜设备", 500_000, 1_200_000, (1, 3)),),
    "NEUR": (("经颅多普勒超声仪", "超声设备", 200_000, 500_000, (1, 1)),),
    "GIM": (("动态心电图仪", "诊疗设备", 50_000, 120_000, (1, 2)),),
    "GSUR": (("腹腔镜系统", "手术设备", 1_200_000, 2_500_000, (1, 2)), ("高频电刀", "手术设备", 80_000, 200_000, (2, 4))),
    "ORTH": (("C型臂X光机", "影像设备", 600_000, 1_500_000, (1, 1)), ("关节镜系统", "手术设备", 800_000, 1_500_000, (1, 1))),
    "OBGY": (("胎儿监护仪", "监护设备", 30_000, 60_000, (2, 5)), ("宫腔镜系统", "内镜设备", 400_000, 800_000, (1, 1))),
    "PEDS": (("婴儿培养箱", "生命支持设备", 80_000, 150_000, (2, 4)), ("新生儿蓝光治疗仪", "治疗设备", 20_000, 50_000, (1, 3))),
    "NSUR": (("神经外科手术显微镜", "手术设备", 1_500_000, 3_500_000, (1, 1)),),
    "UROL": (("钬激光治疗机", "手术设备", 800_000, 1_600_000, (1, 1)),
             ("体外冲击波碎石机", "治疗设备", 600_000, 1_200_000, (1, 1))),
    "OPHT": (("超声乳化玻切一体机", "手术设备", 1_000_000, 2_000_000, (1, 1)),
             ("光学相干断层扫描仪(OCT)", "影像设备", 500_000, 1_000_000, (1, 1))),
    "EMER": (("急救转运呼吸机", "生命支持设备", 100_000, 250_000, (1, 3)),),
    "RADI": (("CT扫描仪", "影像设备", 5_000_000, 12_000_000, (1, 2)), ("磁共振成像系统(MRI)", "影像设备", 10_000_000, 25_000_000, (0, 1)),
             ("数字化X线摄影系统(DR)", "影像设备", 800_000, 1_500_000, (1, 2))),
    "LAB": (("全自动生化分析仪", "检验设备", 1_000_000, 3_000_000, (1, 2)),
            ("全自动血细胞分析仪", "检验设备", 300_000, 800_000, (1, 2)),
            ("化学发光免疫分析仪", "检验设备", 800_000, 1_800_000, (1, 1))),
    "PHAR": (("自动发药机", "药事设备", 1_000_000, 2_000_000, (0, 1)),),
    "MEDA": (("服务器", "信息设备", 100_000, 300_000, (1, 2)),),
    "FINA": (("服务器", "信息设备", 100_000, 300_000, (1, 1)),),
}

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严武戴莫孔汤"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰红梅建国志文斌辉鹏宇浩婷雪琳晨欣怡思佳涵轩诺雨萍波宁凯子睿"
_MOBILE_PREFIXES = ("130", "131", "132", "135", "136", "137", "138", "139", "150", "151", "152", "155", "156", "158",
                    "159", "176", "177", "180", "181", "182", "186", "187", "188", "189", "199")
_AREA_CODES = ("310115", "310104", "310110", "320102", "320506", "330106", "340104", "360102", "410105", "420106")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


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
    total = sum(int(digit) * weight for digit, weight in zip(body, _ID_WEIGHTS))
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


@dataclass
class _Patient:
    patient_id: str
    hospital_id: str
    group: str
    gender: str
    birth: date
    dead: bool = False
    busy_until: date = date.min  # in hospital (or booked for a planned return) up to this day
    last_discharge: date | None = None


@dataclass
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
        self.rows: dict[str, list[list[object]]] = {name: [] for name in TABLE_ORDER}
        self.departments: list[_Dept] = []
        self.patients: list[_Patient] = []
        self.pools: dict[tuple[str, str], list[int]] = defaultdict(list)
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
        grades, weights = zip(*_TITLE_SHARES[role])
        for number in range(count):
            staff_id = world.next_id("staff", "S", 6)
            grade = _weighted(rng, grades, weights)
            roll = rng.random()
            if role == "doctor" and dept.profile.kind == "clinical" and number < 2:
                # the head 科主任 and a deputy: senior titles, in post all along, so every ward has
                # surgeons authorised for grade-4 operations 四级手术
                grade, roll = SENIOR_TITLE_GRADES[number], 1.0
            if roll < 0.04:  # joined during the period
                hired_on = world.days[rng.randrange(period_days)]
            else:
                hired_on = world.start - timedelta(days=rng.randint(60, 25 * 365))
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
    world.patients.append(_Patient(patient_id, hospital_id, group, gender, birth))
    index = len(world.patients) - 1
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
    amounts = {month: {c: rate * count * noise[c] for c, rate in zip(categories, dept.profile.daily_cost)}
               for month, count in months.items()}
    final = max(amounts)
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
            world.rows["charges"].append([world.next_id("charge", "C", 10), None, stay_id, dept.department_id,
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
        conn.execute(table.update().where(*(table.c[k] == v for k, v in zip(keys, key)))
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
    """
    if not 1 <= hospitals <= MAX_HOSPITALS:
        raise HisGenerationError(f"hospitals must be 1..{MAX_HOSPITALS}, got {hospitals}")
    if months < 1 or scale <= 0:
        raise HisGenerationError(f"months must be ≥ 1 and scale > 0 (got months={months}, scale={scale})")
    started = stopwatch.perf_counter()
    create_his_database(url)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            _require_empty(conn)
        world = _simulate(seed, end, months, hospitals, scale)
        with engine.begin() as conn:
            _require_empty(conn)  # again: nobody wrote meanwhile
            _copy_rows(conn, world.rows)
            corrections = _history_corrections(conn, world, corrections_per_kind)
    finally:
        engine.dispose()
    counts = {name: len(rows) for name, rows in world.rows.items()}
    facts: dict[str, object] = {"horizon": world.horizon, "corrections": corrections, **dict(world.facts),
                                "cost_jump": world.cost_jump}
    result = HisGenerationResult(_safe_url(url), world.start, end, seed, counts, facts,
                                 round(stopwatch.perf_counter() - started, 1))
    log.info("HIS generated %s..%s (%d hospitals, seed %d) in %.1fs: %s; %d corrections", world.start, end, hospitals,
             seed, result.seconds, ", ".join(f"{k} {v}" for k, v in counts.items()), len(corrections))
    return result


def _simulate(seed: int, end: date, months: int, hospitals: int, scale: float) -> _World:
    world = _World(seed, end, months, hospitals, scale)
    _master_data(world)
    _initial_census(world)
    for day in world.days:
        for dept in world.departments:
            dept.today = [d for d in dept.doctors if d.active(day)]
        _outpatient_day(world, day)
        _inpatient_day(world, day)
        _end_of_day(world)
    _plant_cost_jump(world)
    return world


def _plant_cost_jump(world: _World) -> None:
    """The planted DRG cost jump 病种费用突增: every charge of the stays of one department discharged
    in the cost-jump month is COST_JUMP_FACTOR times its amount. The department is the one whose most
    frequent primary diagnosis had the most discharges that month (so that its main DRG group has
    cases enough to be judged). No random draw: the rest of the data is as without the plant."""
    month = world.cost_jump["month"]
    stay_columns = [c.name for c in TABLES["inpatient_stays"].columns]
    sid, dep, dis = (stay_columns.index(n) for n in ("stay_id", "department_id", "discharged_at"))
    in_month = {row[sid]: row[dep] for row in world.rows["inpatient_stays"]
                if row[dis] is not None and row[dis].date().replace(day=1).isoformat() == month}
    diagnosis_columns = [c.name for c in TABLES["diagnoses"].columns]
    dsid, code, primary = (diagnosis_columns.index(n) for n in ("stay_id", "icd10_code", "is_primary"))
    cells: dict[tuple[str, str], int] = defaultdict(int)
    for row in world.rows["diagnoses"]:
        if row[primary] and row[dsid] in in_month:
            cells[(in_month[row[dsid]], row[code])] += 1
    if not cells:
        return
    (department, _), _ = max(cells.items(), key=lambda cell: (cell[1], cell[0]))
    stays = {stay for stay, dept in in_month.items() if dept == department}
    charge_columns = [c.name for c in TABLES["charges"].columns]
    csid, amount = charge_columns.index("stay_id"), charge_columns.index("amount_cny")
    for row in world.rows["charges"]:
        if row[csid] in stays:
            row[amount] = (row[amount] * COST_JUMP_FACTOR).quantize(Decimal("0.01"))
    world.cost_jump.update({"department_id": department, "stays": len(stays)})


def _require_empty(conn: sa.Connection) -> None:
    for name in TABLE_ORDER:
        if conn.execute(sa.select(sa.literal(1)).select_from(TABLES[name]).limit(1)).first() is not None:
            raise HisGenerationError(f"{HIS_SCHEMA}.{name} already has rows: generate into an empty database")


def _copy_rows(conn: sa.Connection, rows: Mapping[str, list[list[object]]], chunk: int = 50_000) -> None:
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        for name in TABLE_ORDER:
            columns = ", ".join(column.name for column in TABLES[name].columns)
            sql = f"copy {HIS_SCHEMA}.{name} ({columns}) from stdin with (format csv)"
            table_rows = rows[name]
            for offset in range(0, len(table_rows), chunk):
                buffer = io.StringIO()
                csv.writer(buffer, lineterminator="\n").writerows(table_rows[offset:offset + chunk])
                if hasattr(cursor, "copy_expert"):  # psycopg2
                    buffer.seek(0)
                    cursor.copy_expert(sql, buffer)
                else:  # psycopg 3, SQLAlchemy's default PostgreSQL driver
                    with cursor.copy(sql) as copy:
                        copy.write(buffer.getvalue())
    finally:
        cursor.close()


# ===================================================================================== FHIR export


@dataclass
class FhirExport:
    out_dir: Path
    transaction_time: str
    counts: dict[str, int]  # resource type -> resources written
    paths: list[Path]


def write_fhir_bulk(url: str, out_dir: Path, *, since: datetime | None = None, until: datetime | None = None,
                    tz: tzinfo = F.HIS_TZ) -> FhirExport:
    """Export the HIS as FHIR R4 Bulk Data NDJSON (one file per resource type) plus `manifest.json`.

    Like `$export?_since=`: only resources whose `updated_at` is after `since` (and before `until`,
    exclusive, when given). Coding systems and extensions: `hospital_ops.extract.fhir_profile`; read by
    `hospital_ops.extract.fhir_r4`, the one FHIR reader.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url)
    counts: dict[str, int] = {}
    paths: list[Path] = []
    latest: datetime | None = None
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            with conn.begin():
                for resource_type, query, build in _fhir_queries():
                    path = out_dir / f"{resource_type}.ndjson"
                    count = 0
                    with path.open("w", encoding="utf-8", newline="\n") as handle:
                        for row in _stream(conn, query, since, until):
                            handle.write(json.dumps(build(row, tz), ensure_ascii=False, separators=(",", ":")))
                            handle.write("\n")
                            count += 1
                            latest = row.updated_at if latest is None or row.updated_at > latest else latest
                    counts[resource_type] = count
                    paths.append(path)
    finally:
        engine.dispose()
    transaction_time = F.fhir_instant(until or latest or datetime(1970, 1, 1), tz)
    manifest = {
        "transactionTime": transaction_time,
        "request": f"[base]/$export?_type={','.join(counts)}" + (f"&_since={F.fhir_instant(since, tz)}" if since else ""),
        "requiresAccessToken": False,
        "output": [{"type": t, "url": (out_dir / f"{t}.ndjson").resolve().as_uri(), "count": n}
                   for t, n in counts.items()],
        "error": [],
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    log.info("FHIR bulk export to %s: %s", out_dir, counts)
    return FhirExport(out_dir, transaction_time, counts, paths)


def _stream(conn: sa.Connection, query: sa.Select, since: datetime | None,
            until: datetime | None) -> Iterator[sa.Row]:
    stamp = query.selected_columns.updated_at
    if since is not None:
        query = query.where(stamp > since)
    if until is not None:
        query = query.where(stamp < until)
    for partition in conn.execution_options(yield_per=5_000).execute(query).partitions():
        yield from partition


def _fhir_queries() -> list[tuple[str, sa.Select, Callable[[sa.Row, tzinfo], dict]]]:
    h, d, p = TABLES["hospitals"], TABLES["departments"], TABLES["patients"]
    v, s, dx = TABLES["outpatient_visits"], TABLES["inpatient_stays"], TABLES["diagnoses"]
    op, ch = TABLES["surgeries"], TABLES["charges"]
    organizations = sa.union_all(
        sa.select(sa.literal("prov").label("org_type"), h.c.hospital_id.label("id"), h.c.hospital_name.label("name"),
                  sa.null().label("part_of"), sa.null().label("kind"), h.c.campus_name, h.c.level,
                  h.c.consortium_role, h.c.updated_at),
        sa.select(sa.literal("dept"), d.c.department_id, d.c.department_name, d.c.hospital_id, d.c.kind,
                  sa.null(), sa.null(), sa.null(), d.c.updated_at),
    ).subquery()
    encounters = sa.union_all(
        sa.select(sa.literal("visit").label("kind"), v.c.visit_id.label("id"), v.c.patient_id, v.c.department_id,
                  v.c.doctor_id, v.c.visit_at.label("start"), sa.null().label("end"), v.c.visit_type,
                  sa.null().label("disposition"), sa.null().label("planned"), v.c.updated_at),
        sa.select(sa.literal("stay"), s.c.stay_id, s.c.patient_id, s.c.department_id, s.c.attending_doctor_id,
                  s.c.admitted_at, s.c.discharged_at, sa.null(), s.c.discharge_disposition, s.c.planned_readmission,
                  s.c.updated_at),
    ).subquery()
    return [
        ("Organization", sa.select(organizations).order_by(organizations.c.org_type.desc(), organizations.c.id),
         _fhir_organization),
        ("Patient", sa.select(p).order_by(p.c.patient_id), _fhir_patient),
        ("Encounter", sa.select(encounters).order_by(encounters.c.id), _fhir_encounter),
        ("Condition", sa.select(dx, s.c.patient_id).join_from(dx, s).order_by(dx.c.stay_id, dx.c.seq_no),
         _fhir_condition),
        ("Procedure", sa.select(op, s.c.patient_id).join_from(op, s).order_by(op.c.surgery_id), _fhir_procedure),
        ("ChargeItem", sa.select(ch, sa.func.coalesce(v.c.patient_id, s.c.patient_id).label("patient_id"),
                                 v.c.visit_type)
         .select_from(ch.outerjoin(v, ch.c.visit_id == v.c.visit_id).outerjoin(s, ch.c.stay_id == s.c.stay_id))
         .order_by(ch.c.charge_id), _fhir_charge_item),
    ]


def _meta(row: sa.Row, tz: tzinfo) -> dict:
    return {"lastUpdated": F.fhir_instant(row.updated_at, tz)}


def _ref(resource_type: str, resource_id: str | None) -> dict | None:
    return {"reference": f"{resource_type}/{resource_id}"} if resource_id else None


def _drop_none(resource: dict) -> dict:
    return {key: value for key, value in resource.items() if value not in (None, [], {})}


def _fhir_organization(row: sa.Row, tz: tzinfo) -> dict:
    types = [{"coding": [{"system": F.ORGANIZATION_TYPE_SYSTEM, "code": row.org_type,
                          "display": "Healthcare Provider" if row.org_type == "prov" else "Hospital Department"}]}]
    extensions = []
    if row.org_type == "prov":
        extensions = [{"url": F.EXT_CAMPUS_NAME, "valueString": row.campus_name},
                      {"url": F.EXT_HOSPITAL_LEVEL, "valueCode": row.level},
                      {"url": F.EXT_CONSORTIUM_ROLE, "valueCode": row.consortium_role}]
    else:
        types.append({"coding": [{"system": F.DEPARTMENT_KIND_SYSTEM, "code": row.kind}]})
    return _drop_none({"resourceType": "Organization", "id": row.id, "meta": _meta(row, tz), "extension": extensions,
                       "active": True, "type": types, "name": row.name, "partOf": _ref("Organization", row.part_of)})


def _identifier(type_code: str, display: str, system: str, value: str | None, use: str) -> dict | None:
    if value is None:
        return None
    return {"use": use, "type": {"coding": [{"system": F.IDENTIFIER_TYPE_SYSTEM, "code": type_code,
                                             "display": display}]}, "system": system, "value": value}


def _fhir_patient(row: sa.Row, tz: tzinfo) -> dict:
    identifiers = [_identifier("MR", "Medical record number", F.MRN_SYSTEM, row.mrn, "usual"),
                   _identifier("NI", "National unique individual identifier", F.NATIONAL_ID_SYSTEM, row.national_id,
                               "official")]
    return _drop_none({
        "resourceType": "Patient", "id": row.patient_id, "meta": _meta(row, tz),
        "identifier": [i for i in identifiers if i],
        "name": [{"use": "official", "text": row.patient_name}] if row.patient_name else None,
        "telecom": [{"system": "phone", "value": row.phone, "use": "mobile"}] if row.phone else None,
        "gender": F.GENDER_TO_FHIR.get(row.gender),
        "birthDate": row.birth_date.isoformat() if row.birth_date else None,
    })


def _fhir_encounter(row: sa.Row, tz: tzinfo) -> dict:
    if row.kind == "visit":
        code = "EMER" if row.visit_type == "emergency" else "AMB"
        encounter_class = {"system": F.ACT_CODE_SYSTEM, "code": code,
                           "display": "emergency" if code == "EMER" else "ambulatory"}
        types = [{"coding": [{"system": F.VISIT_TYPE_SYSTEM, "code": row.visit_type}]}]
        participant_type = "PPRF"
    else:
        encounter_class = {"system": F.ACT_CODE_SYSTEM, "code": "IMP", "display": "inpatient encounter"}
        types = None
        participant_type = "ATND"
    participants = [{"type": [{"coding": [{"system": F.PARTICIPATION_TYPE_SYSTEM, "code": participant_type}]}],
                     "individual": _ref("Practitioner", row.doctor_id)}] if row.doctor_id else None
    period = _drop_none({"start": F.fhir_instant(row.start, tz), "end": F.fhir_instant(row.end, tz) if row.end else None})
    hospitalization = None
    extensions = None
    if row.kind == "stay":
        if row.disposition:
            hospitalization = {"dischargeDisposition": {"coding": [{"system": F.DISCHARGE_DISPOSITION_SYSTEM,
                                                                    "code": F.DISPOSITION_TO_FHIR[row.disposition]}]}}
        if row.planned is not None:
            extensions = [{"url": F.EXT_PLANNED_READMISSION, "valueBoolean": bool(row.planned)}]
    finished = row.kind == "visit" or row.end is not None
    return _drop_none({
        "resourceType": "Encounter", "id": row.id, "meta": _meta(row, tz), "extension": extensions,
        "status": "finished" if finished else "in-progress", "class": encounter_class, "type": types,
        "subject": _ref("Patient", row.patient_id), "participant": participants, "period": period,
        "hospitalization": hospitalization, "serviceProvider": _ref("Organization", row.department_id),
    })


def _fhir_condition(row: sa.Row, tz: tzinfo) -> dict:
    return {
        "resourceType": "Condition", "id": f"{row.stay_id}-{row.seq_no}", "meta": _meta(row, tz),
        "extension": [{"url": F.EXT_ENCOUNTER_CLASS, "valueCode": "IMP"},
                      {"url": F.EXT_DIAGNOSIS_SEQUENCE, "valueInteger": row.seq_no},
                      {"url": F.EXT_PRIMARY_DIAGNOSIS, "valueBoolean": bool(row.is_primary)},
                      {"url": F.EXT_COMPLICATION, "valueBoolean": bool(row.is_complication)}],
        "verificationStatus": {"coding": [{"system": F.CONDITION_VERIFICATION_SYSTEM, "code": "confirmed"}]},
        "category": [{"coding": [{"system": F.CONDITION_CATEGORY_SYSTEM, "code": "encounter-diagnosis"}]}],
        "code": {"coding": [{"system": F.ICD10_SYSTEM, "code": row.icd10_code, "display": row.diagnosis_name}],
                 "text": row.diagnosis_name},
        "subject": _ref("Patient", row.patient_id), "encounter": _ref("Encounter", row.stay_id),
        "recordedDate": F.fhir_instant(row.created_at, tz),
    }


def _fhir_procedure(row: sa.Row, tz: tzinfo) -> dict:
    return _drop_none({
        "resourceType": "Procedure", "id": row.surgery_id, "meta": _meta(row, tz),
        "extension": [{"url": F.EXT_ENCOUNTER_CLASS, "valueCode": "IMP"},
                      {"url": F.EXT_SURGERY_GRADE, "valueInteger": row.grade},
                      {"url": F.EXT_MINIMALLY_INVASIVE, "valueBoolean": bool(row.minimally_invasive)}],
        "status": "completed",
        "code": {"coding": [{"system": F.ICD9CM_SYSTEM, "code": row.procedure_code, "display": row.procedure_name}]},
        "subject": _ref("Patient", row.patient_id), "encounter": _ref("Encounter", row.stay_id),
        "performedDateTime": F.fhir_instant(row.performed_at, tz),
        "performer": [{"actor": _ref("Practitioner", row.surgeon_id)}] if row.surgeon_id else None,
    })


def _fhir_charge_item(row: sa.Row, tz: tzinfo) -> dict:
    encounter_id = row.visit_id or row.stay_id
    encounter_class = "IMP" if row.stay_id else ("EMER" if row.visit_type == "emergency" else "AMB")
    return {
        "resourceType": "ChargeItem", "id": row.charge_id, "meta": _meta(row, tz),
        "extension": [{"url": F.EXT_ENCOUNTER_CLASS, "valueCode": encounter_class}],
        "status": "billed",
        "code": {"coding": [{"system": F.CHARGE_CATEGORY_SYSTEM, "code": row.category}]},
        "subject": _ref("Patient", row.patient_id), "context": _ref("Encounter", encounter_id),
        "occurrenceDateTime": F.fhir_instant(row.charged_at, tz),
        "requestingOrganization": _ref("Organization", row.department_id),
        "quantity": {"value": 1},
        # exact to the cent: a float's shortest repr of a two-decimal amount reads back as the same Decimal
        "priceOverride": {"value": float(row.amount_cny), "currency": "CNY"},
        "enteredDate": F.fhir_instant(row.created_at, tz),
    }
