-- Incidents 不良事件: privacy leaks, medical accidents, fake qualifications, …
-- One row per incident_id: the current version (see macro latest_version).
with current_version as (
    {{ latest_version(source('vendor', 'incidents'), ['incident_id']) }}
)

select
    incident_id,
    vendor_id,
    occurred_on,
    incident_type,
    description,
    _batch_date as landed_batch_date,
    _source_file as source_file,
    _row_number as source_row_number
from current_version
