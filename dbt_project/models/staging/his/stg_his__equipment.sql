-- Medical equipment 医疗设备 with purchase value, acquisition and retirement
-- One row per equipment_id: the latest version (late corrections re-send the whole row).
-- Personal identifiers stay in raw as pseudonyms and are not selected here.
with current_version as (
    {{ latest_version(source('his', 'equipment'), ['equipment_id'], tiebreak='updated_at desc') }}
)

select
    equipment_id,
    department_id,
    equipment_name,
    category,
    purchase_value_cny,
    acquired_on,
    retired_on,
    updated_at,
    _batch_date as landed_batch_date,
    _source_file as source_file
from current_version
