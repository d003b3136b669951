-- Questionnaires 满意度问卷: one per surveyed patient encounter
-- One row per questionnaire_id: the latest version (a record the platform changes is re-sent whole).
-- The patient's national ID is kept only as its pseudonym (the key to his__patients.national_id_pseudo);
-- the phone pseudonym stays in raw. The comment was scrubbed of phone and ID numbers at extraction.
with current_version as (
    {{ latest_version(source('survey', 'questionnaires'), ['questionnaire_id'], tiebreak='updated_at desc') }}
)

select
    questionnaire_id,
    questionnaire_type,
    hospital_id,
    department_id,
    vendor_id,
    patient_national_id_pseudo,
    visit_date,
    date_trunc('month', visit_date)::date as visit_month,
    submitted_at,
    channel,
    nullif(btrim(comment), '') as comment,
    updated_at,
    _batch_date as landed_batch_date,
    _source_file as source_file
from current_version
