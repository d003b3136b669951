-- Open beds 实际开放床位, each with the dates it is open
-- One row per bed_id: the latest version (late corrections re-send the whole row).
-- Personal identifiers stay in raw as pseudonyms and are not selected here.
with current_version as (
    {{ latest_version(source('his', 'beds'), ['bed_id'], tiebreak='updated_at desc') }}
)

select
    bed_id,
    department_id,
    ward,
    bed_no,
    open_from,
    open_to,
    updated_at,
    _batch_date as landed_batch_date,
    _source_file as source_file
from current_version
