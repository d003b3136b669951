"""This project's FHIR R4 profile: the identifier namespaces, extensions and small code systems the HIS
simulator's Bulk Data export (`hospital_ops_sim.his.write_fhir_bulk`) writes and the one FHIR
reader (`hospital_ops.extract.fhir_r4`) reads, beside the standard systems it uses.

Coding systems. Diagnoses use `http://hl7.org/fhir/sid/icd-10`: the simulator's codes are WHO ICD-10 at
the four-character level, which the Chinese clinical edition (国家临床版) extends with extra digits; a
hospital sending the national extension codes uses its own system URI, listed in the reader's ICD-10
systems. Procedures use `http://hl7.org/fhir/sid/icd-9-cm` (ICD-9-CM-3, as on Chinese front pages).
Everything local to this project (identifier namespaces, extensions and small code systems) lives under
`http://hospital-ops.example.org/fhir/` (an example domain: a deployment substitutes its own registered
namespace). A real export needs none of it: the extensions only carry what the hospital's seeds
(`his_fhir_*`) would otherwise say (surgery grade, primary diagnosis, hospital level, …).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone, tzinfo

HIS_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")  # China has no daylight saving time

FHIR_BASE = "http://hospital-ops.example.org/fhir"
ICD10_SYSTEM = "http://hl7.org/fhir/sid/icd-10"
ICD9CM_SYSTEM = "http://hl7.org/fhir/sid/icd-9-cm"
NATIONAL_ID_SYSTEM = f"{FHIR_BASE}/sid/cn-resident-id"
MRN_SYSTEM = f"{FHIR_BASE}/sid/mrn"
IDENTIFIER_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0203"
ACT_CODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ORGANIZATION_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/organization-type"
DISCHARGE_DISPOSITION_SYSTEM = "http://terminology.hl7.org/CodeSystem/discharge-disposition"
PARTICIPATION_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
CONDITION_CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/condition-category"
CONDITION_VERIFICATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
DEPARTMENT_KIND_SYSTEM = f"{FHIR_BASE}/CodeSystem/department-kind"
VISIT_TYPE_SYSTEM = f"{FHIR_BASE}/CodeSystem/visit-type"
CHARGE_CATEGORY_SYSTEM = f"{FHIR_BASE}/CodeSystem/charge-category"

_EXT = f"{FHIR_BASE}/StructureDefinition"
EXT_CAMPUS_NAME = f"{_EXT}/campus-name"  # valueString, on a hospital Organization
EXT_HOSPITAL_LEVEL = f"{_EXT}/hospital-level"  # valueCode tertiary | secondary | primary
EXT_CONSORTIUM_ROLE = f"{_EXT}/consortium-role"  # valueCode lead | member
EXT_PLANNED_READMISSION = f"{_EXT}/planned-readmission-31d"  # valueBoolean, 是否有出院31天内再住院计划
EXT_DIAGNOSIS_SEQUENCE = f"{_EXT}/diagnosis-sequence"  # valueInteger, order on the front page
EXT_PRIMARY_DIAGNOSIS = f"{_EXT}/primary-diagnosis"  # valueBoolean, 主要诊断
EXT_COMPLICATION = f"{_EXT}/complication-during-stay"  # valueBoolean, 入院病情 = 无
EXT_SURGERY_GRADE = f"{_EXT}/surgery-grade"  # valueInteger 1-4, 手术分级
EXT_MINIMALLY_INVASIVE = f"{_EXT}/minimally-invasive"  # valueBoolean, 微创
# valueCode AMB | EMER | IMP, on ChargeItem, Condition and Procedure: the class of the encounter they belong
# to, so one whose Encounter is not in an incremental export (it did not change) still finds its visit or stay
EXT_ENCOUNTER_CLASS = f"{_EXT}/encounter-class"

DISPOSITION_TO_FHIR = {"home": "home", "transfer": "other-hcf", "death": "exp", "against_advice": "aadvice"}
GENDER_TO_FHIR = {"1": "male", "2": "female", "0": "unknown", "9": "other"}
GENDER_FROM_FHIR = {code: gender for gender, code in GENDER_TO_FHIR.items()}


def fhir_instant(value: datetime, tz: tzinfo = HIS_TZ) -> str:
    """A naive HIS local time as a FHIR instant (seconds and zone offset are mandatory)."""
    return value.replace(tzinfo=tz, microsecond=0).isoformat(timespec="seconds")
