-- Patients 患者 (master patient index of the consortium)
-- One row per patient_id: the latest version (late corrections re-send the whole row).
-- Personal identifiers stay in raw as pseudonyms and are not selected here.
with current_version as (
    {{ latest_version(source('his', 'patients'), ['patient_id'], tiebreak='updated_at desc') }}
)

select
    patient_id,
    gender,
    extract(year from birth_date)::int as birth_year,  -- 出生年份: the birth date stops here, ages use the year
    updated_at,
    _batch_date as landed_batch_date,
    _source_file as source_file
from current_version
