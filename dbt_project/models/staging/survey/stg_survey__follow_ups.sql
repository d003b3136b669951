-- Follow-ups 随访 of discharged and outpatient patients by the service centre
-- One row per follow_up_id: the latest version (a scheduled follow-up is re-sent when completed).
with current_version as (
    {{ latest_version(source('survey', 'follow_ups'), ['follow_up_id'], tiebreak='updated_at desc') }}
)

select
    follow_up_id,
    follow_up_type,
    hospital_id,
    department_id,
    patient_national_id_pseudo,
    scheduled_on,
    completed_at,
    outcome,
    completed_at is not null as is_completed,
    satisfied as is_satisfied,
    nullif(btrim(note), '') as note,
    updated_at,
    _batch_date as landed_batch_date,
    _source_file as source_file
from current_version
