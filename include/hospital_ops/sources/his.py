"""Hospital information system 医院信息系统 (HIS): what the nightly SQL extract lands.

The HIS is an OLTP database; every table carries `updated_at` (local time, Asia/Shanghai, no zone),
which the extractor (`hospital_ops.extract.sql`) uses as its incremental watermark. A night's drop
folder `<landing>/his/<YYYY-MM-DD>/` holds one CSV per table that changed that night,
`his_<table>.csv`, with the rows whose `updated_at` moved into the night's window: new rows and rows
corrected later (a late correction re-sends the whole row; staging keeps the latest version per
business key). The same files can also be produced from an HL7 FHIR R4 Bulk Data export
(`hospital_ops.extract.fhir_r4`) for the tables FHIR covers.

Conventions
- Enumerations are lower-case English codes (`clinical`, `against_advice`, …), except the two
  national code lists kept as the HIS stores them: gender as GB/T 2261.1 codes (`1` male, `2` female,
  `0` unknown, `9` unspecified) and the professional-title grade 职称级别 (`正高`, `副高`, `中级`,
  `初级`, `无`); 正高 and 副高 are the senior titles the discipline-building KPI counts.
- Money is CNY. Diagnoses are ICD-10 (WHO four-character level, e.g. `I21.0`); procedures are
  ICD-9-CM-3 codes as Chinese front pages use them (e.g. `81.51`).
- Personal identifiers (patient name, national ID 身份证号, phone, medical-record number 病案号, staff
  name) are `pii=True`: they land only as keyed hashes in `<column>_pseudo`.
- `references` are declared only to hospitals and departments, master data the HIS creates before
  anything points at it and does not rewrite afterwards. Clinical links (patient, stay, doctor) are
  deliberately not checked at landing: an extract by `updated_at` can legitimately deliver a child row
  before its parent's latest version (the parent was corrected after the night's cutoff), and
  quarantining such a row would lose it for good. Those joins are tested downstream (dbt
  relationships tests on the latest versions).
"""

from __future__ import annotations

from hospital_ops.sources.spec import Column as C
from hospital_ops.sources.spec import Entity, RowRule, Source

SOURCE_NAME = "his"
WATERMARK_COLUMN = "updated_at"

HOSPITAL_LEVELS = ("tertiary", "secondary", "primary")  # 三级 / 二级 / 一级
CONSORTIUM_ROLES = ("lead", "member")  # 医联体牵头医院 / 成员单位
DEPARTMENT_KINDS = ("clinical", "medical_technical", "admin")  # 临床 / 医技 / 行政
STAFF_ROLES = ("doctor", "nurse", "technician", "admin")
TITLE_GRADES = ("正高", "副高", "中级", "初级", "无")
SENIOR_TITLE_GRADES = ("正高", "副高")
GENDERS = ("0", "1", "2", "9")  # GB/T 2261.1
VISIT_TYPES = ("general", "specialist", "emergency")  # 普通门诊 / 专家门诊 / 急诊
DISPOSITIONS = ("home", "transfer", "death", "against_advice")  # 离院方式: 医嘱离院 / 转院 / 死亡 / 非医嘱离院
CHARGE_CATEGORIES = ("drug", "consumables", "medical_service", "exam_lab")  # 药品 / 耗材 / 医疗服务 / 检查检验

HOSPITAL_REF = ("hospitals", "hospital_id")
DEPARTMENT_REF = ("departments", "department_id")

_MONEY_MAX = 1e9  # a plausibility bound, not a business rule


def _updated_at() -> C:
    return C(WATERMARK_COLUMN, "timestamp", required=True, dates="register")


def _entity(name: str, *, load_order: int, description: str, business_key: tuple[str, ...],
            columns: tuple[C, ...], row_rules: tuple[RowRule, ...] = ()) -> Entity:
    return Entity(source=SOURCE_NAME, name=name, file_pattern=f"his_{name}.csv", load_order=load_order,
                  description=description, business_key=business_key, columns=(*columns, _updated_at()),
                  row_rules=row_rules)


