-- Every FHIR Condition 诊断 with its code and code system (SNOMED CT, ICD-10, ICD-10-CM, …); the ICD-10 coded
-- ones of inpatient stays are also the HIS diagnoses. One row per condition_id: the latest version.
with current_version as (
    {{ latest_version(source('his_fhir', 'conditions'), ['condition_id'], tiebreak='updated_at desc') }}
)

select
    condition_id,
    encounter_id,
    patient_id,
    code_system,
    code,
    display,
    onset_at,
    updated_at,
    _batch_date as landed_batch_date,
    _source_file as source_file
from current_version
