-- Hospitals and campuses 医院/院区 of the medical consortium
-- One row per hospital_id: the latest version (late corrections re-send the whole row).
-- Personal identifiers stay in raw as pseudonyms and are not selected here.
with current_version as (
    {{ latest_version(source('his', 'hospitals'), ['hospital_id'], tiebreak='updated_at desc') }}
)

select
    hospital_id,
    hospital_name,
    campus_name,
    level,
    consortium_role,
    updated_at,
    _batch_date as landed_batch_date,
    _source_file as source_file
from current_version