SOURCE = Source(
    name=SOURCE_NAME,
    description="Hospital information system (HIS): master data, patient journeys and charges, extracted by updated_at",
    extract="sql",
    connection="his",
    entities=(
        _entity(
            "hospitals", load_order=0, business_key=("hospital_id",),
            description="Hospitals and campuses 医院/院区 of the medical consortium",
            columns=(
                C("hospital_id", required=True),
                C("hospital_name", required=True),
                C("campus_name", required=True),
                C("level", required=True, allowed=HOSPITAL_LEVELS),
                C("consortium_role", required=True, allowed=CONSORTIUM_ROLES),
            ),
        ),
        _entity(
            "departments", load_order=1, business_key=("department_id",),
            description="Departments 科室: clinical, medical-technical 医技 and administrative",
            columns=(
                C("department_id", required=True),
                C("hospital_id", required=True, references=HOSPITAL_REF),
                C("department_name", required=True),
                C("kind", required=True, allowed=DEPARTMENT_KINDS),
            ),
        ),
        _entity(
            "staff", load_order=2, business_key=("staff_id",),
            description="Staff 人员 with role and professional title 职称; leavers kept with their leaving date",
            columns=(
                C("staff_id", required=True),
                C("department_id", required=True, references=DEPARTMENT_REF),
                C("staff_name", pii=True),
                C("role", required=True, allowed=STAFF_ROLES),
                C("title"),  # e.g. 主任医师, 主管护师
                C("title_grade", required=True, allowed=TITLE_GRADES),
                C("hired_on", "date", required=True, dates="register"),
                C("left_on", "date", dates="register"),
            ),
            row_rules=(RowRule("left_on", ">=", "hired_on", "a leaver leaves after being hired"),),
        ),
        _entity(
            "beds", load_order=2, business_key=("bed_id",),
            description="Open beds 实际开放床位, each with the dates it is open",
            columns=(
                C("bed_id", required=True),
                C("department_id", required=True, references=DEPARTMENT_REF),
                C("ward", required=True),
                C("bed_no", required=True),
                C("open_from", "date", required=True, dates="register"),
                C("open_to", "date", dates="term"),  # last day open; blank = still open
            ),
            row_rules=(RowRule("open_to", ">=", "open_from", "a bed's last open day is not before its first"),),
        ),
        _entity(
            "equipment", load_order=2, business_key=("equipment_id",),
            description="Medical equipment 医疗设备 with purchase value, acquisition and retirement",
            columns=(
                C("equipment_id", required=True),
                C("department_id", required=True, references=DEPARTMENT_REF),
                C("equipment_name", required=True),
                C("category", required=True),
                C("purchase_value_cny", "decimal", required=True, min=0, max=_MONEY_MAX),
                C("acquired_on", "date", required=True, dates="register"),
                C("retired_on", "date", dates="register"),
            ),
            row_rules=(RowRule("retired_on", ">=", "acquired_on", "equipment is retired after it was acquired"),),
        ),
        _entity(
            "patients", load_order=2, business_key=("patient_id",),
            description="Patients 患者 (master patient index of the consortium)",
            columns=(
                C("patient_id", required=True),
                C("patient_name", pii=True),
                C("national_id", pii=True),
                C("phone", pii=True),
                C("mrn", required=True, pii=True),  # medical-record number 病案号
                C("gender", required=True, allowed=GENDERS),
                C("birth_date", "date", dates="register"),
            ),
        ),
        _entity(
            "outpatient_visits", load_order=3, business_key=("visit_id",),
            description="Outpatient and emergency visits 门急诊就诊",
            columns=(
                C("visit_id", required=True),
                C("patient_id", required=True),
                C("department_id", required=True, references=DEPARTMENT_REF),
                C("doctor_id"),
                C("visit_at", "timestamp", required=True),
                C("visit_type", required=True, allowed=VISIT_TYPES),
            ),
        ),
        _entity(
            "inpatient_stays", load_order=3, business_key=("stay_id",),
            description="Inpatient stays 住院 from the front page of the medical record 病案首页",
            columns=(
                C("stay_id", required=True),
                C("patient_id", required=True),
                C("department_id", required=True, references=DEPARTMENT_REF),  # discharging department
                C("attending_doctor_id"),
                C("admitted_at", "timestamp", required=True),
                C("discharged_at", "timestamp"),  # blank = still in hospital
                C("discharge_disposition", allowed=DISPOSITIONS),
                # 是否有出院31天内再住院计划: this discharge plans a readmission within 31 days
                C("planned_readmission", "bool"),
            ),
            row_rules=(RowRule("discharged_at", ">=", "admitted_at", "a patient is discharged after admission"),),
        ),
        _entity(
            "diagnoses", load_order=4, business_key=("stay_id", "seq_no"),
            description="Diagnoses of a stay 出院诊断 (ICD-10), the primary one and complications arising during it",
            columns=(
                C("stay_id", required=True),
                C("seq_no", "int", required=True, min=1, max=99),
                C("icd10_code", required=True),
                C("diagnosis_name"),
                C("is_primary", "bool", required=True),
                C("is_complication", "bool", required=True),  # 入院病情 = 无: arose during the stay
            ),
        ),
        _entity(
            "surgeries", load_order=4, business_key=("surgery_id",),
            description="Surgeries 手术 (ICD-9-CM-3) with grade 手术分级 1-4 and minimally invasive flag",
            columns=(
                C("surgery_id", required=True),
                C("stay_id", required=True),
                C("surgeon_id"),
                C("procedure_code", required=True),
                C("procedure_name"),
                C("grade", "int", min=1, max=4),  # blank = ungraded 未分级 (a FHIR procedure the grade seed leaves blank)
                C("minimally_invasive", "bool", required=True),
                C("performed_at", "timestamp", required=True),
            ),
        ),
        _entity(
            "charges", load_order=4, business_key=("charge_id",),
            description=("Charge items 费用 by category, per outpatient visit or per inpatient stay and month "
                         "(exactly one of visit_id, stay_id)"),
            columns=(
                C("charge_id", required=True),
                C("visit_id"),
                C("stay_id"),
                C("department_id", required=True, references=DEPARTMENT_REF),
                C("category", required=True, allowed=CHARGE_CATEGORIES),
                C("amount_cny", "decimal", required=True, min=-_MONEY_MAX, max=_MONEY_MAX),
                C("charged_at", "timestamp", required=True),
            ),
        ),
    ),
)
