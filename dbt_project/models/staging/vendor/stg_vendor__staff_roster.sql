-- Vendor staff roster 人员花名册 (monthly full export, leavers kept with their leaving date)
-- One row per staff_id: the current version (see macro latest_version).
with current_version as (
    {{ latest_version(source('vendor', 'staff_roster'), ['staff_id']) }}
)

select
    staff_id,
    vendor_id,
    role,
    certified,
    training_hours_ytd,
    joined_on,
    left_on,
    _batch_date as landed_batch_date,
    _source_file as source_file,
    _row_number as source_row_number
from current_version
