-- Every FHIR Encounter 就诊 with its class (v3-ActCode) and the category the seed his_fhir_encounter_classes
-- gives it: outpatient 门诊, emergency 急诊, inpatient 住院, other 其他 (a class not in the seed is other).
-- One row per encounter_id: the latest version. The patient is a keyed hash.
with current_version as (
    {{ latest_version(source('his_fhir', 'encounters'), ['encounter_id'], tiebreak='updated_at desc') }}
)

select
    encounter_id,
    patient_id,
    class_system,
    class_code,
    category,
    status,
    hospital_id,
    department_id,
    department_mapped,
    started_at,
    ended_at,
    discharge_disposition,
    updated_at,
    _batch_date as landed_batch_date,
    _source_file as source_file
from current_version
