-- Staff 人员 with role and professional title 职称; leavers kept with their leaving date
-- One row per staff_id: the latest version (late corrections re-send the whole row).
-- Personal identifiers stay in raw as pseudonyms and are not selected here.
with current_version as (
    {{ latest_version(source('his', 'staff'), ['staff_id'], tiebreak='updated_at desc') }}
)

select
    staff_id,
    department_id,
    role,
    title,
    title_grade,
    hired_on,
    left_on,
    updated_at,
    _batch_date as landed_batch_date,
    _source_file as source_file
from current_version
