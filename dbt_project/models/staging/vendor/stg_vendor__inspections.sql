-- Spot checks and patrols 抽查/巡查 by the hospital's supervisors
-- One row per inspection_id: the current version (see macro latest_version).
with current_version as (
    {{ latest_version(source('vendor', 'inspections'), ['inspection_id']) }}
)

select
    inspection_id,
    vendor_id,
    inspected_on,
    inspection_type,
    items_checked,
    items_passed,
    _batch_date as landed_batch_date,
    _source_file as source_file,
    _row_number as source_row_number
from current_version
