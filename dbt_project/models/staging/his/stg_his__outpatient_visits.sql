-- Outpatient and emergency visits 门急诊就诊
-- One row per visit_id: the latest version (late corrections re-send the whole row).
-- Personal identifiers stay in raw as pseudonyms and are not selected here.
with current_version as (
    {{ latest_version(source('his', 'outpatient_visits'), ['visit_id'], tiebreak='updated_at desc') }}
)

select
    visit_id,
    patient_id,
    department_id,
    doctor_id,
    visit_at,
    visit_type,
    updated_at,
    _batch_date as landed_batch_date,
    _source_file as source_file
from current_version
