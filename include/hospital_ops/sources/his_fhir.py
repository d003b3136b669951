"""What an HL7 FHIR R4 HIS delivers beyond the SQL HIS tables 医院信息系统 FHIR 明细.

A FHIR export (`hospital_ops.extract.fhir_r4`) lands the HIS entities of `hospital_ops.sources.his`
(hospitals, departments, patients, visits, stays, ICD-10 diagnoses, graded surgeries, CNY charges)
exactly as the SQL extractor does, and keeps here what those tables have no room for:

- every Encounter with its class (v3-ActCode) and the category the seed `his_fhir_encounter_classes`
  gives it (outpatient, emergency, inpatient, other), so "encounters by class" counts every class,
  including those (home health, virtual, …) that are neither a visit nor a stay;
- every Procedure and Condition with its code *and code system* (SNOMED CT, ICD-10-CM, CPT, …);
- every amount of Claim, ExplanationOfBenefit and ChargeItem with its currency.

Patients appear only as keyed hashes (`patient_id` is pseudonymised in the extractor). These tables
have no extract task of their own: the HIS extract lands them beside the HIS tables, in the same night.
Which interface feeds the HIS tables is configuration (HIS_KIND): the same `raw.his__*` tables, so the
same gate suites and batch verdicts, whichever it is. These tables are a landed source like the others
(`hospital_ops.sources.LANDED_SOURCES`): the loader quarantines a row that breaks this spec, the quality
gate validates each night's batch (`expectations/suites/raw.his_fhir__*.json`) and holds a rejected one
(`raw._batch_verdicts`, `hospital-ops batches accept his_fhir DATE`). Dates follow the register's bounds
where they may predate the history (a condition's onset, a record's `updated_at`), the event bounds
otherwise (`history_start_date`, see `hospital_ops.sources.spec`).
"""

from __future__ import annotations

from hospital_ops.sources.spec import Column as C
from hospital_ops.sources.spec import Entity, Source

SOURCE_NAME = "his_fhir"
ENCOUNTER_CATEGORIES = ("outpatient", "emergency", "inpatient", "other")  # 门诊 / 急诊 / 住院 / 其他
SURGERY_GRADES = ("1", "2", "3", "4", "ungraded")  # 手术分级; ungraded 未分级 when the seed gives none
_MONEY_MAX = 1e12  # a plausibility bound, not a business rule


def _entity(name: str, *, description: str, business_key: tuple[str, ...], columns: tuple[C, ...]) -> Entity:
    return Entity(source=SOURCE_NAME, name=name, file_pattern=f"his_fhir_{name}.csv", load_order=5,
                  description=description, business_key=business_key,
                  columns=(*columns, C("updated_at", "timestamp", required=True, dates="register")))


SOURCE = Source(
    name=SOURCE_NAME,
    description="HIS over HL7 FHIR R4: every encounter by class, coded procedures and conditions, amounts by currency",
    extract="files",
    entities=(
        _entity(
            "encounters", business_key=("encounter_id",),
            description="Every FHIR Encounter 就诊 with its class and category (门诊/急诊/住院/其他)",
            columns=(
                C("encounter_id", required=True),
                C("patient_id"),  # keyed hash
                C("class_system"),
                C("class_code"),
                C("category", required=True, allowed=ENCOUNTER_CATEGORIES),
                C("status"),
                C("hospital_id"),
                C("department_id"),
                C("department_mapped", "bool", required=True),  # false: landed in the unmapped department
                C("started_at", "timestamp"),
                C("ended_at", "timestamp"),
                C("discharge_disposition"),
            ),
        ),
        _entity(
            "procedures", business_key=("procedure_id",),
            description="Every FHIR Procedure 操作/手术 with its code system; surgeries and grades from seeds",
            columns=(
                C("procedure_id", required=True),
                C("encounter_id"),
                C("patient_id"),  # keyed hash
                C("code_system"),
                C("code"),
                C("display"),
                C("status"),
                C("is_surgery", "bool", required=True),
                C("grade", allowed=SURGERY_GRADES),
                C("performed_at", "timestamp"),
            ),
        ),
        _entity(
            "conditions", business_key=("condition_id",),
            description="Every FHIR Condition 诊断/问题 with its code system",
            columns=(
                C("condition_id", required=True),
                C("encounter_id"),
                C("patient_id"),  # keyed hash
                C("code_system"),
                C("code"),
                C("display"),
                C("onset_at", "timestamp", dates="register"),  # a condition may begin before the history
            ),
        ),
        _entity(
            "amounts", business_key=("amount_id",),
            description="Amounts 金额 of Claim, ExplanationOfBenefit and ChargeItem, each with its currency",
            columns=(
                C("amount_id", required=True),
                C("resource_type", required=True),
                C("resource_id", required=True),
                C("encounter_id"),
                C("patient_id"),  # keyed hash
                C("kind", required=True),  # claim_total, eob_submitted, eob_payment, charge_item, …
                C("amount", "decimal", required=True, min=-_MONEY_MAX, max=_MONEY_MAX),
                C("currency", required=True),
                C("occurred_at", "timestamp"),
            ),
        ),
    ),
)
