-- Inpatient stays 住院 from the front page of the medical record 病案首页
-- One row per stay_id: the latest version (late corrections re-send the whole row).
-- Personal identifiers stay in raw as pseudonyms and are not selected here.
with current_version as (
    {{ latest_version(source('his', 'inpatient_stays'), ['stay_id'], tiebreak='updated_at desc') }}
)

select
    stay_id,
    patient_id,
    department_id,
    attending_doctor_id,
    admitted_at,
    discharged_at,
    discharge_disposition,
    planned_readmission,
    updated_at,
    _batch_date as landed_batch_date,
    _source_file as source_file
from current_version
